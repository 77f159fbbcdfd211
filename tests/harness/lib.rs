//! Harness for the end-to-end tests: the built service binaries, a real OAuth 2.0 server
//! (oauth2-mock-server under Node.js), moto for the AWS backend and Chromium for the pages,
//! each a process of its own on a loopback port chosen at run time, in a fresh temporary
//! directory.
//!
//! - [`build`]: the workspace and its binaries, built once per run;
//! - [`faults`]: a proxy that fails chosen requests to moto or the provider;
//! - [`process`]: output files, readiness lines and JSON Lines shared by every process;
//! - [`provider`]: the OAuth provider process;
//! - [`strict_provider`]: the strict OpenID provider (oidc-provider), its records, and a
//!   browser-like client for its sign-in and consent forms;
//! - [`server`]: the local server process, [`World`] and the HTTP client helpers;
//! - [`moto`]: the AWS emulator, the resources of `template.yaml` in it, the template itself;
//! - [`runtime_api`]: the Lambda binaries behind a local Lambda Runtime API;
//! - [`stream`]: the table's stream fed to the event relay as Lambda's event source mapping
//!   would;
//! - [`chromium`]: pages opened in the system's Chromium.

pub mod build;
pub mod chromium;
pub mod faults;
pub mod moto;
pub mod process;
pub mod provider;
pub mod runtime_api;
pub mod server;
pub mod stream;
pub mod strict_provider;

pub use build::{binary, workspace_root};
pub use chromium::{browse, browse_filling, Visited};
pub use process::{output_file, read_jsonl, wait_for_line};
pub use provider::Provider;
pub use server::{
    browser_client, client, location, AwsSide, Backend, Server, World, ADMIN_KEY, INTEGRATIONS,
};
pub use strict_provider::{
    Browser, SignedIn, StrictOptions, StrictProvider, STRICT_CLIENT_ID, STRICT_CLIENT_SECRET,
    STRICT_PROVIDER, STRICT_SCOPE,
};

/// Polls `check` every 100 ms until it answers `Some`, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        anyhow::ensure!(
            std::time::Instant::now() < until,
            "{what} did not happen within {secs} s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
