//! A fault-injecting HTTP proxy, put in front of moto and of the test provider: it passes
//! requests through until told to fail the ones that match, in one of two ways.
//!
//! - [`Fault::Refuse`]: answers `503` without forwarding, as a dependency that is down or
//!   throttling; nothing happened behind it.
//! - [`Fault::LoseAnswer`]: forwards the request, lets the upstream act on it, and answers
//!   `502` instead of the upstream's answer, as a gateway that lost the answer (a timeout
//!   after sending): the caller cannot know what happened.
//!
//! A request matches a rule when its `X-Amz-Target` header or its path contains the rule's
//! text.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Refuse,
    LoseAnswer,
}

#[derive(Default)]
struct Rules {
    /// (text to match, fault, how many more requests it applies to; `None`: until healed)
    active: Vec<(String, Fault, Option<usize>)>,
    /// Requests each fault was applied to, by the rule's text.
    applied: Vec<String>,
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    rules: Arc<Mutex<Rules>>,
    http: reqwest::Client,
}

pub struct FaultProxy {
    pub url: String,
    shared: Shared,
}

impl FaultProxy {
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            rules: Arc::default(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        };
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { url, shared })
    }

    /// Fails every request matching `text` with `fault` until [`Self::heal`].
    pub fn fail(&self, text: &str, fault: Fault) {
        self.rule(text, fault, None);
    }

    /// Fails the next `times` requests matching `text`.
    pub fn fail_times(&self, text: &str, fault: Fault, times: usize) {
        self.rule(text, fault, Some(times));
    }

    fn rule(&self, text: &str, fault: Fault, times: Option<usize>) {
        let mut rules = self.shared.rules.lock().unwrap_or_else(|e| e.into_inner());
        rules.active.push((text.to_owned(), fault, times));
    }

    pub fn heal(&self) {
        let mut rules = self.shared.rules.lock().unwrap_or_else(|e| e.into_inner());
        rules.active.clear();
    }

    /// How many requests a fault was applied to.
    pub fn applied(&self) -> usize {
        let rules = self.shared.rules.lock().unwrap_or_else(|e| e.into_inner());
        rules.applied.len()
    }
}

/// The fault for a request, counting it against its rule.
fn fault_for(shared: &Shared, target: &str, path: &str) -> Option<Fault> {
    let mut rules = shared.rules.lock().unwrap_or_else(|e| e.into_inner());
    let i = rules.active.iter().position(|(text, _, left)| {
        (target.contains(text.as_str()) || path.contains(text.as_str())) && *left != Some(0)
    })?;
    let (text, fault, left) = &mut rules.active[i];
    if let Some(n) = left {
        *n -= 1;
    }
    let (text, fault) = (text.clone(), *fault);
    rules.applied.push(text);
    Some(fault)
}

async fn forward(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let fault = fault_for(&shared, &target, uri.path());
    if fault == Some(Fault::Refuse) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "application/x-amz-json-1.0")],
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ServiceUnavailable","message":"injected by the fault proxy"}"#,
        )
            .into_response();
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = shared
        .http
        .request(method, format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    let answer = match req.send().await {
        Ok(a) => a,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let status = answer.status();
    let answer_headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    if fault == Some(Fault::LoseAnswer) {
        return (StatusCode::BAD_GATEWAY, "the answer was lost (fault proxy)").into_response();
    }
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = status;
    for (name, value) in &answer_headers {
        if name != "transfer-encoding" && name != "content-length" && name != "connection" {
            out.headers_mut().append(name, value.clone());
        }
    }
    out
}
