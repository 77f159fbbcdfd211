//! Event relay: the table's stream, filtered to new outbox items, to EventBridge. Reports
//! the first record it could not send as a partial batch failure, so Lambda retries from
//! there and, when retries run out, sends the batch's details to the dead-letter queue.

use aws_lambda_events::dynamodb::Event as StreamEvent;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::domain::events::OutboxEvent;
use shared::relay::{relay, Relayed};

/// An outbox item as the stream's new image shows it.
#[derive(serde::Deserialize)]
struct OutboxImage {
    event_id: String,
    detail_type: String,
    occurred_at: String,
    detail: String,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::init_lambda();
    let config = shared::config::RelayConfig::from_env()?;
    let (table, bus) = shared::wiring::aws::relay(&config).await;
    let (table, bus) = (&table, &bus);
    run(service_fn(
        move |event: LambdaEvent<StreamEvent>| async move {
            let records = outbox_records(event.payload);
            let failed = relay(&records, bus, |id| async move {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                table.outbox_delivered(&id, now).await
            })
            .await;
            let mut answer = DynamoDbEventResponse::default();
            if let Some(sequence_number) = failed {
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = Some(sequence_number);
                answer.batch_item_failures.push(failure);
            }
            Ok::<_, Error>(answer)
        },
    ))
    .await
}

/// The outbox events of a batch, in stream order. A record that is not an outbox item's
/// insert (the event source mapping's filter lets none through) or cannot be read is logged
/// and passed over, so it cannot hold up the shard.
fn outbox_records(event: StreamEvent) -> Vec<Relayed> {
    event
        .records
        .into_iter()
        .filter_map(|r| {
            let seq = r.change.sequence_number.clone().unwrap_or_default();
            match serde_dynamo::from_item::<_, OutboxImage>(r.change.new_image) {
                Ok(image) => Some(Relayed {
                    sequence_number: seq,
                    event: OutboxEvent {
                        event_id: image.event_id,
                        detail_type: image.detail_type,
                        occurred_at: image.occurred_at,
                        detail: image.detail,
                    },
                }),
                Err(e) => {
                    tracing::error!(sequence_number = %seq, event_name = %r.event_name, error = %e, "stream record is not an outbox item; passed over");
                    None
                }
            }
        })
        .collect()
}
