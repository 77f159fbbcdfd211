//! The workspace and its binaries: every service binary is built once per test run, by the
//! same cargo that runs the tests.

use anyhow::anyhow;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

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
                // The targets and features of `cargo test --workspace --all-features`, so
                // that when the tests run under it everything is fresh and nothing (the AWS
                // SDK above all) is compiled a second time with another feature set.
                .args([
                    "build",
                    "--message-format=json-render-diagnostics",
                    "--workspace",
                    "--all-features",
                    "--bins",
                    "--tests",
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
                .filter(|v| v["target"]["kind"] == serde_json::json!(["bin"]))
                .filter(|v| v["profile"]["test"] == false)
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
