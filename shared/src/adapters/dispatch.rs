//! The embedded backend's event delivery: a task that takes due events from the outbox and
//! hands each to `events.jsonl`, then to the webhook. An event leaves the outbox only when
//! every destination has it; a failed delivery is retried with backoff, its count and next
//! time stored with it, so a delivery pending when the process dies (even by `kill -9`)
//! happens after the restart. A destination that has an event is noted, so a webhook retry
//! does not write the line again.

use crate::ports::{Destination, EventPublisher, OutboxQueue, Queued};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How long a dispatcher owns the events it took; another process's dispatcher (two local
/// servers on one data directory) takes them over after that.
const CLAIM_SECS: i64 = 60;
/// Events taken per round.
const BATCH: u32 = 50;
/// The longest wait between two attempts of one event.
const MAX_BACKOFF_SECS: i64 = 300;
/// With nothing due, how often the outbox is looked at anyway (for retries coming due).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Seconds before attempt `attempts + 1`: 1, 2, 4, ... up to five minutes.
pub fn backoff_secs(attempts: u32) -> i64 {
    match attempts.saturating_sub(1) {
        n @ 0..=8 => (1i64 << n).min(MAX_BACKOFF_SECS),
        _ => MAX_BACKOFF_SECS,
    }
}

pub struct Dispatcher {
    pub queue: Arc<dyn OutboxQueue>,
    pub file: Arc<dyn EventPublisher>,
    pub webhook: Option<Arc<dyn EventPublisher>>,
}

impl Dispatcher {
    /// Delivers until the process ends. `written` resolves when new events were written, so
    /// they go out at once rather than at the next poll.
    pub async fn run<F, Fut>(self, written: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            match self.round().await {
                Ok(0) => {
                    let _ = tokio::time::timeout(IDLE_POLL, written()).await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "outbox not readable; trying again");
                    tokio::time::sleep(IDLE_POLL).await;
                }
            }
        }
    }

    /// One round: every due event gets one attempt. Answers how many were due.
    pub async fn round(&self) -> Result<usize, crate::ports::StoreError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let due = self.queue.claim_due(now, now + CLAIM_SECS, BATCH).await?;
        let count = due.len();
        for queued in due {
            self.deliver(queued).await?;
        }
        Ok(count)
    }

    async fn deliver(&self, q: Queued) -> Result<(), crate::ports::StoreError> {
        let event_id = q.event.event_id.as_str();
        let mut destinations = vec![(Destination::File, &self.file)];
        if let Some(hook) = &self.webhook {
            destinations.push((Destination::Webhook, hook));
        }
        for (destination, publisher) in destinations {
            if q.done.contains(&destination) {
                continue;
            }
            if let Err(e) = publisher.publish(std::slice::from_ref(&q.event)).await {
                let attempts = q.attempts + 1;
                let wait = backoff_secs(attempts);
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                if attempts >= 10 {
                    tracing::error!(%event_id, detail_type = %q.event.detail_type, ?destination, attempts, retry_in_secs = wait, error = %e, "event still not delivered; kept in the outbox");
                } else {
                    tracing::warn!(%event_id, detail_type = %q.event.detail_type, ?destination, attempts, retry_in_secs = wait, error = %e, "event not delivered; will retry");
                }
                return self.queue.failed(event_id, attempts, now + wait).await;
            }
            self.queue.delivered_to(event_id, destination).await?;
        }
        tracing::debug!(%event_id, "event delivered");
        self.queue.finished(event_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let waits: Vec<i64> = (1..=12).map(backoff_secs).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff_secs(200), 300);
    }
}
