//! The floor of the warm access-token figure: axum answering the same route with the same
//! JSON, from memory.

use axum::routing::get;
use axum::{Json, Router};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let app = Router::new().route(
        "/v1/bots/{bot}/tokens/{token}/access-token",
        get(|| async {
            Json(serde_json::json!({
                "access_token": "demo-access-1-6f1c2d0e-8d4b-4c55-9d7e-0f1e2d3c4b5a",
                "expires_at": 1_800_000_000,
                "status": "valid",
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("hello-axum listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
