//! Token API: `/v1` for operators and bots, the connect page and `/openapi.json`.

use lambda_http::{run, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON or text, and the level, as the function's log configuration asks
    // (AWS_LAMBDA_LOG_FORMAT, AWS_LAMBDA_LOG_LEVEL); other crates never below INFO.
    shared::logging::init_lambda();
    let config = shared::Config::from_env()?;
    let service = std::sync::Arc::new(shared::wiring::service(&config, "token-api").await?);
    run(shared::http::token_api_router(service)).await
}
