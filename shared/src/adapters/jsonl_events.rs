//! Events on one machine: each event's envelope is appended as one line to `events.jsonl`,
//! and, when a webhook is configured, POSTed there signed with HMAC-SHA256.
//!
//! Webhook requests carry `X-Integrations-Timestamp` (unix seconds) and
//! `X-Integrations-Signature: sha256=<hex>`, the HMAC of `<timestamp>.<body>` under the
//! shared secret, so a receiver can check origin and freshness.

use crate::domain::events::Event;
use crate::ports::{EventPublisher, PublishError};
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
            Ok(r) => {
                tracing::warn!(%event_id, attempt, status = r.status().as_u16(), "the webhook refused an event")
            }
            Err(e) => {
                tracing::warn!(%event_id, attempt, error = %e.without_url(), "the webhook could not be reached")
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{Alias, BotId, ProviderName, TokenId};
    use crate::domain::token::Owner;
    use axum::http::HeaderMap;
    use std::sync::{Arc, Mutex};

    fn event() -> Event {
        Event::new(
            crate::domain::events::EventKind::Token,
            &BotId::parse("acme").unwrap(),
            &Alias::parse("google").unwrap(),
            &ProviderName::parse("google").unwrap(),
            &Owner::Bot,
            Some(&TokenId::generate()),
            time::OffsetDateTime::now_utc(),
        )
    }

    #[tokio::test]
    async fn contract() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let sink = Arc::new(JsonlEvents::new(&path, "bot-integrations", None));
        crate::contract::publisher_delivers_envelopes(sink, "bot-integrations", || async {
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .await;
    }

    #[tokio::test]
    async fn events_are_appended_as_envelopes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let sink = JsonlEvents::new(&path, "bot-integrations", None);
        let (a, b) = (event(), event());
        sink.publish(std::slice::from_ref(&a)).await.unwrap();
        sink.publish(std::slice::from_ref(&b)).await.unwrap();
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["detail-type"], "token:google");
        assert_eq!(lines[0]["source"], "bot-integrations");
        assert_eq!(lines[0]["detail"]["context"], "bot");
        assert_eq!(lines[0]["detail"]["user_id"], serde_json::Value::Null);
        assert_eq!(lines[1]["id"], b.detail.event_id.as_str());
        assert_eq!(
            lines[1]["detail"]["payload"],
            lines[1]["detail"]["token_id"]
        );
    }

    #[tokio::test]
    async fn the_webhook_receives_signed_events_and_retries() {
        type Seen = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;
        let seen: Seen = Arc::default();
        let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let app = {
            let seen = Arc::clone(&seen);
            let attempts = Arc::clone(&attempts);
            axum::Router::new().route(
                "/hook",
                axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                    let seen = Arc::clone(&seen);
                    let attempts = Arc::clone(&attempts);
                    async move {
                        // The receiver fails the first delivery: the publisher must retry.
                        if attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        seen.lock().unwrap().push((headers, body.to_vec()));
                        axum::http::StatusCode::NO_CONTENT
                    }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let dir = tempfile::tempdir().unwrap();
        let secret = SecretString::from("whsec-test".to_owned());
        let hook = Webhook {
            url: url::Url::parse(&format!("http://{addr}/hook")).unwrap(),
            secret: secret.clone(),
            client: reqwest::Client::new(),
        };
        let sink = JsonlEvents::new(&dir.path().join("events.jsonl"), "src", Some(hook));
        sink.publish(&[event()]).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while seen.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
        let (headers, body) = &seen[0];
        let ts: i64 = headers[TIMESTAMP_HEADER].to_str().unwrap().parse().unwrap();
        assert_eq!(
            headers[SIGNATURE_HEADER].to_str().unwrap(),
            sign(&secret, ts, body)
        );
        assert_ne!(
            sign(&SecretString::from("other".to_owned()), ts, body),
            sign(&secret, ts, body)
        );
        let envelope: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(envelope["detail-type"], "token:google");
    }
}
