//! The port contract suites of `shared::contract` on the AWS adapters, against moto. The
//! embedded adapters run the same suites in `shared`'s own tests.

use e2e::moto::{Moto, Resources, TABLE};
use shared::adapters::dynamodb::DynamoStore;
use shared::adapters::eventbridge::EventBridgePublisher;
use shared::adapters::kms::KmsSealer;
use shared::contract;
use std::sync::Arc;

struct Aws {
    _dir: tempfile::TempDir,
    _moto: Moto,
    resources: Resources,
}

async fn aws() -> Aws {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(dir.path()).await.unwrap();
    let resources = Resources::create(&moto).await.unwrap();
    Aws {
        _dir: dir,
        _moto: moto,
        resources,
    }
}

/// The DynamoDB store on a fresh moto, with what keeps that moto running.
async fn dynamodb_store() -> (Aws, Arc<dyn shared::ports::Store>) {
    let a = aws().await;
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&a.resources.sdk),
        TABLE,
    ));
    (a, store)
}

/// Every store suite: `contracts::dynamodb::<suite>`.
mod dynamodb {
    shared::contract::store_contract_tests!(super::dynamodb_store());
}

#[tokio::test]
async fn kms_sealer() {
    let a = aws().await;
    let sealer = KmsSealer::new(
        aws_sdk_kms::Client::new(&a.resources.sdk),
        &a.resources.kms_key_id,
    );
    contract::sealer_binds_each_blob_to_its_record(Arc::new(sealer)).await;
}

#[tokio::test]
async fn kms_sealer_opens_with_a_cold_cache_and_checks_the_context_at_kms() {
    use shared::ports::{Purpose, SealContext, Sealer};
    let a = aws().await;
    let kms = aws_sdk_kms::Client::new(&a.resources.sdk);
    let sealing = KmsSealer::new(kms.clone(), &a.resources.kms_key_id);
    let ctx = SealContext {
        purpose: Purpose::Token,
        bot: "acme",
        record: "tok_1",
    };
    let sealed = sealing.seal(b"secret", ctx).await.unwrap();
    // Another instance, with nothing cached, asks KMS to decrypt the data key.
    let reading = KmsSealer::new(kms, &a.resources.kms_key_id);
    assert_eq!(reading.cached_keys(), 0);
    assert_eq!(
        reading.open(&sealed, ctx).await.unwrap().as_slice(),
        b"secret"
    );
    assert_eq!(reading.cached_keys(), 1);
    let elsewhere = SealContext {
        purpose: Purpose::Token,
        bot: "acme",
        record: "tok_2",
    };
    let cold = KmsSealer::new(
        aws_sdk_kms::Client::new(&a.resources.sdk),
        &a.resources.kms_key_id,
    );
    assert!(
        cold.open(&sealed, elsewhere).await.is_err(),
        "KMS refused the other context"
    );
}

#[tokio::test]
async fn eventbridge_publisher() {
    let a = aws().await;
    let publisher = EventBridgePublisher::new(
        aws_sdk_eventbridge::Client::new(&a.resources.sdk),
        e2e::moto::BUS,
        "bot-integrations",
    );
    contract::publisher_delivers_envelopes(Arc::new(publisher), "bot-integrations", || async {
        a.resources.drain_queue().await.unwrap()
    })
    .await;
}
