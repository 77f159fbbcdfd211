//! Harness for the end-to-end tests: the built `local-server` binary and a real OAuth 2.0
//! server (oauth2-mock-server under Node.js, `tests/provider`), each a process of its own on
//! a loopback port chosen at run time, in a fresh temporary directory.

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

pub mod aws;
pub mod lambda;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdefghijklmnop";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Builds the workspace's binaries once per test run and returns the path of `name`.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    static BINS: OnceLock<Result<Vec<(String, PathBuf)>, String>> = OnceLock::new();
    let bins = BINS
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let out = std::process::Command::new(cargo)
                .args(["build", "--message-format=json-render-diagnostics"])
                .args([
                    "-p",
                    "local-server",
                    "-p",
                    "oauth-start",
                    "-p",
                    "oauth-callback",
                    "-p",
                    "token-api",
                ])
                .current_dir(workspace_root())
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| format!("cannot run cargo build: {e}"))?;
            if !out.status.success() {
                return Err("cargo build of the service's binaries failed".into());
            }
            Ok(String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter_map(|v| {
                    let exe = v["executable"].as_str()?;
                    Some((v["target"]["name"].as_str()?.to_owned(), PathBuf::from(exe)))
                })
                .collect())
        })
        .clone()
        .map_err(|e| anyhow!(e))?;
    bins.into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p)
        .ok_or_else(|| anyhow!("cargo build produced no {name} executable"))
}

fn local_server_binary() -> anyhow::Result<PathBuf> {
    binary("local-server")
}

/// Fails, with the way to fix it, when Node.js or the provider's package is missing.
fn provider_prerequisites() -> anyhow::Result<PathBuf> {
    let dir = workspace_root().join("tests/provider");
    let node = std::process::Command::new("node").arg("--version").output();
    match node {
        Ok(o) if o.status.success() => {}
        _ => bail!(
            "Node.js (20.19 or newer) is required for the end-to-end tests and was not found.\n\
             Install it (Debian/Ubuntu: `apt-get install nodejs npm`), then run `scripts/setup`."
        ),
    }
    if !dir.join("node_modules/oauth2-mock-server").is_dir() {
        bail!(
            "the test OAuth server is not installed: run `scripts/setup` \
             (or `npm ci --prefix tests/provider`) from the repository root"
        );
    }
    Ok(dir)
}

pub async fn wait_for_line(path: &Path, needle: &str, child: &mut Child) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return Ok(line.to_owned());
            }
        }
        if let Some(status) = child.try_wait()? {
            let output = std::fs::read_to_string(path).unwrap_or_default();
            bail!("process exited ({status}) before it was ready:\n{output}");
        }
        if Instant::now() > deadline {
            bail!("process not ready after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn output_file(path: &Path) -> anyhow::Result<(Stdio, Stdio)> {
    let f = std::fs::File::create(path)?;
    Ok((Stdio::from(f.try_clone()?), Stdio::from(f)))
}

/// The OAuth provider process.
pub struct Provider {
    _child: Child,
    pub issuer: String,
    pub log_path: PathBuf,
}

impl Provider {
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        let pkg = provider_prerequisites()?;
        let out_path = dir.join("provider.out");
        let log_path = dir.join("provider-requests.jsonl");
        let (stdout, stderr) = output_file(&out_path)?;
        let mut child = Command::new("node")
            .arg(pkg.join("server.mjs"))
            .env("PROVIDER_PORT", "0")
            .env("PROVIDER_LOG", &log_path)
            .env("PROVIDER_TOKEN_PREFIX", "canary")
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start node")?;
        let line = wait_for_line(&out_path, "issuer", &mut child).await?;
        let issuer = serde_json::from_str::<Value>(&line)?["issuer"]
            .as_str()
            .context("no issuer printed")?
            .to_owned();
        Ok(Self {
            _child: child,
            issuer,
            log_path,
        })
    }

    /// Every request the provider handled, in order.
    pub fn requests(&self) -> Vec<Value> {
        read_jsonl(&self.log_path)
    }

    pub fn token_requests(&self, grant: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["endpoint"] == "token" && r["grant_type"] == grant)
            .collect()
    }

    /// Every access and refresh token the provider issued.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.requests()
            .iter()
            .flat_map(|r| [r["access_token"].as_str(), r["refresh_token"].as_str()])
            .flatten()
            .map(str::to_owned)
            .collect()
    }

    pub async fn control(&self, change: Value) -> anyhow::Result<()> {
        let resp = reqwest::Client::new()
            .post(format!("{}/__control", self.issuer))
            .json(&change)
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "control refused");
        Ok(())
    }
}

pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
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
        let bin = local_server_binary()?;
        let data_dir = dir.join("data");
        let log_path = dir.join(log_name);
        let (stdout, stderr) = output_file(&log_path)?;
        let mut cmd = Command::new(bin);
        cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .env("RUST_LOG", "debug")
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
        for (k, v) in backend_env {
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

    pub fn events(&self) -> Vec<Value> {
        read_jsonl(&self.data_dir.join("events.jsonl"))
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

    pub fn events_of(&self, detail_type: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["detail-type"] == detail_type)
            .collect()
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
    pub moto: aws::Moto,
    pub resources: aws::Resources,
    seen: tokio::sync::Mutex<Vec<Value>>,
}

/// A running service with a provider registered as `demo`, a bot `acme`, and an
/// integrations file with a user-context `demo` and a bot-context `demo_bot`.
pub struct World {
    pub dir: tempfile::TempDir,
    pub provider: Provider,
    pub server: Server,
    pub http: reqwest::Client,
    pub bot_key: String,
    pub aws: Option<AwsSide>,
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
                let moto = aws::Moto::start(dir.path()).await?;
                let resources = aws::Resources::create(&moto).await?;
                let mut env = moto.env();
                env.extend(resources.env());
                let side = AwsSide {
                    moto,
                    resources,
                    seen: tokio::sync::Mutex::new(Vec::new()),
                };
                (Some(side), env)
            }
        };
        let server = Server::start_with(
            dir.path(),
            Some(&providers_file),
            Some(ADMIN_KEY),
            "server.log",
            &env,
        )
        .await?;
        let http = client();
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
        let world = Self {
            dir,
            provider,
            server,
            http,
            bot_key,
            aws,
        };
        let resp = world
            .bot(reqwest::Method::PUT, "/integrations")
            .header("content-type", "application/yaml")
            .body(INTEGRATIONS)
            .send()
            .await?;
        anyhow::ensure!(
            resp.status() == 200,
            "integrations upload: {}",
            resp.text().await?
        );
        Ok(world)
    }

    /// Every event the service emitted so far, in order.
    pub async fn events(&self) -> anyhow::Result<Vec<Value>> {
        match &self.aws {
            None => Ok(self.server.events()),
            Some(side) => {
                let mut seen = side.seen.lock().await;
                seen.extend(side.resources.drain_queue().await?);
                Ok(seen.clone())
            }
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

/// What the browser ended on after following a URL (and clicking a button on it).
pub struct Visited {
    pub status: Option<u16>,
    pub url: String,
    pub title: String,
    pub text: String,
    pub headers: Value,
}

/// Opens `url` in the system's Chromium through `tests/browser/visit.mjs`; fails, saying how
/// to install them, when Chromium or the driver is missing.
pub async fn browse(url: &str, click: Option<&str>) -> anyhow::Result<Visited> {
    let driver = workspace_root().join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        bail!(
            "Chromium is required for the browser tests and was not found at {chromium}.\n\
             Install it (Debian: `apt-get install chromium`, which `scripts/setup` does as root) \
             or set CHROMIUM to its path."
        );
    }
    if !driver.join("node_modules/playwright-core").is_dir() {
        bail!("the browser driver is not installed: run `scripts/setup` (or `npm ci --prefix tests/browser`)");
    }
    let mut cmd = Command::new("node");
    cmd.arg(driver.join("visit.mjs"))
        .arg(url)
        .env("CHROMIUM", &chromium);
    if let Some(label) = click {
        cmd.args(["--click", label]);
    }
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.kill_on_drop(true).output())
        .await
        .context("the browser did not finish within 90 s")??;
    if !out.status.success() {
        bail!(
            "the browser failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("browser output: {}", String::from_utf8_lossy(&out.stdout)))?;
    Ok(Visited {
        status: v["status"].as_u64().and_then(|s| u16::try_from(s).ok()),
        url: v["url"].as_str().unwrap_or_default().to_owned(),
        title: v["title"].as_str().unwrap_or_default().to_owned(),
        text: v["text"].as_str().unwrap_or_default().to_owned(),
        headers: v["headers"].clone(),
    })
}
