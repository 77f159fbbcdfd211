//! OAuth callback: `GET /oauth/callback/{provider}` exchanges the code once and stores the token.

use lambda_http::{run, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON or text, and the level, as the function's log configuration asks
    // (AWS_LAMBDA_LOG_FORMAT, AWS_LAMBDA_LOG_LEVEL); other crates never below INFO.
    shared::logging::init_lambda();
    let config = shared::Config::from_env()?;
    let service = std::sync::Arc::new(shared::wiring::service(&config, "oauth-callback").await?);
    run(shared::http::callback_router(service)).await
}
