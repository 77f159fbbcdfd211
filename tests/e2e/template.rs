//! `template.yaml` against what the functions really do: each role must allow exactly the
//! AWS actions its function was seen using, on the exact resources (security item 19).

use e2e::moto::template;
use e2e::runtime_api::{http_event, Deployment, FIXTURE_ADMIN_KEY as ADMIN_KEY, PUBLIC_URL};
use e2e::{client, location, Provider};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The policy documents of a role: its inline `Policies`, and the `AWS::IAM::RolePolicy`
/// resources attached to it (the statements for the key, which the key policy's reference to
/// the role keeps out of the role itself).
fn role_policies<'a>(resources: &'a serde_json::Map<String, Value>, role: &str) -> Vec<&'a Value> {
    let inline = resources[role]["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| &p["PolicyDocument"]);
    let attached = resources
        .values()
        .filter(|r| {
            r["Type"] == "AWS::IAM::RolePolicy" && r["Properties"]["RoleName"]["Ref"] == role
        })
        .map(|r| &r["Properties"]["PolicyDocument"]);
    inline.chain(attached).collect()
}

/// The actions each function's role allows, by binary name, from the template; what Lambda
/// itself does with the role is left out: logs, X-Ray, and for the relay the stream reads
/// and the dead-letter queue of its event source mapping.
fn allowed_by_template(t: &Value) -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let resources = t["Resources"].as_object().expect("Resources");
    let mut out = BTreeMap::new();
    for (name, r) in resources {
        if r["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let binary = r["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .expect("Binary")
            .to_owned();
        let role = r["Properties"]["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no role of its own"));
        let mut actions = BTreeSet::new();
        for document in role_policies(resources, role) {
            for st in document["Statement"].as_array().expect("Statement") {
                assert_eq!(st["Effect"], "Allow");
                let list: Vec<String> = match &st["Action"] {
                    Value::String(a) => vec![a.clone()],
                    Value::Array(a) => a
                        .iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect(),
                    other => panic!("unexpected Action {other}"),
                };
                for action in list {
                    assert!(
                        !action.contains('*'),
                        "{role} allows a wildcard action {action}"
                    );
                    assert_ne!(action, "dynamodb:Scan", "{role} allows Scan");
                    let platform = action.starts_with("logs:")
                        || action.starts_with("xray:")
                        || STREAM_READS.contains(&action.as_str())
                        || action == "sqs:SendMessage";
                    if st["Resource"] == "*" {
                        assert!(
                            action.starts_with("xray:"),
                            "{role}: {action} on every resource"
                        );
                    }
                    if action.starts_with("kms:") {
                        let keys = &st["Condition"]["ForAllValues:StringEquals"]
                            ["kms:EncryptionContextKeys"];
                        assert!(
                            keys.is_array(),
                            "{role}: {action} without an encryption-context condition"
                        );
                        assert!(
                            st["Condition"]["StringEquals"]["kms:EncryptionContext:purpose"]
                                != Value::Null,
                            "{role}: {action} not limited by purpose"
                        );
                    }
                    if !platform {
                        actions.insert(action);
                    }
                }
            }
        }
        out.insert(binary, actions);
    }
    Ok(out)
}

/// What an event source mapping reads a DynamoDB stream with, under the function's role.
const STREAM_READS: [&str; 4] = [
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
];

/// The IAM actions behind one recorded request, named by the `app/<binary>` in its
/// User-Agent. `TransactWriteItems` is authorised per item.
fn actions_of(request: &Value) -> Option<(String, Vec<String>)> {
    let headers = &request["headers"];
    let agent = headers["User-Agent"]
        .as_str()
        .or_else(|| headers["user-agent"].as_str())?;
    let app = agent
        .split_whitespace()
        .find_map(|w| w.strip_prefix("app/"))?
        .to_owned();
    let target = headers["X-Amz-Target"]
        .as_str()
        .or_else(|| headers["x-amz-target"].as_str())?;
    let (service, op) = target.split_once('.')?;
    let prefix = match service {
        s if s.starts_with("DynamoDB") => "dynamodb",
        "TrentService" => "kms",
        "AWSEvents" => "events",
        _ => return None,
    };
    if op != "TransactWriteItems" {
        return Some((app, vec![format!("{prefix}:{op}")]));
    }
    let body = request["body"].as_str().unwrap_or_default();
    let body = if request["body_encoded"] == true {
        use base64::Engine;
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .ok()?,
        )
        .ok()?
    } else {
        body.to_owned()
    };
    let parsed: Value = serde_json::from_str(&body).ok()?;
    let items = parsed["TransactItems"].as_array()?;
    let actions = items
        .iter()
        .flat_map(|i| i.as_object().into_iter().flat_map(|o| o.keys()))
        .map(|k| match k.as_str() {
            "ConditionCheck" => "dynamodb:ConditionCheckItem".to_owned(),
            other => format!("dynamodb:{other}Item"),
        })
        .collect();
    Some((app, actions))
}

#[tokio::test]
async fn each_role_allows_exactly_what_its_function_uses() -> anyhow::Result<()> {
    let allowed = allowed_by_template(&template()?)?;
    assert_eq!(
        allowed.keys().cloned().collect::<Vec<_>>(),
        [
            "event-relay",
            "oauth-callback",
            "oauth-start",
            "token-api",
            "token-maintenance"
        ]
    );

    let d = Deployment::start().await?;
    let (moto, start, callback, api) = (&d.aws.moto, &d.start, &d.callback, &d.api);
    let dir = tempfile::tempdir()?;
    let provider = Provider::start(dir.path()).await?;
    moto.start_counting().await?;

    let call = |method: &str, path: &str, key: &str, ct: &str, body: Option<String>| {
        http_event(
            "token-api.json",
            method,
            path,
            &[
                ("authorization", &format!("Bearer {key}")),
                ("content-type", ct),
            ],
            body.as_deref(),
        )
    };
    let ok = |answer: Value, status: u16| -> anyhow::Result<Value> {
        anyhow::ensure!(
            answer["statusCode"] == status,
            "expected {status}: {answer}"
        );
        Ok(serde_json::from_str(answer["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null))
    };
    let body =
        json!({"client_id": "demo-client", "client_secret": "s3cret", "issuer": provider.issuer,
               "api_base_url": format!("{}/api", provider.issuer)})
        .to_string();
    ok(
        api.invoke(call(
            "PUT",
            "/v1/admin/providers/demo",
            ADMIN_KEY,
            "application/json",
            Some(body),
        )?)
        .await?,
        200,
    )?;
    let bot = ok(
        api.invoke(call(
            "POST",
            "/v1/admin/bots",
            ADMIN_KEY,
            "application/json",
            Some(r#"{"bot_id":"acme"}"#.into()),
        )?)
        .await?,
        201,
    )?;
    let key = bot["api_key"].as_str().unwrap_or_default().to_owned();
    ok(
        api.invoke(call(
            "PUT",
            "/v1/bots/acme/integrations",
            &key,
            "application/yaml",
            Some(format!(
                "{}- provider: demo\n  alias: fresh\n  context: user\n  keep_fresh: true\n",
                e2e::INTEGRATIONS
            )),
        )?)
        .await?,
        200,
    )?;

    // Connect twice (a new token, then new credentials for it), with tokens due for refresh;
    // then a token the maintenance job keeps fresh, whose grant ends soon.
    provider.control(json!({"token_ttl": 1})).await?;
    for (alias, user) in [("demo", "u-1"), ("demo", "u-1"), ("fresh", "u-2")] {
        if alias == "fresh" {
            provider.control(json!({"refresh_token_ttl": 12})).await?;
        }
        let link = ok(
            api.invoke(call(
                "POST",
                "/v1/bots/acme/oauth-links",
                &key,
                "application/json",
                Some(json!({"alias": alias, "user_id": user}).to_string()),
            )?)
            .await?,
            201,
        )?;
        let path = link["url"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches(PUBLIC_URL)
            .to_owned();
        let to_provider = start
            .invoke(http_event("oauth-start.json", "GET", &path, &[], None)?)
            .await?;
        let authorize = to_provider["headers"]["location"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let browser_key = to_provider["cookies"][0]
            .as_str()
            .and_then(|c| c.split(';').next())
            .unwrap_or_default()
            .to_owned();
        let back = location(client().get(&authorize).send().await?)?;
        let mut event = http_event(
            "oauth-callback.json",
            "GET",
            back.trim_start_matches(PUBLIC_URL),
            &[],
            None,
        )?;
        event["cookies"] = json!([browser_key]);
        let done = callback.invoke(event).await?;
        ok(done, 200)?;
    }
    provider.control(json!({"token_ttl": 3600})).await?;
    // The 1-second token is due once it has expired.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let tokens = ok(
        api.invoke(call(
            "GET",
            "/v1/bots/acme/users/u-1/tokens",
            &key,
            "application/json",
            None,
        )?)
        .await?,
        200,
    )?;
    let token_id = tokens["tokens"]["demo"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let access = ok(
        api.invoke(call(
            "GET",
            &format!("/v1/bots/acme/tokens/{token_id}/access-token"),
            &key,
            "application/json",
            None,
        )?)
        .await?,
        200,
    )?;
    assert_eq!(access["status"], "valid");
    assert_eq!(
        provider.token_requests("refresh_token").len(),
        1,
        "the refresh path ran"
    );
    // A call through the proxy, in the token API function.
    let seen = ok(
        api.invoke(call(
            "GET",
            &format!("/v1/bots/acme/tokens/{token_id}/proxy/me?x=1"),
            &key,
            "application/json",
            None,
        )?)
        .await?,
        200,
    )?;
    assert_eq!(seen["path"], "/api/me", "{seen}");
    assert_eq!(seen["bearer_issued"], true, "{seen}");
    // The delete's revocation fails: it is left to the maintenance job.
    provider.control(json!({"revoke_failures": 1})).await?;
    let deleted = ok(
        api.invoke(call(
            "DELETE",
            &format!("/v1/bots/acme/tokens/{token_id}"),
            &key,
            "application/json",
            None,
        )?)
        .await?,
        200,
    )?;
    assert_eq!(deleted["deleted"], true);
    // The job: the keep_fresh token refreshed, the revocation done; a few seconds later, the
    // warning that the fresh token's grant ends.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let report = d.maintenance.invoke(json!({})).await?;
    assert_eq!(report["refreshed"], 1, "{report}");
    assert_eq!(report["revocations_confirmed"], 1, "{report}");
    let report = e2e::eventually(15, "the expiry warning", || async {
        let report = d.maintenance.invoke(json!({})).await?;
        Ok((report["warned"] == 1).then_some(report))
    })
    .await?;
    assert_eq!(report["refreshed"], 0, "{report}");
    // The events of all that, from the stream through the relay to the bus.
    let events = d.aws.events().await?;
    for kind in [
        "token:demo",
        "token_deleted:demo",
        "token_revocation_confirmed:demo",
        "token_expiring:fresh",
    ] {
        assert!(
            events.iter().any(|e| e["detail-type"] == kind),
            "{kind} not relayed: {events:?}"
        );
    }

    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for request in moto.recording().await? {
        if let Some((app, actions)) = actions_of(&request) {
            used.entry(app).or_default().extend(actions);
        }
    }
    println!("actions used: {used:#?}");
    for (function, allows) in &allowed {
        let uses = used.get(function).cloned().unwrap_or_default();
        let unused: Vec<_> = allows.difference(&uses).collect();
        let missing: Vec<_> = uses.difference(allows).collect();
        assert!(
            unused.is_empty(),
            "{function}'s role allows {unused:?}, which it does not use"
        );
        assert!(
            missing.is_empty(),
            "{function} uses {missing:?}, which its role does not allow"
        );
    }
    Ok(())
}

/// The KMS actions that use the key, and `kms:CreateGrant`, which hands out their use.
const KEY_USE: [&str; 9] = [
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:CreateGrant",
];

/// Whether an IAM action pattern (wildcards `*` and `?`, any case) covers `action`.
fn covers(pattern: &str, action: &str) -> bool {
    fn go(p: &[u8], a: &[u8]) -> bool {
        match p.split_first() {
            None => a.is_empty(),
            Some((b'*', rest)) => (0..=a.len()).any(|i| go(rest, &a[i..])),
            Some((b'?', rest)) => !a.is_empty() && go(rest, &a[1..]),
            Some((c, rest)) => {
                a.first().is_some_and(|x| x.eq_ignore_ascii_case(c)) && go(rest, &a[1..])
            }
        }
    }
    go(pattern.as_bytes(), action.as_bytes())
}

/// A policy element that is one string or a list of strings.
fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// What a statement's `Principal` names: the logical id of each role given as
/// `!GetAtt <Role>.Arn`, `None` for anything else (an account, an ARN, `*`, a service).
fn principals(st: &Value) -> Vec<Option<&str>> {
    let principal = &st["Principal"];
    let named = principal.as_object().map_or(0, |p| p.len());
    let aws: Vec<&Value> = match &principal["AWS"] {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut out: Vec<Option<&str>> = aws
        .into_iter()
        .map(|p| match &p["Fn::GetAtt"] {
            Value::Array(a) if a.len() == 2 && a[1] == "Arn" => a[0].as_str(),
            _ => None,
        })
        .collect();
    // Principal types other than AWS (Service, Federated, ...) name no function role.
    if named != 1 {
        out.push(None);
    }
    out
}

#[test]
fn the_schedule_only_invokes_the_maintenance_function() -> anyhow::Result<()> {
    let t = template()?;
    let resources = t["Resources"].as_object().expect("Resources");
    let schedules: Vec<&Value> = resources
        .values()
        .filter(|r| r["Type"] == "AWS::Scheduler::Schedule")
        .collect();
    assert_eq!(schedules.len(), 1);
    let target = &schedules[0]["Properties"]["Target"];
    assert_eq!(
        target["Arn"],
        json!({"Fn::GetAtt": ["TokenMaintenanceFunction", "Arn"]})
    );
    let role = target["RoleArn"]["Fn::GetAtt"][0]
        .as_str()
        .expect("the schedule's role");
    let trust = &resources[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(
        trust["Principal"],
        json!({"Service": "scheduler.amazonaws.com"})
    );
    assert_eq!(
        trust["Condition"]["StringEquals"]["aws:SourceAccount"],
        json!({"Ref": "AWS::AccountId"}),
        "only this account's schedules may use the role"
    );
    let statements: Vec<&Value> = role_policies(resources, role)
        .into_iter()
        .flat_map(|d| d["Statement"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(statements.len(), 1, "{statements:?}");
    assert_eq!(strings(&statements[0]["Action"]), ["lambda:InvokeFunction"]);
    assert_eq!(statements[0]["Resource"], target["Arn"]);
    // The job reads what is due from the index, never by scanning the table.
    let maintenance = role_policies(resources, "TokenMaintenanceRole");
    let query: Vec<&Value> = maintenance
        .iter()
        .flat_map(|d| d["Statement"].as_array().into_iter().flatten())
        .filter(|st| strings(&st["Action"]).contains(&"dynamodb:Query"))
        .collect();
    assert_eq!(query.len(), 1);
    assert_eq!(
        query[0]["Resource"],
        json!({"Fn::Sub": "${Table.Arn}/index/due"})
    );
    Ok(())
}

#[test]
fn only_the_functions_use_the_key_and_put_events() -> anyhow::Result<()> {
    let t = template()?;
    let resources = t["Resources"].as_object().expect("Resources");
    let roles: BTreeSet<&str> = resources
        .values()
        .filter(|r| r["Type"] == "AWS::Serverless::Function")
        .filter_map(|r| r["Properties"]["Role"]["Fn::GetAtt"][0].as_str())
        .collect();
    assert_eq!(roles.len(), 5, "one role per function: {roles:?}");
    let source = json!({"Ref": "EventSource"});

    // The key policy: the account administers the key; only the functions' roles use it,
    // each statement limited to the service's encryption context.
    let mut in_key_policy = BTreeSet::new();
    let mut administered = false;
    for st in resources["Key"]["Properties"]["KeyPolicy"]["Statement"]
        .as_array()
        .expect("key policy statements")
    {
        if st["Effect"] != "Allow" {
            continue;
        }
        assert!(
            st.get("NotAction").is_none() && st.get("NotPrincipal").is_none(),
            "{st}"
        );
        let actions = strings(&st["Action"]);
        let uses: Vec<&str> = KEY_USE
            .into_iter()
            .filter(|u| actions.iter().any(|a| covers(a, u)))
            .collect();
        if uses.is_empty() {
            assert!(
                st["Principal"]["AWS"]["Fn::Sub"]
                    .as_str()
                    .is_some_and(|arn| arn.ends_with(":root")),
                "only the account administers the key: {st}"
            );
            assert!(!actions.contains(&"kms:*") && !actions.contains(&"*"));
            administered |= actions.iter().any(|a| covers(a, "kms:PutKeyPolicy"));
            continue;
        }
        let users: Vec<&str> = principals(st)
            .into_iter()
            .map(|p| {
                p.filter(|r| roles.contains(r))
                    .unwrap_or_else(|| panic!("{} may use the key: {st}", st["Principal"]))
            })
            .collect();
        let purposes = strings(&st["Condition"]["StringEquals"]["kms:EncryptionContext:purpose"]);
        let keys =
            strings(&st["Condition"]["ForAllValues:StringEquals"]["kms:EncryptionContextKeys"]);
        assert!(
            !purposes.is_empty()
                && purposes
                    .iter()
                    .all(|p| ["token", "client_secret"].contains(p)),
            "{uses:?} not limited by purpose: {st}"
        );
        assert_eq!(keys, ["purpose", "bot", "record"], "{uses:?}: {st}");
        for role in users {
            for action in &uses {
                for purpose in &purposes {
                    in_key_policy.insert((role, *action, *purpose));
                }
            }
        }
    }
    assert!(administered, "nobody may change the key policy");
    assert!(!in_key_policy.is_empty(), "no function may use the key");

    // The roles' own statements grant the same uses, and publish only the service's events.
    let mut in_role_policies = BTreeSet::new();
    let mut publishers = BTreeSet::new();
    for role in &roles {
        for document in role_policies(resources, role) {
            for st in document["Statement"].as_array().expect("Statement") {
                let actions = strings(&st["Action"]);
                let purposes =
                    strings(&st["Condition"]["StringEquals"]["kms:EncryptionContext:purpose"]);
                for action in actions.iter().filter(|a| a.starts_with("kms:")) {
                    for purpose in &purposes {
                        in_role_policies.insert((*role, *action, *purpose));
                    }
                }
                if actions.contains(&"events:PutEvents") {
                    assert_eq!(
                        st["Condition"]["StringEquals"]["events:source"], source,
                        "{role} may put events with any source"
                    );
                    publishers.insert(*role);
                }
            }
        }
    }
    assert_eq!(in_key_policy, in_role_policies);

    // The bus policy: PutEvents only, only by the roles that publish, only with the source.
    let mut bus_statements: Vec<&Value> = Vec::new();
    for r in resources.values() {
        if r["Type"] == "AWS::Events::EventBusPolicy" {
            assert_eq!(r["Properties"]["EventBusName"], json!({"Ref": "Bus"}));
            bus_statements.push(&r["Properties"]["Statement"]);
        }
        if r["Type"] == "AWS::Events::EventBus" {
            if let Some(list) = r["Properties"]["Policy"]["Statement"].as_array() {
                bus_statements.extend(list);
            }
        }
    }
    let mut on_bus = BTreeSet::new();
    for st in bus_statements {
        if st["Effect"] != "Allow" {
            continue;
        }
        assert_eq!(strings(&st["Action"]), ["events:PutEvents"], "{st}");
        assert_eq!(
            st["Condition"]["StringEquals"]["events:source"], source,
            "{st}"
        );
        for principal in principals(st) {
            let role = principal
                .filter(|r| roles.contains(r))
                .unwrap_or_else(|| panic!("{} may put events: {st}", st["Principal"]));
            on_bus.insert(role);
        }
    }
    assert!(!on_bus.is_empty(), "the bus has no policy");
    assert_eq!(on_bus, publishers);
    Ok(())
}
