//! The OAuth 2.0 provider: oauth2-mock-server under Node.js (`tests/provider`), a process on
//! a loopback port chosen at run time, logging every request it handles.

use crate::process::{output_file, read_jsonl, wait_for_line};
use anyhow::Context;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tokio::process::{Child, Command};

/// Fails, with the way to fix it, when Node.js or the provider's package is missing.
fn provider_prerequisites() -> anyhow::Result<PathBuf> {
    crate::process::node_package("provider", "oauth2-mock-server", "the test OAuth server")
}

/// The OAuth provider process.
pub struct Provider {
    _child: Child,
    pub issuer: String,
    pub log_path: PathBuf,
}

impl Provider {
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        Self::start_on(dir, 0).await
    }

    /// On a given loopback port (0: any free one).
    pub async fn start_on(dir: &Path, port: u16) -> anyhow::Result<Self> {
        let pkg = provider_prerequisites()?;
        let out_path = dir.join("provider.out");
        let log_path = dir.join("provider-requests.jsonl");
        let (stdout, stderr) = output_file(&out_path)?;
        let mut child = Command::new("node")
            .arg(pkg.join("server.mjs"))
            .env("PROVIDER_PORT", port.to_string())
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
