//! Logging for every binary. The service's own crates log at the level asked for; every other
//! crate (the Lambda runtime, hyper, reqwest, the AWS SDK) is held at INFO at most, because at
//! DEBUG and TRACE they log raw invocation events, headers and bodies: bearer keys, codes,
//! `state` values, client secrets and tokens. The service's own lines never carry those.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The crates whose lines are logged at any level.
const OWN: &[&str] = &[
    "shared",
    "local_server",
    "oauth_start",
    "oauth_callback",
    "token_api",
];

/// What is logged at `level`.
pub fn filter(level: LevelFilter) -> Targets {
    OWN.iter()
        .fold(Targets::new(), |t, own| t.with_target(*own, level))
        .with_default(level.min(LevelFilter::INFO))
}

/// A level named like `TRACE`, `debug` or `Info`; anything else is INFO.
pub fn level(raw: Option<&str>) -> LevelFilter {
    raw.and_then(|r| r.trim().parse().ok())
        .unwrap_or(LevelFilter::INFO)
}

/// For the Lambda functions: the level from `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`), JSON
/// when `AWS_LAMBDA_LOG_FORMAT` is `JSON`, as the function's log configuration asks.
pub fn init_lambda() {
    let raw = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok();
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    init(level(raw.as_deref()), json, false, true);
}

/// Installs the subscriber: lines on standard output, as JSON objects or as compact text.
pub fn init(level: LevelFilter, json: bool, ansi: bool, lambda: bool) {
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(ansi && !json);
    let registry = tracing_subscriber::registry().with(filter(level));
    // Lambda adds its own timestamps to every line.
    match (json, lambda) {
        (true, true) => registry
            .with(fmt.json().flatten_event(true).without_time())
            .init(),
        (true, false) => registry.with(fmt.json().flatten_event(true)).init(),
        (false, true) => registry.with(fmt.compact().without_time()).init(),
        (false, false) => registry.with(fmt.compact()).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn other_crates_stay_at_info_whatever_the_level() {
        let f = filter(LevelFilter::TRACE);
        assert!(f.would_enable("shared::service::flow", &Level::TRACE));
        assert!(f.would_enable("token_api", &Level::DEBUG));
        assert!(!f.would_enable("lambda_runtime::layers::api_response", &Level::DEBUG));
        assert!(!f.would_enable("lambda_runtime_api_client", &Level::TRACE));
        assert!(!f.would_enable("aws_smithy_runtime::client::http", &Level::TRACE));
        assert!(!f.would_enable("hyper_util::client", &Level::DEBUG));
        assert!(f.would_enable("lambda_runtime", &Level::INFO));
        let quiet = filter(LevelFilter::WARN);
        assert!(!quiet.would_enable("shared::service", &Level::INFO));
        assert!(!quiet.would_enable("hyper", &Level::INFO));
        assert!(quiet.would_enable("hyper", &Level::WARN));
        assert_eq!(level(Some("TRACE")), LevelFilter::TRACE);
        assert_eq!(level(Some("debug")), LevelFilter::DEBUG);
        assert_eq!(level(Some("hyper=trace")), LevelFilter::INFO);
        assert_eq!(level(None), LevelFilter::INFO);
    }
}
