//! The whole integrations service on one machine: all routes on one port, SQLite for
//! storage, a key file for sealing, and `events.jsonl` (plus an optional webhook) for events.

use anyhow::{bail, Context as _};
use clap::Parser;
use shared::adapters::jsonl_events::{JsonlEvents, Webhook};
use shared::adapters::local_key::LocalKeySealer;
use shared::adapters::sqlite::SqliteStore;
use shared::domain::ids::{random_urlsafe, sha256_hex};
use shared::oauth::{http_client, ProviderHttp};
use shared::ports::{EventPublisher, Sealer, Store, SystemClock};
use shared::service::{Service, ServiceParts};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Backend {
    /// SQLite, a key file and events.jsonl in the data directory.
    Sqlite,
    /// DynamoDB, KMS and EventBridge, from TABLE_NAME, KMS_KEY_ID, EVENT_BUS_NAME,
    /// EVENT_SOURCE and the AWS SDK's own settings (AWS_ENDPOINT_URL for an emulator).
    Aws,
}

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Bot integrations service on one machine (SQLite, key file, events file)"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory for the database, the sealing key, the admin key hash and events.jsonl.
    #[arg(long, env = "DATA_DIR", default_value = "./.data")]
    data_dir: PathBuf,
    /// Base URL that browsers and providers reach; defaults to http://<listen>.
    #[arg(long, env = "PUBLIC_URL")]
    public_url: Option<url::Url>,
    /// YAML file of provider apps (`providers: {name: {client_id, client_secret, ...}}`).
    #[arg(long = "providers", env = "PROVIDERS_FILE")]
    providers_file: Option<PathBuf>,
    /// Where tokens, keys and events go.
    #[arg(long, env = "BACKEND", value_enum, default_value = "sqlite")]
    backend: Backend,
    /// Log as JSON lines instead of readable text.
    #[arg(long, env = "LOG_JSON", default_value_t = false)]
    log_json: bool,
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.compact().init();
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    }
    Ok(())
}

/// `ADMIN_KEY` (plain) or `ADMIN_KEY_SHA256`; with neither, a key generated on first start,
/// printed once, with only its hash kept in the data directory.
fn admin_key_hash(data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let hex_hash = match (
        std::env::var("ADMIN_KEY").ok(),
        std::env::var("ADMIN_KEY_SHA256").ok(),
    ) {
        (Some(_), Some(_)) => bail!("set ADMIN_KEY or ADMIN_KEY_SHA256, not both"),
        (Some(key), None) => {
            if key.len() < 32 {
                bail!("ADMIN_KEY must be at least 32 characters");
            }
            sha256_hex(&key)
        }
        (None, Some(hash)) => hash.trim().to_ascii_lowercase(),
        (None, None) => {
            let path = data_dir.join("admin_key.sha256");
            if path.exists() {
                std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    .trim()
                    .to_owned()
            } else {
                let key = format!("ak.{}", random_urlsafe(32));
                let hash = sha256_hex(&key);
                std::fs::write(&path, format!("{hash}\n"))
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("\n  Operator (admin) key, shown once; only its hash is kept in {}:\n\n    {key}\n", path.display());
                hash
            }
        }
    };
    let bytes = hex::decode(&hex_hash)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok());
    bytes.context("ADMIN_KEY_SHA256 must be 64 hex characters (the SHA-256 of the key)")
}

fn webhook(client: reqwest::Client) -> anyhow::Result<Option<Webhook>> {
    let Ok(url) = std::env::var("EVENTS_WEBHOOK_URL") else {
        return Ok(None);
    };
    let url = url::Url::parse(&url).context("EVENTS_WEBHOOK_URL is not a URL")?;
    let secret = std::env::var("EVENTS_WEBHOOK_SECRET")
        .context("EVENTS_WEBHOOK_SECRET is required when EVENTS_WEBHOOK_URL is set")?;
    Ok(Some(Webhook {
        url,
        secret: secret.into(),
        client,
    }))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing requests in flight");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_json);
    create_private_dir(&args.data_dir)?;
    let admin_key_sha256 = admin_key_hash(&args.data_dir)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let bound = listener.local_addr()?;
    let public_url = match args.public_url {
        Some(u) => u,
        None => url::Url::parse(&format!("http://{bound}"))?,
    };
    let client = http_client().context("cannot build the HTTP client")?;
    let (store, sealer, events): (Arc<dyn Store>, Arc<dyn Sealer>, Arc<dyn EventPublisher>) =
        match args.backend {
            Backend::Sqlite => {
                let store = SqliteStore::open(&args.data_dir.join("integrations.sqlite3"))
                    .context("cannot open the database")?;
                let sealer = LocalKeySealer::open_or_create(&args.data_dir.join("sealing.key"))?;
                let source =
                    std::env::var("EVENT_SOURCE").unwrap_or_else(|_| "bot-integrations".to_owned());
                let events = JsonlEvents::new(
                    &args.data_dir.join("events.jsonl"),
                    &source,
                    webhook(client.clone())?,
                );
                (Arc::new(store), Arc::new(sealer), Arc::new(events))
            }
            Backend::Aws => {
                let resources = shared::aws::AwsResources::from_env()?;
                tracing::info!(table = %resources.table, bus = %resources.event_bus, "using the AWS backend");
                shared::aws::adapters(&shared::aws::sdk_config("local-server").await, &resources)
            }
        };
    let service = Arc::new(Service::new(ServiceParts {
        store,
        sealer,
        events,
        clock: Arc::new(SystemClock),
        http: ProviderHttp::new(client),
        public_url: public_url.clone(),
        admin_key_sha256,
    }));
    if let Some(path) = &args.providers_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the providers file {}", path.display()))?;
        for (name, input) in shared::providers_file::parse_providers_file(&text)? {
            service
                .put_provider(&name, input)
                .await
                .with_context(|| format!("providers file: provider '{name}'"))?;
        }
    }
    tracing::info!(listen = %bound, public_url = %public_url, data_dir = %args.data_dir.display(), "local server ready");
    println!("local-server listening on http://{bound} (public URL {public_url})");
    axum::serve(listener, shared::http::local_router(service))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}
