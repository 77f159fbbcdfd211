//! What every child process of the harness shares: output into a file, readiness by a line
//! of that output, and JSON Lines files read back.

use anyhow::bail;
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Child;

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

/// The directory of the npm package `tests/{dir}`; fails, saying how to fix it, when Node.js
/// or the package's `module` is not installed.
pub fn node_package(dir: &str, module: &str, what: &str) -> anyhow::Result<std::path::PathBuf> {
    let root = crate::workspace_root().join("tests").join(dir);
    let node = std::process::Command::new("node").arg("--version").output();
    match node {
        Ok(o) if o.status.success() => {}
        _ => bail!(
            "Node.js (20.19 or newer) is required for {what} and was not found.\n\
             Install it (Debian/Ubuntu: `apt-get install nodejs npm`), then run `scripts/setup`."
        ),
    }
    if !root.join("node_modules").join(module).is_dir() {
        bail!(
            "{what} cannot run: `{module}` is not installed; run `scripts/setup` \
             (or `npm ci --prefix tests/{dir}`) from the repository root"
        );
    }
    Ok(root)
}

pub fn output_file(path: &Path) -> anyhow::Result<(Stdio, Stdio)> {
    let f = std::fs::File::create(path)?;
    Ok((Stdio::from(f.try_clone()?), Stdio::from(f)))
}

pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
