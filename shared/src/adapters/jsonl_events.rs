//! Events on one machine: each event's envelope is appended as one line to `events.jsonl`,
//! and, when a webhook is configured, POSTed there signed with HMAC-SHA256.
//!
//! Webhook requests carry `X-Integrations-Timestamp` (unix seconds) and
//! `X-Integrations-Signature: sha256=<hex>`, the HMAC of `<timestamp>.<body>` under the
//! shared secret, so a receiver can check origin and freshness.

use crate::domain::events::Event;
use crate::ports::{PublishError, EventPublisher};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::Sha256;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

pub const SIGNATURE_HEADER: &str = "X-Integrations-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Integrations-Timestamp";
const WEBHOOK_ATTEMPTS: u32 = 4;

/// The envelope shared with EventBridge's delivered events.
pub fn envelope(event: &Event, source: &str) -> serde_json::Value {
    json!({
        "version": "0",
        "id": event.detail.event_id,
        "detail-type": event.detail_type,
        "source": source,
        "time": event.detail.occurred_at,
        "resources": [],
        "detail": event.detail,
    })
}

pub struct Webhook {
    pub url: url::Url,
    pub secret: SecretString,
    pub client: reqwest::Client,
}

pub struct JsonlEvents {
    path: PathBuf,
    source: String,
    file: Mutex<()>,
    webhook: Option<std::sync::Arc<Webhook>>,
}

/// `sha256=<hex>` of `<timestamp>.<body>`.
pub fn sign(secret: &SecretString, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl JsonlEvents {
    pub fn new(path: &Path, source: &str, webhook: Option<Webhook>) -> Self {
        Self {
            path: path.to_owned(),
            source: source.to_owned(),
            file: Mutex::new(()),
            webhook: webhook.map(std::sync::Arc::new),
        }
    }

    async fn append(&self, lines: &[u8]) -> std::io::Result<()> {
        let _guard = self.file.lock().await;
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await?;
        f.write_all(lines).await?;
        f.sync_data().await
    }
}

async fn deliver(hook: &Webhook, event_id: String, body: Vec<u8>) {
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        let ts = time::OffsetDateTime::now_utc().unix_timestamp();
        let sent = hook
            .client
            .post(hook.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(SIGNATURE_HEADER, sign(&hook.secret, ts, &body))
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(%event_id, attempt, "event delivered to the webhook");
                return;
            }
            Ok(r) => tracing::warn!(%event_id, attempt, status = r.status().as_u16(), "the webhook refused an event"),
            Err(e) => tracing::warn!(%event_id, attempt, error = %e.without_url(), "the webhook could not be reached"),
        }
        if attempt < WEBHOOK_ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    tracing::error!(%event_id, "event not delivered to the webhook after {WEBHOOK_ATTEMPTS} attempts; it remains in events.jsonl");
}

#[async_trait]
impl EventPublisher for JsonlEvents {
    async fn publish(&self, events: &[Event]) -> Result<(), PublishError> {
        let mut lines = Vec::new();
        let mut bodies = Vec::new();
        for event in events {
            let body = serde_json::to_vec(&envelope(event, &self.source))
                .map_err(|e| PublishError::Unavailable(Box::new(e)))?;
            lines.extend_from_slice(&body);
            lines.push(b'\n');
            bodies.push((event.detail.event_id.clone(), body));
        }
        self.append(&lines)
            .await
            .map_err(|e| PublishError::Unavailable(Box::new(e)))?;
        if let Some(hook) = &self.webhook {
            for (event_id, body) in bodies {
                let hook = std::sync::Arc::clone(hook);
                tokio::spawn(async move { deliver(&hook, event_id, body).await });
            }
        }
        Ok(())
    }
}
