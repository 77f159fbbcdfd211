//! Token maintenance: invoked by an EventBridge Scheduler schedule, it refreshes the tokens
//! that need it, sends `token_expiring` warnings and retries pending revocations, within the
//! invocation's time (what is left waits for the next run).

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Kept free at the end of an invocation: a provider call started just before the deadline
/// still finishes (the HTTP client's timeout is shorter).
const MARGIN: Duration = Duration::from_secs(15);

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::init_lambda();
    let config = shared::Config::from_env()?;
    let service = shared::wiring::service(&config, "token-maintenance").await?;
    let service = &service;
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = deadline(event.context.deadline);
            let report = service.maintain(deadline).await?;
            tracing::info!(?report, "maintenance run finished");
            Ok::<_, Error>(report)
        },
    ))
    .await
}

/// The invocation's deadline (unix milliseconds) as an instant, less the margin.
fn deadline(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    Instant::now() + left.saturating_sub(MARGIN)
}
