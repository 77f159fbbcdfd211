//! Events on AWS: `PutEvents` on the configured bus, as the `event-relay` function sends the
//! outbox items the table's stream brings it. Entries that EventBridge reports as failed
//! (`FailedEntryCount`) are sent again; what still fails is returned as an error, and the
//! relay reports its stream record as failed, so Lambda tries it again.

use crate::domain::events::OutboxEvent;
use crate::ports::{EventPublisher, PublishError};
use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use std::time::Duration;

const ATTEMPTS: u32 = 4;

pub struct EventBridgePublisher {
    client: Client,
    bus: String,
    source: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{count} event(s) not accepted by EventBridge after {ATTEMPTS} attempts: {codes}")]
pub struct FailedEntries {
    pub count: usize,
    pub codes: String,
}

impl EventBridgePublisher {
    pub fn new(client: Client, bus: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
            source: source.into(),
        }
    }

    fn entry(&self, e: &OutboxEvent) -> Result<PutEventsRequestEntry, PublishError> {
        Ok(PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(&self.source)
            .detail_type(&e.detail_type)
            .detail(&e.detail)
            .build())
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, events: &[OutboxEvent]) -> Result<(), PublishError> {
        let mut pending: Vec<PutEventsRequestEntry> = events
            .iter()
            .map(|e| self.entry(e))
            .collect::<Result<_, _>>()?;
        let mut delay = Duration::from_millis(100);
        let mut codes = String::new();
        for attempt in 1..=ATTEMPTS {
            // PutEvents takes at most 10 entries a call.
            let mut failed = Vec::new();
            codes.clear();
            for chunk in pending.chunks(10) {
                let out = self
                    .client
                    .put_events()
                    .set_entries(Some(chunk.to_vec()))
                    .send()
                    .await
                    .map_err(|e| PublishError::Unavailable(Box::new(e)))?;
                if out.failed_entry_count > 0 {
                    for (sent, result) in chunk.iter().zip(out.entries()) {
                        if let Some(code) = result.error_code() {
                            codes.push_str(code);
                            codes.push(' ');
                            failed.push(sent.clone());
                        }
                    }
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            tracing::warn!(
                attempt,
                failed = failed.len(),
                "EventBridge refused some events; sending them again"
            );
            pending = failed;
            if attempt < ATTEMPTS {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        Err(PublishError::Unavailable(Box::new(FailedEntries {
            count: pending.len(),
            codes: codes.trim().to_owned(),
        })))
    }
}
