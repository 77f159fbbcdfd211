//! HTML pages for people: the flow's outcome and the connect page. They never echo `code`
//! or `state`, are never cached, and send no referrer.

use crate::ports::{SealError, StoreError};
use crate::service::{ConnectRow, FlowError, ServiceError};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// Headers every browser-facing answer carries, redirects included.
pub fn protect(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"),
    );
}

pub fn page(status: StatusCode, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}\
         h1{{font-size:1.4rem}}table{{border-collapse:collapse;width:100%}}td{{padding:.4rem 0}}\
         button{{font-size:1rem;padding:.3rem .8rem}}</style></head><body><h1>{t}</h1>{body_html}</body></html>",
        t = escape(title)
    );
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    protect(&mut resp);
    resp
}

pub fn connected(provider: &str) -> Response {
    page(
        StatusCode::OK,
        "Connected",
        &format!(
            "<p>Your {} account is connected. You can close this window and return to the chat.</p>",
            escape(provider)
        ),
    )
}

/// After a sign-in with `confirm: code`: the code to type in the chat.
pub fn confirm_in_chat(provider: &str, code: &str) -> Response {
    page(
        StatusCode::OK,
        "One more step",
        &format!(
            "<p>To finish connecting your {} account, type this code in the chat:</p>\
             <p style=\"font-size:2em;letter-spacing:0.2em\"><strong>{}</strong></p>\
             <p>It works once, for 10 minutes. Do not give it to anyone else.</p>",
            escape(provider),
            escape(code)
        ),
    )
}

pub fn redirect(location: &str) -> Response {
    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    protect(&mut resp);
    resp
}

/// Labelled inputs for a credential form; values are never echoed back.
fn fields_html(form: &crate::service::CredentialForm) -> String {
    form.fields
        .iter()
        .map(|(name, label)| {
            format!(
                "<p><label>{label}<br><input type=\"password\" name=\"{name}\" \
                 autocomplete=\"off\" required maxlength=\"{max}\"></label></p>",
                label = escape(label),
                name = escape(name),
                max = crate::service::MAX_FIELD_LEN,
            )
        })
        .collect()
}

/// The page a link opens for an integration whose credentials are entered: the form posts
/// back to the same URL.
pub fn credential_form(form: &crate::service::CredentialForm) -> Response {
    page(
        StatusCode::OK,
        &format!("Connect {}", escape(&form.display_name)),
        &format!(
            "<p>Enter the credentials the bot will use for <strong>{}</strong>. They are \
             stored encrypted and shown to no one but the bot.</p>\
             <form method=\"post\" action=\"\">{}<button type=\"submit\">Connect</button></form>",
            escape(form.alias.as_str()),
            fields_html(form)
        ),
    )
}

/// "valid", "expiring: reconnect by …", with the last refresh and its error.
fn connection_state(st: &crate::service::ConnectionStatus) -> String {
    use crate::domain::upkeep::Health;
    let date = |unix: i64| {
        time::OffsetDateTime::from_unix_timestamp(unix)
            .ok()
            .and_then(|t| {
                t.format(&time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute] UTC"
                ))
                .ok()
            })
            .unwrap_or_default()
    };
    let mut out = match st.status {
        Health::Valid => "connected".to_owned(),
        Health::Expiring => format!(
            "<strong>expiring</strong>: reconnect by {}",
            date(st.reconnect_by.unwrap_or_default())
        ),
        Health::Expired => "<strong>expired</strong>: reconnect".to_owned(),
        Health::Revoked => "<strong>revoked</strong> at the provider: reconnect".to_owned(),
    };
    if let Some(at) = st.last_refresh_at {
        out.push_str(&format!("<br><small>refreshed {}</small>", date(at)));
    }
    if let Some(e) = &st.last_refresh_error {
        out.push_str(&format!(
            "<br><small>last refresh failed: {}</small>",
            escape(e)
        ));
    }
    out
}

/// After the connect page's disconnect button.
pub fn disconnected(alias: &str, was_connected: bool) -> Response {
    let text = if was_connected {
        format!(
            "<p><strong>{}</strong> is disconnected; its grant is revoked at the provider.</p>",
            escape(alias)
        )
    } else {
        format!(
            "<p><strong>{}</strong> was not connected.</p>",
            escape(alias)
        )
    };
    page(StatusCode::OK, "Disconnected", &text)
}

pub fn connect_page(session: &str, bot: &str, rows: &[ConnectRow]) -> Response {
    let mut body = format!(
        "<p>Integrations of bot <strong>{}</strong> that are connected once for all its users.</p>",
        escape(bot)
    );
    if rows.is_empty() {
        body.push_str("<p>This bot's integrations file has no bot-context integrations.</p>");
    } else {
        body.push_str("<table>");
        for r in rows {
            let state = match &r.status {
                None => "not connected".to_owned(),
                Some(st) => connection_state(st),
            };
            let entered = crate::service::entered_kind(r.provider.as_str());
            let app_only = crate::domain::catalog::is_client_credentials(r.provider.as_str());
            let action = match (entered.is_some(), app_only, r.status.is_some()) {
                (true, _, false) => "Save",
                (true, _, true) => "Replace",
                (false, true, false) => "Get token",
                (false, true, true) => "Renew token",
                (false, false, false) => "Connect",
                (false, false, true) => "Reconnect",
            };
            let inputs = entered
                .map(|e| fields_html(&crate::service::form_of(&r.alias, e)))
                .unwrap_or_default();
            let disconnect = if r.status.is_some() {
                format!(
                    "<form method=\"post\" action=\"/connect/{session}/{alias}/disconnect\">\
                     <button type=\"submit\">Disconnect</button></form>",
                    alias = escape(r.alias.as_str()),
                    session = escape(session),
                )
            } else {
                String::new()
            };
            body.push_str(&format!(
                "<tr><td><strong>{alias}</strong> ({provider})</td><td>{state}</td><td>\
                 <form method=\"post\" action=\"/connect/{session}/{alias}\">{inputs}<button type=\"submit\">{action}</button></form>{disconnect}</td></tr>",
                alias = escape(r.alias.as_str()),
                provider = escape(
                    crate::domain::catalog::catalog_entry(r.provider.as_str())
                        .map_or(r.provider.as_str(), |e| e.display_name.as_str())
                ),
                session = escape(session),
            ));
        }
        body.push_str("</table>");
    }
    page(StatusCode::OK, "Connect integrations", &body)
}

impl IntoResponse for FlowError {
    fn into_response(self) -> Response {
        let ask_again = "<p>Please ask the bot for a new link and try again.</p>";
        match self {
            FlowError::UnknownLink => page(StatusCode::NOT_FOUND, "Link not found", ask_again),
            FlowError::ExpiredLink => page(StatusCode::GONE, "This link has expired", ask_again),
            FlowError::UnknownState => page(
                StatusCode::BAD_REQUEST,
                "This sign-in cannot be completed",
                &format!("<p>The sign-in was already completed, or it was not started here.</p>{ask_again}"),
            ),
            FlowError::ExpiredState => page(
                StatusCode::GONE,
                "This sign-in took too long",
                &format!("<p>Sign-ins must be completed within 10 minutes.</p>{ask_again}"),
            ),
            FlowError::LinkUsed => page(
                StatusCode::GONE,
                "This link was already used",
                &format!("<p>Another sign-in through the same link completed first.</p>{ask_again}"),
            ),
            FlowError::LinkOverused => page(
                StatusCode::TOO_MANY_REQUESTS,
                "This link was opened too many times",
                ask_again,
            ),
            FlowError::BrowserMismatch => page(
                StatusCode::FORBIDDEN,
                "Not connected",
                "<p>This sign-in was started in another browser, so nothing was connected: \
                 a link connects only the person who opened it.</p>\
                 <p>Open the link from the chat in this browser and sign in again.</p>",
            ),
            FlowError::Mismatch => page(
                StatusCode::BAD_REQUEST,
                "This sign-in cannot be completed",
                &format!("<p>The answer came from a different service than the one the sign-in started at.</p>{ask_again}"),
            ),
            FlowError::BadRequest => page(
                StatusCode::BAD_REQUEST,
                "This sign-in cannot be completed",
                &format!("<p>The request is incomplete.</p>{ask_again}"),
            ),
            FlowError::Declined { code } => {
                let why = if code == "access_denied" {
                    "You declined the request, so nothing was connected."
                } else {
                    "The service did not grant access, so nothing was connected."
                };
                page(
                    StatusCode::FORBIDDEN,
                    "Not connected",
                    &format!("<p>{why}</p><p>If this was a mistake, ask the bot for a new link.</p>"),
                )
            }
            FlowError::ProviderFailed => page(
                StatusCode::BAD_GATEWAY,
                "Not connected",
                &format!("<p>The service did not complete the sign-in.</p>{ask_again}"),
            ),
            FlowError::IdentityRejected => page(
                StatusCode::BAD_GATEWAY,
                "Not connected",
                &format!("<p>The service's answer about who signed in could not be verified, so nothing was connected.</p>{ask_again}"),
            ),
            FlowError::Unavailable => page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not connected",
                &format!("<p>The service is not reachable right now.</p>{ask_again}"),
            ),
            FlowError::BadCredentials(label) => page(
                StatusCode::BAD_REQUEST,
                "Not connected",
                &format!(
                    "<p>{}, so nothing was connected.</p>\
                     <p>Go back, correct the form and send it again.</p>",
                    escape(&label)
                ),
            ),
            FlowError::NotConfigured => page(
                StatusCode::GONE,
                "This integration is not available",
                "<p>The bot no longer offers this integration, or it is not set up yet.</p>",
            ),
            FlowError::Internal(
                ServiceError::Store(StoreError::Unavailable(_))
                | ServiceError::Seal(SealError::Unavailable(_)),
            ) => {
                tracing::error!("page failed: the store or the key service is unavailable; nothing was stored");
                let mut resp = page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Not connected yet",
                    "<p>The service could not store the connection just now, so nothing was kept. Open the same link again in a minute.</p>",
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
                resp
            }
            FlowError::Internal(e) => {
                let id = super::error::current_request_id().unwrap_or_default();
                tracing::error!(error = %e, source = ?std::error::Error::source(&e).map(ToString::to_string), "page failed");
                page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    &format!("<p>Please try again later. Reference: <code>{}</code></p>", escape(&id)),
                )
            }
        }
    }
}
