//! The outbox: events written in the transaction of the change they report, delivered by the
//! dispatcher (`adapters::dispatch`), which keeps each event's attempts and next try here.

use super::*;
use crate::ports::{Destination, OutboxQueue, OutboxStore, Queued};

/// The events as rows, made before entering a blocking closure.
pub(crate) fn outbox_rows(events: &[Event]) -> Vec<OutboxEvent> {
    events.iter().map(Event::to_outbox).collect()
}

/// Writes events into the outbox of the transaction `tx`, due at once.
pub(crate) fn insert_events(
    tx: &rusqlite::Transaction<'_>,
    events: &[OutboxEvent],
) -> rusqlite::Result<()> {
    for e in events {
        tx.execute(
            "INSERT INTO outbox (event_id, detail_type, occurred_at, detail) VALUES (?1, ?2, ?3, ?4)",
            params![e.event_id, e.detail_type, e.occurred_at, e.detail],
        )?;
    }
    Ok(())
}

impl SqliteStore {
    /// Runs `change` in one durable transaction and, when it applied (`true`), writes
    /// `events` in the same transaction and wakes the dispatcher; `false` writes nothing.
    pub(super) async fn change_with_events<F>(
        &self,
        events: &[Event],
        change: F,
    ) -> Result<bool, StoreError>
    where
        F: FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<bool> + Send + 'static,
    {
        let events = outbox_rows(events);
        let applied = self
            .run(move |c| {
                let tx = c.transaction()?;
                if !change(&tx)? {
                    return Ok(false);
                }
                insert_events(&tx, &events)?;
                tx.commit()?;
                Ok(true)
            })
            .await?;
        if applied {
            self.signal_outbox();
        }
        Ok(applied)
    }
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn record_events(&self, events: &[Event]) -> Result<(), StoreError> {
        self.change_with_events(events, |_| Ok(true)).await?;
        Ok(())
    }

    async fn undelivered(&self, event_id: &str) -> Result<bool, StoreError> {
        let id = event_id.to_owned();
        self.read(move |c| {
            c.query_row("SELECT 1 FROM outbox WHERE event_id = ?1", [id], |_| Ok(()))
                .optional()
                .map(|found| found.is_some())
        })
        .await
    }
}

#[async_trait]
impl OutboxQueue for SqliteStore {
    async fn claim_due(&self, now: i64, until: i64, limit: u32) -> Result<Vec<Queued>, StoreError> {
        self.write(Durability::Ephemeral, move |c| {
            let mut stmt = c.prepare(
                "UPDATE outbox SET claimed_until = ?2
                 WHERE seq IN (SELECT seq FROM outbox
                               WHERE due_at <= ?1 AND (claimed_until IS NULL OR claimed_until <= ?1)
                               ORDER BY seq LIMIT ?3)
                 RETURNING seq, event_id, detail_type, occurred_at, detail, attempts, file_done, webhook_done",
            )?;
            let mut rows = stmt
                .query_map(params![now, until, limit], |r| {
                    let mut done = Vec::new();
                    if r.get::<_, bool>(6)? {
                        done.push(Destination::File);
                    }
                    if r.get::<_, bool>(7)? {
                        done.push(Destination::Webhook);
                    }
                    Ok((
                        r.get::<_, i64>(0)?,
                        Queued {
                            event: OutboxEvent {
                                event_id: r.get(1)?,
                                detail_type: r.get(2)?,
                                occurred_at: r.get(3)?,
                                detail: r.get(4)?,
                            },
                            attempts: r.get(5)?,
                            done,
                        },
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.sort_by_key(|(seq, _)| *seq);
            Ok(rows.into_iter().map(|(_, q)| q).collect())
        })
        .await
    }

    async fn delivered_to(
        &self,
        event_id: &str,
        destination: Destination,
    ) -> Result<(), StoreError> {
        let id = event_id.to_owned();
        let sql = match destination {
            Destination::File => "UPDATE outbox SET file_done = 1 WHERE event_id = ?1",
            Destination::Webhook => "UPDATE outbox SET webhook_done = 1 WHERE event_id = ?1",
        };
        self.write(Durability::Ephemeral, move |c| {
            c.execute(sql, [id]).map(|_| ())
        })
        .await
    }

    async fn finished(&self, event_id: &str) -> Result<(), StoreError> {
        let id = event_id.to_owned();
        self.write(Durability::Ephemeral, move |c| {
            c.execute("DELETE FROM outbox WHERE event_id = ?1", [id])
                .map(|_| ())
        })
        .await
    }

    async fn failed(&self, event_id: &str, attempts: u32, retry_at: i64) -> Result<(), StoreError> {
        let id = event_id.to_owned();
        self.write(Durability::Ephemeral, move |c| {
            c.execute(
                "UPDATE outbox SET attempts = ?2, due_at = ?3, claimed_until = NULL WHERE event_id = ?1",
                params![id, attempts, retry_at],
            )
            .map(|_| ())
        })
        .await
    }
}
