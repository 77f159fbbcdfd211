//! What a provider says about the user, mapped onto the token's `info` and `uid`.

use super::catalog::UserInfoStyle;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The token's `info`, the seed's `Ueberauth.Auth.Info`. Absent fields are `null`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserInfo {
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub nickname: Option<String>,
    pub email: Option<String>,
    /// Whether the provider verified `email`; `null` when it does not say.
    #[serde(default)]
    pub email_verified: Option<bool>,
    pub location: Option<String>,
    pub description: Option<String>,
    pub image: Option<String>,
    pub phone: Option<String>,
    pub birthday: Option<String>,
    #[serde(default)]
    pub urls: BTreeMap<String, String>,
}

fn text(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    match cur {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A yes/no claim; some providers send it as a string.
fn flag(raw: &Value, key: &str) -> Option<bool> {
    match raw.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// Maps a user-info answer (or ID token claims) to the provider's user id and `info`.
pub fn normalize_user_info(style: UserInfoStyle, raw: &Value) -> (Option<String>, UserInfo) {
    let t = |path: &[&str]| text(raw, path);
    match style {
        UserInfoStyle::OpenidConnect | UserInfoStyle::Generic => {
            let (uid, mut info) = openid(t);
            info.email_verified = flag(raw, "email_verified");
            (uid, info)
        }
        UserInfoStyle::Github => github(t),
        UserInfoStyle::Facebook => facebook(t),
        UserInfoStyle::Slack => slack(t),
    }
}

fn openid(t: impl Fn(&[&str]) -> Option<String>) -> (Option<String>, UserInfo) {
    let mut info = UserInfo {
        name: t(&["name"]),
        first_name: t(&["given_name"]).or_else(|| t(&["first_name"])),
        last_name: t(&["family_name"]).or_else(|| t(&["last_name"])),
        nickname: t(&["preferred_username"]).or_else(|| t(&["nickname"])),
        email: t(&["email"]),
        image: t(&["picture"]).or_else(|| t(&["avatar_url"])),
        phone: t(&["phone_number"]),
        birthday: t(&["birthdate"]),
        location: t(&["address", "formatted"]),
        ..UserInfo::default()
    };
    for key in ["profile", "website"] {
        if let Some(u) = t(&[key]) {
            info.urls.insert(key.to_owned(), u);
        }
    }
    (t(&["sub"]).or_else(|| t(&["id"])), info)
}

fn github(t: impl Fn(&[&str]) -> Option<String>) -> (Option<String>, UserInfo) {
    let mut info = UserInfo {
        name: t(&["name"]),
        nickname: t(&["login"]),
        email: t(&["email"]),
        location: t(&["location"]),
        description: t(&["bio"]),
        image: t(&["avatar_url"]),
        ..UserInfo::default()
    };
    for (label, key) in [("GitHub", "html_url"), ("Blog", "blog")] {
        if let Some(u) = t(&[key]) {
            info.urls.insert(label.to_owned(), u);
        }
    }
    if let Some(name) = &info.name {
        let mut parts = name.splitn(2, ' ');
        info.first_name = parts.next().map(str::to_owned);
        info.last_name = parts.next().map(str::to_owned);
    }
    (t(&["id"]), info)
}

fn facebook(t: impl Fn(&[&str]) -> Option<String>) -> (Option<String>, UserInfo) {
    let mut info = UserInfo {
        name: t(&["name"]),
        first_name: t(&["first_name"]),
        last_name: t(&["last_name"]),
        email: t(&["email"]),
        image: t(&["picture", "data", "url"]),
        ..UserInfo::default()
    };
    if let Some(u) = t(&["link"]) {
        info.urls.insert("Facebook".to_owned(), u);
    }
    (t(&["id"]), info)
}

fn slack(t: impl Fn(&[&str]) -> Option<String>) -> (Option<String>, UserInfo) {
    let mut info = UserInfo {
        nickname: t(&["user"]),
        ..UserInfo::default()
    };
    if let Some(u) = t(&["url"]) {
        info.urls.insert("Slack".to_owned(), u);
    }
    (t(&["user_id"]), info)
}
