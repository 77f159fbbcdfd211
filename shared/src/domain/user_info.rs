//! What a provider says about the user, mapped onto the token's `info` and `uid`.

use super::catalog::{lookup, InfoField, Method, Paths, UserInfoSpec};
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
    /// Values the catalog keeps from the token answer (Salesforce's `instance_url`,
    /// Slack's team).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    pub extra: BTreeMap<String, Value>,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A yes/no claim; some providers send it as a string.
fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// How OpenID Connect claims map, for custom providers and entries that state no mapping.
fn openid_mapping() -> &'static UserInfoSpec {
    static SPEC: std::sync::OnceLock<UserInfoSpec> = std::sync::OnceLock::new();
    SPEC.get_or_init(|| {
        let any = |paths: &[&str]| Paths::Any(paths.iter().map(|p| (*p).to_owned()).collect());
        UserInfoSpec {
            url: String::new(),
            method: Method::Get,
            headers: BTreeMap::new(),
            body: None,
            uid: any(&["sub", "id"]),
            fields: BTreeMap::from([
                (InfoField::Name, any(&["name"])),
                (InfoField::FirstName, any(&["given_name", "first_name"])),
                (InfoField::LastName, any(&["family_name", "last_name"])),
                (
                    InfoField::Nickname,
                    any(&["preferred_username", "nickname"]),
                ),
                (InfoField::Email, any(&["email"])),
                (InfoField::EmailVerified, any(&["email_verified"])),
                (InfoField::Image, any(&["picture", "avatar_url"])),
                (InfoField::Phone, any(&["phone_number"])),
                (InfoField::Birthday, any(&["birthdate"])),
                (InfoField::Location, any(&["address.formatted"])),
            ]),
            urls: BTreeMap::from([
                ("profile".to_owned(), "profile".to_owned()),
                ("website".to_owned(), "website".to_owned()),
            ]),
        }
    })
}

/// Maps a user-info answer (or ID token claims) to the provider's user id and `info`, by
/// the entry's field paths (the OpenID Connect claims without one).
pub fn normalize_user_info(spec: Option<&UserInfoSpec>, raw: &Value) -> (Option<String>, UserInfo) {
    let spec: &UserInfoSpec = match spec {
        Some(s) => s,
        None => openid_mapping(),
    };
    let mut info = UserInfo::default();
    for (field, paths) in &spec.fields {
        let Some(v) = paths.find(raw) else { continue };
        let slot = match field {
            InfoField::EmailVerified => {
                info.email_verified = flag(v);
                continue;
            }
            InfoField::Name => &mut info.name,
            InfoField::FirstName => &mut info.first_name,
            InfoField::LastName => &mut info.last_name,
            InfoField::Nickname => &mut info.nickname,
            InfoField::Email => &mut info.email,
            InfoField::Location => &mut info.location,
            InfoField::Description => &mut info.description,
            InfoField::Image => &mut info.image,
            InfoField::Phone => &mut info.phone,
            InfoField::Birthday => &mut info.birthday,
        };
        *slot = text(v);
    }
    for (label, path) in &spec.urls {
        if let Some(u) = lookup(raw, path).and_then(text) {
            info.urls.insert(label.clone(), u);
        }
    }
    let uid = spec.uid.find(raw).and_then(text);
    (uid, info)
}
