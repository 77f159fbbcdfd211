//! Outbox items: one per event, put in the transaction of the change it reports. The table's
//! stream carries each new one to the `event-relay` function, which sends it to EventBridge
//! and then gives it a `ttl` (`DELIVERED_TTL_SECS`); undelivered items never expire.

use super::*;
use crate::domain::events::OutboxEvent;
use crate::ports::OutboxStore;

/// The partition key prefix of outbox items; the relay's stream filter names it.
pub const OUTBOX_PREFIX: &str = "OUTBOX#";
/// How long a delivered item stays, for an operator to look at.
pub const DELIVERED_TTL_SECS: i64 = 24 * 3600;

fn outbox_item(e: &OutboxEvent) -> Item {
    let mut item = key(format!("{OUTBOX_PREFIX}{}", e.event_id), "EVENT");
    item.insert("event_id".into(), s(e.event_id.as_str()));
    item.insert("detail_type".into(), s(e.detail_type.as_str()));
    item.insert("occurred_at".into(), s(e.occurred_at.as_str()));
    item.insert("detail".into(), s(e.detail.as_str()));
    item
}

/// The event an outbox item holds (as the stream's `NewImage` shows it).
pub fn outbox_event_of(item: &Item) -> Result<OutboxEvent, StoreError> {
    Ok(OutboxEvent {
        event_id: get_s(item, "event_id")?.to_owned(),
        detail_type: get_s(item, "detail_type")?.to_owned(),
        occurred_at: get_s(item, "occurred_at")?.to_owned(),
        detail: get_s(item, "detail")?.to_owned(),
    })
}

impl DynamoStore {
    /// The puts of `events`, for a transaction.
    pub(super) fn outbox_puts(
        &self,
        events: &[Event],
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        events
            .iter()
            .map(|e| {
                Ok(TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(outbox_item(&e.to_outbox())))
                            .condition_expression("attribute_not_exists(pk)")
                            .build()
                            .map_err(unavailable)?,
                    )
                    .build())
            })
            .collect()
    }

    /// Marks a delivered outbox item to expire (the relay, after `PutEvents` took it).
    pub async fn outbox_delivered(&self, event_id: &str, now: i64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("{OUTBOX_PREFIX}{event_id}"), "EVENT")))
            .update_expression("SET delivered_at = :now, #ttl = :ttl")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":ttl", n(now + DELIVERED_TTL_SECS))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                if is_conditional(&e) {
                    // Expired already, or removed by an operator: nothing to mark.
                    Ok(())
                } else {
                    Err(unavailable(e))
                }
            })
    }
}

#[async_trait]
impl OutboxStore for DynamoStore {
    async fn record_events(&self, events: &[Event]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        match self.transact(self.outbox_puts(events)?).await? {
            Ok(()) => Ok(()),
            Err(codes) => Err(StoreError::Unavailable(
                format!("the events were not written: {}", codes.join(", ")).into(),
            )),
        }
    }

    async fn undelivered(&self, event_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .get(key(format!("{OUTBOX_PREFIX}{event_id}"), "EVENT"))
            .await?
            .is_some_and(|item| !item.contains_key("delivered_at")))
    }
}
