//! What only the AWS backend has: KMS encryption contexts, what DynamoDB items hold, and
//! what each operation costs in AWS requests.

use e2e::{Backend, World};
use reqwest::Method;
use serde_json::Value;

fn aws(w: &World) -> &e2e::AwsSide {
    w.aws.as_ref().expect("an AWS world")
}

#[tokio::test]
async fn a_sealed_blob_copied_onto_another_token_does_not_open() -> anyhow::Result<()> {
    let w = World::with(Backend::Aws).await?;
    let first = w.connect_user("u-1").await?;
    let second = w.connect_user("u-2").await?;
    let ddb = aws_sdk_dynamodb::Client::new(&aws(&w).resources.sdk);
    let key = |id: &str| {
        std::collections::HashMap::from([
            (
                "pk".to_owned(),
                aws_sdk_dynamodb::types::AttributeValue::S("BOT#acme".into()),
            ),
            (
                "sk".to_owned(),
                aws_sdk_dynamodb::types::AttributeValue::S(format!("TOKEN#{id}")),
            ),
        ])
    };
    let item = ddb
        .get_item()
        .table_name(e2e::moto::TABLE)
        .set_key(Some(key(&first)))
        .send()
        .await?;
    let sealed = item
        .item()
        .and_then(|i| i.get("sealed"))
        .cloned()
        .expect("sealed attribute");
    assert!(sealed.as_s().is_ok_and(|s| s.starts_with("kms1.")));
    ddb.update_item()
        .table_name(e2e::moto::TABLE)
        .set_key(Some(key(&second)))
        .update_expression("SET sealed = :s")
        .expression_attribute_values(":s", sealed)
        .send()
        .await?;

    let (status, body) = w
        .bot_json(Method::GET, &format!("/tokens/{second}"))
        .await?;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "internal_error");
    let (status, _) = w.bot_json(Method::GET, &format!("/tokens/{first}")).await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn aws_requests_per_operation() -> anyhow::Result<()> {
    let w = World::with(Backend::Aws).await?;
    let moto = &aws(&w).moto;
    // Warm the service: a first flow registers the bot key and the client secret's data key.
    w.connect_user("u-0").await?;

    moto.start_counting().await?;
    let token_id = w.connect_user("u-1").await?;
    let connect = moto.counts().await?;
    println!("connecting a new token (link, start, callback): {connect:?}");
    assert_eq!(
        connect.get("TrentService.GenerateDataKey"),
        Some(&1),
        "{connect:?}"
    );
    assert_eq!(connect.get("TrentService.Decrypt"), None, "{connect:?}");
    // Each step reads each record once: the link minted (integrations, provider app), the
    // start (link, provider app), the callback (nothing: the flow comes back from its
    // delete, and carries the app it started with).
    let reads = connect
        .get("DynamoDB_20120810.GetItem")
        .copied()
        .unwrap_or(0);
    assert!(
        reads <= 4,
        "{reads} GetItem for a new connection: {connect:?}"
    );
    // One event, put on the bus by the relay from the stream.
    assert_eq!(connect.get("AWSEvents.PutEvents"), Some(&1), "{connect:?}");
    assert!(!connect.keys().any(|k| k.ends_with(".Scan")), "{connect:?}");

    let path = format!("/tokens/{token_id}/access-token");
    let (_, first) = w.bot_json(Method::GET, &path).await?;
    assert_eq!(first["status"], "valid");
    moto.start_counting().await?;
    let (_, warm) = w.bot_json(Method::GET, &path).await?;
    assert_eq!(warm["access_token"], first["access_token"]);
    let warm_counts = moto.counts().await?;
    println!("warm access-token: {warm_counts:?}");
    assert_eq!(
        warm_counts,
        [("DynamoDB_20120810.GetItem".to_owned(), 1)].into(),
        "a warm access-token read is one DynamoDB read and no KMS call"
    );

    moto.start_counting().await?;
    let (_, tokens) = w.bot_json(Method::GET, "/users/u-1/tokens").await?;
    assert_eq!(tokens["tokens"]["demo"], token_id.as_str());
    let list = moto.counts().await?;
    println!("user.tokens: {list:?}");
    assert_eq!(list, [("DynamoDB_20120810.Query".to_owned(), 1)].into());

    // The connections' health, filtered by status: one query of the bot's partition.
    moto.start_counting().await?;
    let (status, valid) = w.bot_json(Method::GET, "/connections?status=valid").await?;
    assert_eq!(status, 200, "{valid}");
    let connections = valid["connections"].as_array().cloned().unwrap_or_default();
    assert!(
        connections
            .iter()
            .any(|c| c["token_id"] == token_id.as_str()),
        "{valid}"
    );
    let health = moto.counts().await?;
    println!("connections?status=valid: {health:?}");
    assert_eq!(health, [("DynamoDB_20120810.Query".to_owned(), 1)].into());

    moto.start_counting().await?;
    let (_, deleted) = w
        .bot_json(Method::DELETE, &format!("/tokens/{token_id}"))
        .await?;
    assert_eq!(deleted["deleted"], Value::Bool(true));
    let delete = moto.counts().await?;
    println!("delete_token: {delete:?}");
    // The token, its owner index and its event in one transaction; the bus hears of it from
    // the relay, not from the request.
    assert_eq!(delete.get("DynamoDB_20120810.TransactWriteItems"), Some(&1));
    assert_eq!(delete.get("AWSEvents.PutEvents"), None);
    assert_eq!(w.events_of("token_deleted:demo").await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn events_reach_a_queue_through_an_eventbridge_rule() -> anyhow::Result<()> {
    let w = World::with(Backend::Aws).await?;
    let token_id = w.connect_user("u-1").await?;
    let events = w.events_of("token:demo").await?;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e["source"], "bot-integrations");
    assert_eq!(e["detail"]["token_id"], token_id.as_str());
    assert_eq!(e["detail"]["payload"], token_id.as_str());
    assert_eq!(e["detail"]["user_id"], "u-1");
    assert!(e["detail"]["event_id"]
        .as_str()
        .is_some_and(|id| id.starts_with("evt_")));
    Ok(())
}
