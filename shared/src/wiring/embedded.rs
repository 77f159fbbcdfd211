//! The embedded backend: SQLite, a key file and `events.jsonl` (plus the optional webhook),
//! all in one data directory; events go from the database's outbox to the file and the
//! webhook through the dispatcher task.

use super::{assemble, provider_client, webhook_client, WiringError};
use crate::adapters::dispatch::Dispatcher;
use crate::adapters::jsonl_events::{JsonlEvents, Webhook};
use crate::adapters::local_key::LocalKeySealer;
use crate::adapters::sqlite::SqliteStore;
use crate::config::Config;
use crate::service::Service;
use std::path::Path;
use std::sync::Arc;

pub const DATABASE_FILE: &str = "integrations.sqlite3";
pub const KEY_FILE: &str = "sealing.key";
pub const EVENTS_FILE: &str = "events.jsonl";

/// The embedded adapters, kept apart so tests can reach the store and sealer directly.
pub struct Embedded {
    pub store: SqliteStore,
    pub sealer: Arc<LocalKeySealer>,
    pub file: Arc<JsonlEvents>,
    pub webhook: Option<Arc<Webhook>>,
}

impl Embedded {
    /// Opens (creating when missing) the database, the key file and the events file in
    /// `data_dir`.
    pub fn open(
        data_dir: &Path,
        config: &Config,
        client: &reqwest::Client,
    ) -> Result<Self, WiringError> {
        let db = data_dir.join(DATABASE_FILE);
        let store = SqliteStore::open(&db).map_err(|source| WiringError::Database {
            path: db.display().to_string(),
            source,
        })?;
        let sealer = LocalKeySealer::open_or_create(&data_dir.join(KEY_FILE))?;
        let webhook = config.webhook.as_ref().map(|w| {
            Arc::new(Webhook {
                url: w.url.clone(),
                secret: w.secret.clone(),
                client: client.clone(),
                source: config.event_source.clone(),
            })
        });
        let file = JsonlEvents::new(&data_dir.join(EVENTS_FILE), &config.event_source);
        Ok(Self {
            store,
            sealer: Arc::new(sealer),
            file: Arc::new(file),
            webhook,
        })
    }

    /// Starts delivering the outbox on the current tokio runtime, for as long as it runs.
    pub fn spawn_dispatcher(&self) {
        let dispatcher = Dispatcher {
            queue: Arc::new(self.store.clone()),
            file: self.file.clone(),
            webhook: self
                .webhook
                .clone()
                .map(|w| w as Arc<dyn crate::ports::EventPublisher>),
        };
        let store = self.store.clone();
        tokio::spawn(async move {
            dispatcher
                .run(move || {
                    let store = store.clone();
                    async move { store.outbox_written().await }
                })
                .await
        });
    }
}

/// The service on the embedded backend in `data_dir`, with its event dispatcher running on
/// the current tokio runtime.
pub fn service(data_dir: &Path, config: &Config) -> Result<Service, WiringError> {
    let parts = Embedded::open(data_dir, config, &webhook_client()?)?;
    parts.spawn_dispatcher();
    Ok(assemble(
        config,
        Arc::new(parts.store),
        parts.sealer,
        provider_client(config.outbound)?,
    ))
}
