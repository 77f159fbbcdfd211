//! The whole integrations service on one machine: all routes on one port, SQLite for
//! storage, a key file for sealing, and `events.jsonl` (plus an optional webhook) for events.

use anyhow::Context as _;
use clap::Parser;
use shared::config::{self, AdminKeyHash, AwsResources, Backend, Config, WebhookConfig};
use shared::domain::ids::random_urlsafe;
use shared::domain::network::OutboundPolicy;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum BackendArg {
    /// SQLite, a key file and events.jsonl in the data directory.
    Sqlite,
    /// DynamoDB, KMS and EventBridge, from TABLE_NAME, KMS_KEY_ID, EVENT_BUS_NAME and the
    /// AWS SDK's own settings (AWS_ENDPOINT_URL for an emulator).
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
    public_url: Option<String>,
    /// YAML file of provider apps (`providers: {name: {client_id, client_secret, ...}}`).
    #[arg(long = "providers", env = "PROVIDERS_FILE")]
    providers_file: Option<PathBuf>,
    /// Where tokens, keys and events go.
    #[arg(long, env = "BACKEND", value_enum, default_value = "sqlite")]
    backend: BackendArg,
    /// Log as JSON lines instead of readable text.
    #[arg(long, env = "LOG_JSON", default_value_t = false)]
    log_json: bool,
    /// The operator key (at least 32 characters); only its hash is kept.
    #[arg(
        long,
        env = "ADMIN_KEY",
        hide_env_values = true,
        conflicts_with = "admin_key_sha256"
    )]
    admin_key: Option<String>,
    /// The SHA-256 of the operator key, as 64 hex characters.
    #[arg(long, env = "ADMIN_KEY_SHA256")]
    admin_key_sha256: Option<String>,
    /// The `source` of every event.
    #[arg(long, env = "EVENT_SOURCE")]
    event_source: Option<String>,
    /// Also POST every event here, signed with EVENTS_WEBHOOK_SECRET.
    #[arg(long, env = "EVENTS_WEBHOOK_URL")]
    events_webhook_url: Option<String>,
    #[arg(long, env = "EVENTS_WEBHOOK_SECRET", hide_env_values = true)]
    events_webhook_secret: Option<String>,
    /// Let providers live on this machine (http on loopback): for development and tests.
    /// Private, link-local and metadata addresses stay refused.
    #[arg(long, env = "ALLOW_LOOPBACK_PROVIDERS", num_args = 0..=1, default_missing_value = "true")]
    allow_loopback_providers: Option<String>,
    /// Seconds between runs of the maintenance job (keep-alive refreshes, expiry warnings,
    /// pending revocations); also the first retry delay of what fails. Default 300.
    #[arg(long, env = "MAINTENANCE_INTERVAL")]
    maintenance_interval: Option<String>,
    /// Seconds before a grant ends that `token_expiring` is sent. Default 259200 (3 days).
    #[arg(long, env = "EXPIRY_WARNING")]
    expiry_warning: Option<String>,
    /// Seconds a revocation that failed at a delete is retried. Default 86400 (a day).
    #[arg(long, env = "REVOCATION_RETRY_WINDOW")]
    revocation_retry_window: Option<String>,
    /// The largest provider answer the API proxy passes on, in bytes. Default 33554432 (32 MiB).
    #[arg(long, env = "PROXY_MAX_RESPONSE_BYTES")]
    proxy_max_response_bytes: Option<String>,
}

/// The level from `RUST_LOG` (a level name; INFO otherwise). Other crates than the
/// service's never log below INFO: see `shared::logging`.
fn init_logging(json: bool) {
    let level = shared::logging::level(std::env::var("RUST_LOG").ok().as_deref());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    shared::logging::init(level, json, ansi, false);
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
fn admin_key_hash(args: &Args) -> anyhow::Result<AdminKeyHash> {
    if let Some(key) = &args.admin_key {
        return Ok(AdminKeyHash::of_key("ADMIN_KEY", key)?);
    }
    if let Some(hash) = &args.admin_key_sha256 {
        return Ok(AdminKeyHash::parse_hex("ADMIN_KEY_SHA256", hash)?);
    }
    let path = args.data_dir.join("admin_key.sha256");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return Ok(AdminKeyHash::parse_hex("admin_key.sha256", &text)?);
    }
    let key = format!("ak.{}", random_urlsafe(32));
    let hash = AdminKeyHash::of_key("ADMIN_KEY", &key)?;
    std::fs::write(&path, format!("{}\n", hash.to_hex()))
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "\n  Operator (admin) key, shown once; only its hash is kept in {}:\n\n    {key}\n",
        path.display()
    );
    Ok(hash)
}

/// The typed configuration from the command line and the environment.
fn config(args: &Args, bound: SocketAddr) -> anyhow::Result<Config> {
    let public_url = match &args.public_url {
        Some(u) => config::parse_public_url(u)?,
        None => config::parse_public_url(&format!("http://{bound}"))?,
    };
    let backend = match args.backend {
        BackendArg::Sqlite => Backend::Embedded {
            data_dir: args.data_dir.clone(),
        },
        BackendArg::Aws => Backend::Aws(AwsResources::from_env()?),
    };
    Ok(Config {
        public_url,
        admin_key: admin_key_hash(args)?,
        event_source: config::event_source(args.event_source.as_deref()),
        backend,
        webhook: WebhookConfig::parse(
            args.events_webhook_url.as_deref(),
            args.events_webhook_secret.as_deref(),
        )?,
        outbound: OutboundPolicy {
            allow_loopback: config::flag(
                "ALLOW_LOOPBACK_PROVIDERS",
                args.allow_loopback_providers.as_deref(),
            )?,
        },
        upkeep: config::upkeep_policy(
            args.maintenance_interval.as_deref(),
            args.expiry_warning.as_deref(),
            args.revocation_retry_window.as_deref(),
        )?,
        proxy: config::proxy_limits(
            args.proxy_max_response_bytes.as_deref(),
            shared::service::ProxyLimits::default().max_response_bytes,
        )?,
    })
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

/// The maintenance job, every `interval` seconds (the first run at start): what the
/// `token-maintenance` function does on AWS.
fn spawn_maintenance(service: Arc<shared::service::Service>, interval: i64) {
    let every = std::time::Duration::from_secs(interval.max(1).unsigned_abs());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A run may take longer than the interval; the next waits for it.
            let budget = every.max(std::time::Duration::from_secs(60));
            match service.maintain(std::time::Instant::now() + budget).await {
                Ok(report) if report != Default::default() => {
                    tracing::info!(?report, "maintenance run finished");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "maintenance run failed; tried again next interval")
                }
            }
        }
    });
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_json);
    create_private_dir(&args.data_dir)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let bound = listener.local_addr()?;
    let config = config(&args, bound)?;
    if let Backend::Aws(r) = &config.backend {
        tracing::info!(table = %r.table, bus = %r.event_bus, "using the AWS backend");
    }
    let service = Arc::new(shared::wiring::service(&config, "local-server").await?);
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
    spawn_maintenance(Arc::clone(&service), config.upkeep.retry_base);
    let public_url = &config.public_url;
    tracing::info!(listen = %bound, public_url = %public_url, data_dir = %args.data_dir.display(), "local server ready");
    println!("local-server listening on http://{bound} (public URL {public_url})");
    axum::serve(listener, shared::http::local_router(service))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}
