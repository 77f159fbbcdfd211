//! The event relay on AWS: the table's stream brings each new outbox item to the `event-relay`
//! function, which sends it to EventBridge with the event's own `detail-type` and marks it
//! delivered (it then expires by TTL). What is not sent is reported as the batch's first
//! failed record: Lambda retries the batch from there (splitting it on repeated errors) and,
//! after its retries, hands it to the on-failure destination. The outbox item stays in the
//! table until delivered, so nothing reported there is lost.

use crate::domain::events::OutboxEvent;
use crate::ports::EventPublisher;
use std::future::Future;

/// One stream record: its sequence number and the outbox event of its new image.
#[derive(Debug, Clone)]
pub struct Relayed {
    pub sequence_number: String,
    pub event: OutboxEvent,
}

/// EventBridge takes at most ten entries per `PutEvents`.
const PUT_EVENTS_MAX: usize = 10;

/// Sends `records` in order, ten at a time, and marks each sent one with `mark`. Answers the
/// sequence number of the first record that was not sent, if any: everything before it was
/// delivered; it and everything after it is for Lambda to retry. A mark that fails is logged
/// only: the event is out, and an unmarked item merely stays in the table.
pub async fn relay<M, Fut, E>(
    records: &[Relayed],
    bus: &dyn EventPublisher,
    mark: M,
) -> Option<String>
where
    M: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    for chunk in records.chunks(PUT_EVENTS_MAX) {
        let events: Vec<OutboxEvent> = chunk.iter().map(|r| r.event.clone()).collect();
        if let Err(e) = bus.publish(&events).await {
            tracing::error!(error = %e, first = %chunk[0].event.event_id, count = chunk.len(), "events not accepted by EventBridge; reporting the batch from here as failed");
            return Some(chunk[0].sequence_number.clone());
        }
        for r in chunk {
            tracing::info!(event_id = %r.event.event_id, detail_type = %r.event.detail_type, "event relayed");
            if let Err(e) = mark(r.event.event_id.clone()).await {
                tracing::warn!(event_id = %r.event.event_id, error = %e, "relayed event not marked delivered; its outbox item stays");
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::PublishError;
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// Takes `accept` calls, then refuses everything.
    struct Bus {
        accept: Mutex<usize>,
        got: Mutex<Vec<Vec<String>>>,
    }

    #[async_trait]
    impl EventPublisher for Bus {
        async fn publish(&self, events: &[OutboxEvent]) -> Result<(), PublishError> {
            let mut accept = self.accept.lock().unwrap();
            if *accept == 0 {
                return Err(PublishError::Unavailable("bus down (test)".into()));
            }
            *accept -= 1;
            self.got
                .lock()
                .unwrap()
                .push(events.iter().map(|e| e.event_id.clone()).collect());
            Ok(())
        }
    }

    fn record(n: usize) -> Relayed {
        Relayed {
            sequence_number: format!("seq-{n:03}"),
            event: OutboxEvent {
                event_id: format!("evt_{n}"),
                detail_type: "token:cal".into(),
                occurred_at: "2026-11-24T00:00:00Z".into(),
                detail: "{}".into(),
            },
        }
    }

    #[tokio::test]
    async fn sends_in_tens_and_reports_the_first_record_not_sent() {
        let records: Vec<Relayed> = (0..25).map(record).collect();
        let bus = Bus {
            accept: Mutex::new(2),
            got: Mutex::default(),
        };
        let marked = Mutex::new(Vec::new());
        let failed = relay(&records, &bus, |id| {
            marked.lock().unwrap().push(id);
            async { Ok::<(), String>(()) }
        })
        .await;
        assert_eq!(failed.as_deref(), Some("seq-020"));
        {
            let got = bus.got.lock().unwrap();
            assert_eq!(got.len(), 2);
            assert_eq!(got[0].len(), 10);
            assert_eq!(got[1][9], "evt_19");
        }
        assert_eq!(
            marked.lock().unwrap().len(),
            20,
            "only what was sent is marked"
        );

        // All accepted, a mark failing: nothing reported, nothing sent twice.
        let bus = Bus {
            accept: Mutex::new(9),
            got: Mutex::default(),
        };
        let failed = relay(&records[..3], &bus, |_| async {
            Err::<(), _>("table unreachable")
        })
        .await;
        assert_eq!(failed, None);
        assert_eq!(bus.got.lock().unwrap().len(), 1);
    }
}
