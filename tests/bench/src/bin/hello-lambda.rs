//! The floor of the Lambda figures: `lambda_http` with an axum router of one route.

use axum::routing::get;
use axum::Router;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::run(Router::new().route("/", get(|| async { "hello" }))).await
}
