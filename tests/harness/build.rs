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
            let mut command = std::process::Command::new(cargo);
            // What cargo set for this test process describes the test crate, not the build:
            // build scripts (ring's) track `CARGO_MANIFEST_DIR`, so leaving it in would make
            // this build and `cargo test`'s rebuild each other's dependencies every time.
            for (key, _) in std::env::vars_os() {
                let key = key.to_string_lossy();
                if key.starts_with("CARGO_PKG_")
                    || key.starts_with("CARGO_BIN_")
                    || [
                        "CARGO_MANIFEST_DIR",
                        "CARGO_MANIFEST_PATH",
                        "CARGO_MANIFEST_LINKS",
                        "CARGO_CRATE_NAME",
                        "CARGO_PRIMARY_PACKAGE",
                        "CARGO_TARGET_TMPDIR",
                        "OUT_DIR",
                    ]
                    .contains(&key.as_ref())
                {
                    command.env_remove(key.as_ref());
                }
            }
            let out = command
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
