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
        self.round_at(time::OffsetDateTime::now_utc().unix_timestamp())
            .await
    }

    /// [`Self::round`] as of `now` (unix seconds).
    pub async fn round_at(&self, now: i64) -> Result<usize, crate::ports::StoreError> {
        let due = self.queue.claim_due(now, now + CLAIM_SECS, BATCH).await?;
        let count = due.len();
        for queued in due {
            self.deliver(queued, now).await?;
        }
        Ok(count)
    }

    async fn deliver(&self, q: Queued, now: i64) -> Result<(), crate::ports::StoreError> {
        let event_id = q.event.event_id.as_str();
        let mut destinations = vec![(Destination::File, &self.file)];
        if let Some(hook) = &self.webhook {
            destinations.push((Destination::Webhook, hook));
        }
        destinations.retain(|(d, _)| !q.done.contains(d));
        let last = destinations.len().saturating_sub(1);
        for (i, (destination, publisher)) in destinations.into_iter().enumerate() {
            if let Err(e) = publisher.publish(std::slice::from_ref(&q.event)).await {
                let attempts = q.attempts + 1;
                let wait = backoff_secs(attempts);
                if attempts >= 10 {
                    tracing::error!(%event_id, detail_type = %q.event.detail_type, ?destination, attempts, retry_in_secs = wait, error = %e, "event still not delivered; kept in the outbox");
                } else {
                    tracing::warn!(%event_id, detail_type = %q.event.detail_type, ?destination, attempts, retry_in_secs = wait, error = %e, "event not delivered; will retry");
                }
                return self.queue.failed(event_id, attempts, now + wait).await;
            }
            // The last destination needs no note: the event leaves the outbox.
            if i < last {
                self.queue.delivered_to(event_id, destination).await?;
            }
        }
        tracing::debug!(%event_id, "event delivered");
        self.queue.finished(event_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::jsonl_events::JsonlEvents;
    use crate::adapters::sqlite::SqliteStore;
    use crate::domain::events::{Event, EventKind, OutboxEvent};
    use crate::domain::ids::{Alias, BotId, ProviderName};
    use crate::domain::token::Owner;
    use crate::ports::{OutboxStore, PublishError};
    use std::sync::Mutex;

    /// A webhook that is down until `up` is set, and records what it gets.
    #[derive(Default)]
    struct Hook {
        up: std::sync::atomic::AtomicBool,
        got: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl EventPublisher for Hook {
        async fn publish(&self, events: &[OutboxEvent]) -> Result<(), PublishError> {
            if !self.up.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(PublishError::Unavailable("webhook down (test)".into()));
            }
            let mut got = self.got.lock().unwrap();
            got.extend(events.iter().map(|e| e.event_id.clone()));
            Ok(())
        }
    }

    fn dispatcher(dir: &std::path::Path, hook: Arc<Hook>) -> (SqliteStore, Dispatcher) {
        let store = SqliteStore::open(&dir.join("db")).unwrap();
        let d = Dispatcher {
            queue: Arc::new(store.clone()),
            file: Arc::new(JsonlEvents::new(&dir.join("events.jsonl"), "t")),
            webhook: Some(hook),
        };
        (store, d)
    }

    fn lines(dir: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    /// A delivery pending when the process dies happens after the restart, at the time its
    /// stored backoff says, once per destination.
    #[tokio::test]
    async fn retries_and_their_times_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let hook = Arc::new(Hook::default());
        let (store, first) = dispatcher(dir.path(), hook.clone());
        let event = Event::new(
            EventKind::Token,
            &BotId::parse("acme").unwrap(),
            &Alias::parse("cal").unwrap(),
            &ProviderName::parse("google").unwrap(),
            &Owner::Bot,
            None,
            time::OffsetDateTime::now_utc(),
        );
        let id = event.detail.event_id.clone();
        store.record_events(&[event]).await.unwrap();

        let t = 1_000_000;
        assert_eq!(first.round_at(t).await.unwrap(), 1);
        assert_eq!(
            lines(dir.path()),
            std::slice::from_ref(&id),
            "the file has it"
        );
        assert!(
            store.undelivered(&id).await.unwrap(),
            "the webhook does not"
        );
        assert_eq!(first.round_at(t).await.unwrap(), 0, "not due before 1 s");
        assert_eq!(first.round_at(t + 1).await.unwrap(), 1);
        assert_eq!(first.round_at(t + 2).await.unwrap(), 0, "then 2 s");
        drop((first, store));

        // "Restarted": a new dispatcher on the same database; the webhook is back.
        hook.up.store(true, std::sync::atomic::Ordering::SeqCst);
        let (store, second) = dispatcher(dir.path(), hook.clone());
        assert_eq!(
            second.round_at(t + 2).await.unwrap(),
            0,
            "its next try is at t + 3"
        );
        assert_eq!(second.round_at(t + 3).await.unwrap(), 1);
        assert_eq!(*hook.got.lock().unwrap(), std::slice::from_ref(&id));
        assert_eq!(
            lines(dir.path()),
            std::slice::from_ref(&id),
            "the line is not written again"
        );
        assert!(!store.undelivered(&id).await.unwrap());
        assert_eq!(second.round_at(t + 1_000).await.unwrap(), 0);
    }

    /// Two dispatchers on one database (two processes): an event goes out once.
    #[tokio::test]
    async fn a_claimed_event_is_not_delivered_twice() {
        let dir = tempfile::tempdir().unwrap();
        let hook = Arc::new(Hook::default());
        hook.up.store(true, std::sync::atomic::Ordering::SeqCst);
        let (store, a) = dispatcher(dir.path(), hook.clone());
        let (_, b) = dispatcher(dir.path(), hook.clone());
        let events: Vec<Event> = (0..20)
            .map(|_| {
                Event::new(
                    EventKind::Token,
                    &BotId::parse("acme").unwrap(),
                    &Alias::parse("cal").unwrap(),
                    &ProviderName::parse("google").unwrap(),
                    &Owner::Bot,
                    None,
                    time::OffsetDateTime::now_utc(),
                )
            })
            .collect();
        store.record_events(&events).await.unwrap();
        let (x, y) = tokio::join!(a.round_at(5), b.round_at(5));
        assert_eq!(x.unwrap() + y.unwrap(), 20);
        let mut got = hook.got.lock().unwrap().clone();
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 20);
        assert_eq!(hook.got.lock().unwrap().len(), 20);
        assert_eq!(lines(dir.path()).len(), 20);
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let waits: Vec<i64> = (1..=12).map(backoff_secs).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff_secs(200), 300);
    }
}
