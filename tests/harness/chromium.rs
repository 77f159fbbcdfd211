//! The system's Chromium, driven by playwright through `tests/browser/visit.mjs`.

use crate::build::workspace_root;
use anyhow::{bail, Context};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use tokio::process::Command;

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
    browse_filling(url, &[], click).await
}

/// [`browse`], typing each `(label, value)` into the input with that label first.
pub async fn browse_filling(
    url: &str,
    fills: &[(&str, &str)],
    click: Option<&str>,
) -> anyhow::Result<Visited> {
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
    for (label, value) in fills {
        cmd.arg("--fill").arg(format!("{label}={value}"));
    }
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
