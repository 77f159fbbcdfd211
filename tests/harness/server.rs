//! The local server (`local-server`) as a process on a loopback port chosen at run time, and
//! `World`: that server with a provider, a bot and its integrations, on either backend.

use crate::build::binary;
use crate::moto;
use crate::process::{output_file, read_jsonl, wait_for_line};
use crate::provider::Provider;
use crate::strict_provider::{StrictOptions, StrictProvider, STRICT_PROVIDER, STRICT_SCOPE};
use anyhow::Context;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::{Child, Command};

pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdefghijklmnop";

fn local_server_binary() -> anyhow::Result<PathBuf> {
    binary("local-server")
}

/// The local server process.
pub struct Server {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
}

impl Server {
    pub async fn start(dir: &Path, providers_file: Option<&Path>) -> anyhow::Result<Self> {
        Self::start_with(dir, providers_file, Some(ADMIN_KEY), "server.log", &[]).await
    }

    /// Starts the server on `dir/data`, with `ADMIN_KEY` set to `admin_key` or unset, its
    /// output going to `dir/<log_name>`.
    pub async fn start_with(
        dir: &Path,
        providers_file: Option<&Path>,
        admin_key: Option<&str>,
        log_name: &str,
        backend_env: &[(&'static str, String)],
    ) -> anyhow::Result<Self> {
        Self::start_full(dir, providers_file, admin_key, log_name, backend_env, &[]).await
    }

    /// [`Self::start_with`], with `extra_env` besides the backend's (a webhook, say).
    pub async fn start_full(
        dir: &Path,
        providers_file: Option<&Path>,
        admin_key: Option<&str>,
        log_name: &str,
        backend_env: &[(&'static str, String)],
        extra_env: &[(&'static str, String)],
    ) -> anyhow::Result<Self> {
        let bin = local_server_binary()?;
        let data_dir = dir.join("data");
        let log_path = dir.join(log_name);
        let (stdout, stderr) = output_file(&log_path)?;
        let mut cmd = Command::new(bin);
        cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .env("RUST_LOG", "debug")
            // The service refuses loopback provider URLs without it; every provider here is one.
            .env("ALLOW_LOOPBACK_PROVIDERS", "true")
            .env_remove("ADMIN_KEY_SHA256")
            .env_remove("PUBLIC_URL")
            .env_remove("EVENTS_WEBHOOK_URL")
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true);
        match admin_key {
            Some(k) => cmd.env("ADMIN_KEY", k),
            None => cmd.env_remove("ADMIN_KEY"),
        };
        if !backend_env.is_empty() {
            cmd.args(["--backend", "aws"]);
        }
        for (k, v) in backend_env.iter().chain(extra_env) {
            cmd.env(k, v);
        }
        if let Some(p) = providers_file {
            cmd.arg("--providers").arg(p);
        }
        let mut child = cmd.spawn().context("cannot start local-server")?;
        let line = wait_for_line(&log_path, "local-server listening on", &mut child).await?;
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .context("no address printed")?
            .to_owned();
        Ok(Self {
            child,
            base,
            data_dir,
            log_path,
        })
    }

    /// The lines of `events.jsonl` once the dispatcher has written every event the outbox
    /// holds to it (the webhook may still be owed some).
    pub async fn events(&self) -> anyhow::Result<Vec<Value>> {
        let db = rusqlite::Connection::open(
            self.data_dir.join(shared::wiring::embedded::DATABASE_FILE),
        )?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let owed: i64 =
                db.query_row("SELECT COUNT(*) FROM outbox WHERE file_done = 0", [], |r| {
                    r.get(0)
                })?;
            if owed == 0 {
                break;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "{owed} event(s) not written to events.jsonl within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(read_jsonl(&self.data_dir.join("events.jsonl")))
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.signal("TERM").await
    }

    /// Sends `signal` (`TERM`, `INT`, ...) and waits for the process to exit.
    pub async fn signal(&mut self, signal: &str) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().context("the server has already exited")?;
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -{signal} failed");
        Ok(tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await??)
    }

    pub async fn events_of(&self, detail_type: &str) -> anyhow::Result<Vec<Value>> {
        Ok(self
            .events()
            .await?
            .into_iter()
            .filter(|e| e["detail-type"] == detail_type)
            .collect())
    }
}

/// An HTTP client that shows redirects instead of following them.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

/// A client that keeps cookies like one browser: the service binds each sign-in to the
/// browser that started it with a cookie.
pub fn browser_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .cookie_store(true)
        .build()
        .unwrap_or_default()
}

/// Which adapters the service runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, key file, events.jsonl.
    Sqlite,
    /// DynamoDB, KMS, EventBridge, all in moto; events read from an SQS queue that an
    /// EventBridge rule feeds.
    Aws,
}

pub struct AwsSide {
    pub moto: moto::Moto,
    pub resources: moto::Resources,
    /// Between moto and the service's processes (the server or functions, and the relay);
    /// the harness itself talks to moto directly.
    pub faults: crate::faults::FaultProxy,
    /// The `event-relay` binary, fed from the table's stream.
    pub relay: crate::runtime_api::Function,
    pub pump: tokio::sync::Mutex<crate::stream::StreamPump>,
    seen: tokio::sync::Mutex<Vec<Value>>,
}

impl AwsSide {
    /// Starts the relay beside moto, as the template deploys it.
    pub async fn start(dir: &Path) -> anyhow::Result<(Self, Vec<(&'static str, String)>)> {
        let moto = moto::Moto::start(dir).await?;
        let resources = moto::Resources::create(&moto).await?;
        let faults = crate::faults::FaultProxy::start(&moto.endpoint).await?;
        let mut env: Vec<(&'static str, String)> = moto
            .env()
            .into_iter()
            .filter(|(k, _)| *k != "AWS_ENDPOINT_URL")
            .collect();
        env.push(("AWS_ENDPOINT_URL", faults.url.clone()));
        env.extend(resources.env());
        let relay = crate::runtime_api::Function::start(dir, "event-relay", &env).await?;
        let pump = crate::stream::StreamPump::new(&moto).await?;
        Ok((
            Self {
                moto,
                resources,
                faults,
                relay,
                pump: tokio::sync::Mutex::new(pump),
                seen: tokio::sync::Mutex::new(Vec::new()),
            },
            env,
        ))
    }

    /// Relays what the stream holds, retrying reported failures a few times, as the event
    /// source mapping would. Answers what is still failing.
    pub async fn relay_stream(&self) -> anyhow::Result<usize> {
        let mut pump = self.pump.lock().await;
        for _ in 0..3 {
            if pump.pump(&self.relay).await?.failed == 0 {
                return Ok(0);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(pump.pump(&self.relay).await?.failed)
    }

    /// Every event that reached the bus's queue so far, after relaying the stream.
    pub async fn events(&self) -> anyhow::Result<Vec<Value>> {
        let failing = self.relay_stream().await?;
        anyhow::ensure!(failing == 0, "{failing} stream records still fail to relay");
        let mut seen = self.seen.lock().await;
        seen.extend(self.resources.drain_queue().await?);
        Ok(seen.clone())
    }
}

/// A running service with a provider registered as `demo`, a bot `acme`, and an
/// integrations file with a user-context `demo` and a bot-context `demo_bot`; from
/// [`World::with_strict`] also the strict provider registered as `strict` and a user-context
/// integration `strict`.
pub struct World {
    pub dir: tempfile::TempDir,
    pub provider: Provider,
    pub strict: Option<StrictProvider>,
    pub server: Server,
    pub http: reqwest::Client,
    pub bot_key: String,
    pub aws: Option<AwsSide>,
    /// What the server was started with, to start it again.
    backend_env: Vec<(&'static str, String)>,
    extra_env: Vec<(&'static str, String)>,
    restarts: usize,
}

pub const INTEGRATIONS: &str = "\
- provider: demo
  scope: email,profile
  context: user
- provider: demo
  alias: demo_bot
  scope: email
  context: bot
";

impl World {
    pub async fn new() -> anyhow::Result<Self> {
        Self::with(Backend::Sqlite).await
    }

    pub async fn with(backend: Backend) -> anyhow::Result<Self> {
        Self::build(backend, None, Vec::new()).await
    }

    /// [`World::with`], plus the strict provider (started with `options`, the service's
    /// callback as its one redirect URI) registered through the admin API as `strict` with
    /// `client_id`, `client_secret` and `issuer` only (no `pkce` flag, no endpoints), and a
    /// user-context integration `strict` asking for [`STRICT_SCOPE`].
    pub async fn with_strict(backend: Backend, options: StrictOptions) -> anyhow::Result<Self> {
        Self::build(backend, Some(options), Vec::new()).await
    }

    /// [`World::with_strict`], the server also getting `extra_env`.
    pub async fn with_strict_env(
        backend: Backend,
        options: StrictOptions,
        extra_env: Vec<(&'static str, String)>,
    ) -> anyhow::Result<Self> {
        Self::build(backend, Some(options), extra_env).await
    }

    /// A world whose server also gets `extra_env` (a webhook, say).
    pub async fn with_env(
        backend: Backend,
        extra_env: Vec<(&'static str, String)>,
    ) -> anyhow::Result<Self> {
        Self::build(backend, None, extra_env).await
    }

    /// Kills the server with SIGKILL (nothing runs on the way out) and starts it again on
    /// the same data and settings.
    pub async fn kill_and_restart(&mut self) -> anyhow::Result<()> {
        self.server.signal("KILL").await?;
        self.restarts += 1;
        self.server = Server::start_full(
            self.dir.path(),
            Some(&self.dir.path().join("providers.yaml")),
            Some(ADMIN_KEY),
            &format!("server-{}.log", self.restarts),
            &self.backend_env,
            &self.extra_env,
        )
        .await?;
        Ok(())
    }

    async fn build(
        backend: Backend,
        strict: Option<StrictOptions>,
        extra_env: Vec<(&'static str, String)>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let provider = Provider::start(dir.path()).await?;
        let providers_file = dir.path().join("providers.yaml");
        std::fs::write(
            &providers_file,
            format!(
                "providers:\n  demo:\n    client_id: demo-client\n    client_secret: canary-client-secret\n    issuer: {}\n",
                provider.issuer
            ),
        )?;
        let (aws, env) = match backend {
            Backend::Sqlite => (None, Vec::new()),
            Backend::Aws => {
                let (side, env) = AwsSide::start(dir.path()).await?;
                (Some(side), env)
            }
        };
        let server = Server::start_full(
            dir.path(),
            Some(&providers_file),
            Some(ADMIN_KEY),
            "server.log",
            &env,
            &extra_env,
        )
        .await?;
        let http = browser_client();
        let created: Value = http
            .post(format!("{}/v1/admin/bots", server.base))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"bot_id": "acme"}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let bot_key = created["api_key"]
            .as_str()
            .context("no api_key")?
            .to_owned();
        let mut world = Self {
            dir,
            provider,
            strict: None,
            server,
            http,
            bot_key,
            aws,
            backend_env: env,
            extra_env,
            restarts: 0,
        };
        let mut integrations = INTEGRATIONS.to_owned();
        if let Some(options) = strict {
            world.strict = Some(world.register_strict(&options).await?);
            integrations.push_str(&format!(
                "- provider: {STRICT_PROVIDER}\n  scope: {STRICT_SCOPE}\n  context: user\n"
            ));
        }
        let resp = world
            .bot(reqwest::Method::PUT, "/integrations")
            .header("content-type", "application/yaml")
            .body(integrations)
            .send()
            .await?;
        anyhow::ensure!(
            resp.status() == 200,
            "integrations upload: {}",
            resp.text().await?
        );
        Ok(world)
    }

    /// Starts the strict provider for this service's callback and registers it as `strict`.
    async fn register_strict(&self, options: &StrictOptions) -> anyhow::Result<StrictProvider> {
        let callback = self.url(&format!("/oauth/callback/{STRICT_PROVIDER}"));
        let strict = StrictProvider::start(self.dir.path(), &[callback], options).await?;
        let resp = self
            .http
            .put(self.url(&format!("/v1/admin/providers/{STRICT_PROVIDER}")))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({
                "client_id": strict.client_id,
                "client_secret": strict.client_secret,
                "issuer": strict.issuer,
            }))
            .send()
            .await?;
        anyhow::ensure!(
            resp.status() == 200,
            "registering the strict provider: {}",
            resp.text().await?
        );
        Ok(strict)
    }

    /// The strict provider of a [`World::with_strict`].
    pub fn strict(&self) -> anyhow::Result<&StrictProvider> {
        self.strict
            .as_ref()
            .context("this World has no strict provider: make it with World::with_strict")
    }

    /// A user's whole flow through the strict provider, signed in and consented in a
    /// browser-like client; returns the token id the `token:strict` event carried.
    pub async fn connect_strict(&self, user: &str) -> anyhow::Result<String> {
        self.connect_strict_with(&mut crate::Browser::new(), user)
            .await
    }

    /// [`Self::connect_strict`] in `browser`, which keeps its session at the provider.
    pub async fn connect_strict_with(
        &self,
        browser: &mut crate::Browser,
        user: &str,
    ) -> anyhow::Result<String> {
        let kind = format!("token:{STRICT_PROVIDER}");
        let before = self.events_of(&kind).await?.len();
        let link = self.mint_link(STRICT_PROVIDER, Some(user)).await?;
        let page = self.strict()?.sign_in_with(browser, &link).await?;
        anyhow::ensure!(
            page.status == 200,
            "the callback answered {}: {}\nsteps: {:#?}",
            page.status,
            page.body,
            page.steps
        );
        let events = self.events_of(&kind).await?;
        anyhow::ensure!(events.len() == before + 1, "no {kind} event");
        Ok(events[before]["detail"]["token_id"]
            .as_str()
            .context("event without token_id")?
            .to_owned())
    }

    /// Every event the service emitted so far, in order.
    pub async fn events(&self) -> anyhow::Result<Vec<Value>> {
        match &self.aws {
            None => self.server.events().await,
            Some(side) => side.events().await,
        }
    }

    pub async fn events_of(&self, detail_type: &str) -> anyhow::Result<Vec<Value>> {
        Ok(self
            .events()
            .await?
            .into_iter()
            .filter(|e| e["detail-type"] == detail_type)
            .collect())
    }

    /// Everything the service wrote down: its log, its events, and what it stored (the
    /// SQLite files, or every DynamoDB item).
    pub async fn written(&self) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let mut out = vec![(
            "server log".to_owned(),
            std::fs::read(&self.server.log_path)?,
        )];
        out.push((
            "events".to_owned(),
            serde_json::to_vec(&self.events().await?)?,
        ));
        match &self.aws {
            None => {
                for entry in std::fs::read_dir(&self.server.data_dir)?.flatten() {
                    out.push((
                        entry.path().display().to_string(),
                        std::fs::read(entry.path())?,
                    ));
                }
            }
            Some(side) => {
                out.push(("relay log".to_owned(), std::fs::read(&side.relay.log_path)?));
                let items = side.resources.all_items().await?;
                anyhow::ensure!(!items.is_empty(), "the table is empty");
                out.push((
                    "dynamodb items".to_owned(),
                    format!("{items:?}").into_bytes(),
                ));
            }
        }
        Ok(out)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base)
    }

    /// A request on `/v1/bots/acme{path}` with the bot's key.
    pub fn bot(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(&format!("/v1/bots/acme{path}")))
            .bearer_auth(&self.bot_key)
    }

    pub async fn bot_json(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> anyhow::Result<(u16, Value)> {
        let resp = self.bot(method, path).send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    /// The service's own store, opened beside it (SQLite file or the moto table).
    pub fn store(&self) -> anyhow::Result<std::sync::Arc<dyn shared::ports::Store>> {
        Ok(match &self.aws {
            None => std::sync::Arc::new(shared::adapters::sqlite::SqliteStore::open(
                &self
                    .server
                    .data_dir
                    .join(shared::wiring::embedded::DATABASE_FILE),
            )?),
            Some(side) => std::sync::Arc::new(shared::adapters::dynamodb::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&side.resources.sdk),
                moto::TABLE,
            )),
        })
    }

    /// Moves the expiry of every sign-in of `user` that waits for a code into the past, as
    /// if its 10 minutes had gone by.
    pub async fn age_waiting_sign_ins(&self, user: &str) -> anyhow::Result<usize> {
        let store = self.store()?;
        let bot = shared::domain::ids::BotId::parse("acme")?;
        let user = shared::domain::ids::UserId::parse(user)?;
        let waiting = store.pendings_of(&bot, &user).await?;
        for p in &waiting {
            if !store.drop_pending(p, &[]).await? {
                continue;
            }
            // Written back as the end of a flow writes it: with a link of its own spent.
            let link = shared::domain::token::Link {
                link_id: shared::domain::ids::LinkId::generate(&bot),
                bot_id: bot.clone(),
                alias: p.alias.clone(),
                owner: shared::domain::token::Owner::User(user.clone()),
                expires_at: i64::MAX / 2,
                created_at: 0,
                integration: None,
            };
            store.put_link(&link).await?;
            let key = link.link_id.key();
            anyhow::ensure!(
                store
                    .claim_link(&bot, &key, "aging", i64::MAX / 2, 0)
                    .await?
            );
            let mut aged = p.clone();
            aged.expires_at = 0;
            anyhow::ensure!(store.put_pending(&aged, &key, "aging").await?);
        }
        Ok(waiting.len())
    }

    /// A bot call with a JSON body; the status and the JSON answer.
    pub async fn bot_json_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<(u16, Value)> {
        let resp = self.bot(method, path).json(&body).send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    pub async fn mint_link(&self, alias: &str, user: Option<&str>) -> anyhow::Result<String> {
        let mut body = json!({"alias": alias});
        if let Some(u) = user {
            body["user_id"] = json!(u);
        }
        let resp = self
            .bot(reqwest::Method::POST, "/oauth-links")
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 201, "mint link: {}", resp.text().await?);
        let v: Value = resp.json().await?;
        Ok(v["url"].as_str().context("no url")?.to_owned())
    }

    /// Follows a start link to the provider and back; returns the callback URL the provider
    /// redirected to, without visiting it.
    pub async fn authorize(&self, start_url: &str) -> anyhow::Result<String> {
        let to_provider = location(self.http.get(start_url).send().await?)?;
        anyhow::ensure!(
            to_provider.starts_with(&self.provider.issuer),
            "start went to {to_provider}"
        );
        location(self.http.get(&to_provider).send().await?)
    }

    /// A whole flow through `link`; returns the token id the `token:<alias>` event carried.
    pub async fn connect_link(&self, start_url: &str, alias: &str) -> anyhow::Result<String> {
        let before = self.events_of(&format!("token:{alias}")).await?.len();
        let callback = self.authorize(start_url).await?;
        let page = self.http.get(&callback).send().await?;
        anyhow::ensure!(page.status() == 200, "callback answered {}", page.status());
        let events = self.events_of(&format!("token:{alias}")).await?;
        anyhow::ensure!(events.len() == before + 1, "no token:{alias} event");
        Ok(events[before]["detail"]["token_id"]
            .as_str()
            .context("event without token_id")?
            .to_owned())
    }

    pub async fn connect_user(&self, user: &str) -> anyhow::Result<String> {
        let link = self.mint_link("demo", Some(user)).await?;
        self.connect_link(&link, "demo").await
    }
}

pub fn location(resp: reqwest::Response) -> anyhow::Result<String> {
    anyhow::ensure!(
        resp.status().is_redirection(),
        "expected a redirect, got {}",
        resp.status()
    );
    Ok(resp
        .headers()
        .get("location")
        .context("redirect without Location")?
        .to_str()?
        .to_owned())
}
