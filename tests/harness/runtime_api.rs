//! The real Lambda binaries, driven through the Lambda Runtime API as Lambda drives them: a
//! small local implementation of that API hands each function API Gateway events and
//! collects its answers.

use crate::build::{binary, workspace_root};
use crate::process::output_file;
use anyhow::{anyhow, Context};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, Mutex};

type Answer = Result<Value, Value>;
/// An event to hand out, and where its answer goes.
type Invocation = (Value, oneshot::Sender<Answer>);

#[derive(Clone)]
struct RuntimeApi {
    queue: Arc<Mutex<mpsc::Receiver<Invocation>>>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Answer>>>>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

async fn next(State(api): State<RuntimeApi>) -> Response {
    let Some((event, answer)) = api.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let n = api
        .next_id
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let id = format!("invocation-{n}");
    api.waiting.lock().await.insert(id.clone(), answer);
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        + 30_000;
    let mut headers = HeaderMap::new();
    let mut set = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    };
    set("lambda-runtime-aws-request-id", id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:test".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
    );
    (headers, Json(event)).into_response()
}

async fn respond(
    State(api): State<RuntimeApi>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    let answer = serde_json::from_slice(&body).map_err(|e| Value::String(format!("not JSON: {e}")));
    if let Some(tx) = api.waiting.lock().await.remove(&id) {
        let _ = tx.send(answer);
    }
    StatusCode::ACCEPTED
}

async fn fail(State(api): State<RuntimeApi>, Path(id): Path<String>, body: String) -> StatusCode {
    if let Some(tx) = api.waiting.lock().await.remove(&id) {
        let _ = tx.send(Err(
            serde_json::from_str(&body).unwrap_or(Value::String(body))
        ));
    }
    StatusCode::ACCEPTED
}

/// One function: its process and its Runtime API.
pub struct Function {
    _child: Child,
    pub name: String,
    pub log_path: std::path::PathBuf,
    events: mpsc::Sender<Invocation>,
}

impl Function {
    /// Starts the binary `name` with `env`, as Lambda would.
    pub async fn start(
        dir: &std::path::Path,
        name: &str,
        env: &[(&'static str, String)],
    ) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel(16);
        let api = RuntimeApi {
            queue: Arc::new(Mutex::new(rx)),
            waiting: Arc::default(),
            next_id: Arc::default(),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route(
                "/2018-06-01/runtime/init/error",
                post(|| async { StatusCode::ACCEPTED }),
            )
            .with_state(api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });

        let log_path = dir.join(format!("{name}.log"));
        let (stdout, stderr) = output_file(&log_path)?;
        let child = Command::new(binary(name)?)
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            // The most a function's log configuration can ask for: nothing secret may
            // appear even here (tests/e2e/lambda.rs checks the whole flow's logs).
            .env("AWS_LAMBDA_LOG_LEVEL", "TRACE")
            // The service refuses loopback provider URLs without it; every provider here is one.
            .env("ALLOW_LOOPBACK_PROVIDERS", "true")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Self {
            _child: child,
            name: name.to_owned(),
            log_path,
            events: tx,
        })
    }

    /// Invokes the function with an API Gateway event; returns its answer.
    pub async fn invoke(&self, event: Value) -> anyhow::Result<Value> {
        let (tx, rx) = oneshot::channel();
        self.events
            .send((event, tx))
            .await
            .map_err(|_| anyhow!("runtime API closed"))?;
        let answer = tokio::time::timeout(Duration::from_secs(60), rx)
            .await
            .with_context(|| {
                format!(
                    "{} did not answer within 60 s:\n{}",
                    self.name,
                    std::fs::read_to_string(&self.log_path).unwrap_or_default()
                )
            })??;
        answer.map_err(|e| anyhow!("{} reported an error: {e}", self.name))
    }
}

/// An API Gateway HTTP API (payload 2.0) event: a fixture of `events/` with the request
/// changed to `method path?query`, `headers` and `body`.
pub fn http_event(
    fixture: &str,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(workspace_root().join("events").join(fixture))?;
    let mut e: Value = serde_json::from_str(&text)?;
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    e["rawPath"] = path.into();
    e["rawQueryString"] = query.into();
    e["requestContext"]["http"]["method"] = method.into();
    e["requestContext"]["http"]["path"] = path.into();
    let params: serde_json::Map<String, Value> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    if params.is_empty() {
        e.as_object_mut().map(|o| o.remove("queryStringParameters"));
    } else {
        e["queryStringParameters"] = Value::Object(params);
    }
    for (k, v) in headers {
        e["headers"][k.to_ascii_lowercase()] = (*v).into();
    }
    match body {
        Some(b) => e["body"] = b.into(),
        None => {
            e.as_object_mut().map(|o| o.remove("body"));
        }
    }
    Ok(e)
}

/// The operator key of `events/token-api.json`, and its SHA-256 as a deployment sets it.
pub const FIXTURE_ADMIN_KEY: &str = "example-admin-key-change-me-0123456789abcdef";
pub const FIXTURE_ADMIN_KEY_SHA256: &str =
    "c9e535ddccaeb1442a3a55f93d6d5e2d16629a384aca4d111e8b8538e7153856";
/// The API URL the fixtures were captured from.
pub const PUBLIC_URL: &str = "https://abc123.execute-api.us-east-1.amazonaws.com";

/// The four functions as deployed: moto with the template's resources, each binary running,
/// the relay fed from the table's stream.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub aws: crate::server::AwsSide,
    pub start: Function,
    pub callback: Function,
    pub api: Function,
    pub maintenance: Function,
}

impl Deployment {
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (aws, mut env) = crate::server::AwsSide::start(dir.path()).await?;
        env.push(("PUBLIC_URL", PUBLIC_URL.into()));
        env.push(("ADMIN_KEY_SHA256", FIXTURE_ADMIN_KEY_SHA256.into()));
        // Failed revocations are retried a second later.
        env.push(("MAINTENANCE_INTERVAL", "1".into()));
        let start = Function::start(dir.path(), "oauth-start", &env).await?;
        let callback = Function::start(dir.path(), "oauth-callback", &env).await?;
        let api = Function::start(dir.path(), "token-api", &env).await?;
        let maintenance = Function::start(dir.path(), "token-maintenance", &env).await?;
        Ok(Self {
            dir,
            aws,
            start,
            callback,
            api,
            maintenance,
        })
    }
}
