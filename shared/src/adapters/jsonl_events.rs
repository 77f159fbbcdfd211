//! Events on one machine, as the dispatcher (`adapters::dispatch`) delivers them from the
//! outbox: each event's envelope appended as one line to `events.jsonl`, and, when a webhook
//! is configured, POSTed there signed with HMAC-SHA256. Each publisher makes one attempt; the
//! dispatcher keeps the retries.
//!
//! Webhook requests carry `X-Integrations-Timestamp` (unix seconds) and
//! `X-Integrations-Signature: sha256=<hex>`, the HMAC of `<timestamp>.<body>` under the
//! shared secret, so a receiver can check origin and freshness; the envelope's `id` is the
//! event id, the same on every retry, for the receiver to drop duplicates.

use crate::domain::events::OutboxEvent;
use crate::ports::{EventPublisher, PublishError};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

pub const SIGNATURE_HEADER: &str = "X-Integrations-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Integrations-Timestamp";

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

fn failed(e: impl std::error::Error + Send + Sync + 'static) -> PublishError {
    PublishError::Unavailable(Box::new(e))
}

/// `events.jsonl`: one envelope per line, synced to disk before an append counts as done.
pub struct JsonlEvents {
    path: PathBuf,
    source: String,
    file: Mutex<()>,
}

impl JsonlEvents {
    pub fn new(path: &Path, source: &str) -> Self {
        Self {
            path: path.to_owned(),
            source: source.to_owned(),
            file: Mutex::new(()),
        }
    }
}

#[async_trait]
impl EventPublisher for JsonlEvents {
    async fn publish(&self, events: &[OutboxEvent]) -> Result<(), PublishError> {
        let mut lines = Vec::new();
        for event in events {
            serde_json::to_writer(&mut lines, &event.envelope(&self.source)).map_err(failed)?;
            lines.push(b'\n');
        }
        let _guard = self.file.lock().await;
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(failed)?;
        f.write_all(&lines).await.map_err(failed)?;
        f.sync_data().await.map_err(failed)
    }
}

/// The operator's webhook: one signed POST per event.
pub struct Webhook {
    pub url: url::Url,
    pub secret: SecretString,
    pub client: reqwest::Client,
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the webhook answered {0}")]
struct Refused(u16);

#[async_trait]
impl EventPublisher for Webhook {
    async fn publish(&self, events: &[OutboxEvent]) -> Result<(), PublishError> {
        for event in events {
            let body = serde_json::to_vec(&event.envelope(&self.source)).map_err(failed)?;
            let ts = time::OffsetDateTime::now_utc().unix_timestamp();
            let answer = self
                .client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(TIMESTAMP_HEADER, ts.to_string())
                .header(SIGNATURE_HEADER, sign(&self.secret, ts, &body))
                .body(body)
                .send()
                .await
                .map_err(|e| failed(e.without_url()))?;
            if !answer.status().is_success() {
                return Err(failed(Refused(answer.status().as_u16())));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::Event;
    use crate::domain::ids::{Alias, BotId, ProviderName, TokenId};
    use crate::domain::token::Owner;
    use axum::http::HeaderMap;
    use std::sync::{Arc, Mutex};

    fn event() -> OutboxEvent {
        Event::new(
            crate::domain::events::EventKind::Token,
            &BotId::parse("acme").unwrap(),
            &Alias::parse("google").unwrap(),
            &ProviderName::parse("google").unwrap(),
            &Owner::Bot,
            Some(&TokenId::generate()),
            time::OffsetDateTime::now_utc(),
        )
        .to_outbox()
    }

    #[tokio::test]
    async fn contract() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let sink = Arc::new(JsonlEvents::new(&path, "bot-integrations"));
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
        let sink = JsonlEvents::new(&path, "bot-integrations");
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
        assert_eq!(lines[1]["id"], b.event_id.as_str());
        assert_eq!(
            lines[1]["detail"]["payload"],
            lines[1]["detail"]["token_id"]
        );
    }

    type Seen = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

    /// A receiver that answers `503` to the first `refuse` requests and records the rest.
    async fn receiver(refuse: usize) -> (url::Url, Seen) {
        let seen: Seen = Arc::default();
        let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let app = {
            let seen = Arc::clone(&seen);
            axum::Router::new().route(
                "/hook",
                axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                    let seen = Arc::clone(&seen);
                    let attempts = Arc::clone(&attempts);
                    async move {
                        if attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < refuse {
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
        (
            url::Url::parse(&format!("http://{addr}/hook")).unwrap(),
            seen,
        )
    }

    #[tokio::test]
    async fn the_webhook_receives_signed_envelopes_and_reports_refusals() {
        let (url, seen) = receiver(1).await;
        let secret = SecretString::from("whsec-test".to_owned());
        let hook = Webhook {
            url,
            secret: secret.clone(),
            client: reqwest::Client::new(),
            source: "src".into(),
        };
        let e = event();
        assert!(
            hook.publish(std::slice::from_ref(&e)).await.is_err(),
            "a refusal is an error, for the dispatcher to retry"
        );
        hook.publish(std::slice::from_ref(&e)).await.unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
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
        assert_eq!(envelope["id"], e.event_id.as_str());
        assert_eq!(envelope["source"], "src");
    }
}
