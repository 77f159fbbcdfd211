//! The catalog file against its schema: every field known (serde refuses others), every
//! URL https, every placeholder declared, no duplicate names, recorded answers for each.

use super::*;
use std::collections::BTreeSet;

fn strict() -> Vec<CatalogEntry> {
    serde_json::from_str(include_str!(concat!(env!("OUT_DIR"), "/catalog.json")))
        .unwrap_or_else(|e| panic!("catalog/providers.yaml does not fit the schema: {e}"))
}

/// Template values the service fills itself, besides an entry's params.
const FILLED_BY_SERVICE: [&str; 4] = [
    "client_id",
    "client_secret",
    "access_token",
    "refresh_token",
];

fn urls(e: &CatalogEntry) -> Vec<(&'static str, &str)> {
    let mut out = vec![("docs_url", e.docs_url.as_str())];
    for (field, url) in [
        ("authorize_url", &e.authorize_url),
        ("token_url", &e.token_url),
        ("api_base_url", &e.api_base_url),
    ] {
        if let Some(u) = url {
            out.push((field, u.as_str()));
        }
    }
    if let Some(u) = &e.userinfo {
        out.push(("userinfo.url", &u.url));
    }
    if let Some(r) = &e.revocation {
        out.push(("revocation.url", r.url()));
    }
    if let Some(o) = &e.openid {
        out.push(("openid.issuer", &o.issuer));
        out.push(("openid.jwks_url", &o.jwks_url));
    }
    out
}

fn problems(e: &CatalogEntry) -> Vec<String> {
    let mut p = Vec::new();
    let name_ok = e.name.len() >= 2
        && e.name.len() <= 32
        && e.name.starts_with(|c: char| c.is_ascii_lowercase())
        && e.name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !name_ok {
        p.push("name must match ^[a-z][a-z0-9_]{1,31}$".to_owned());
    }
    let declared: BTreeSet<&str> = e.params.iter().map(|x| x.name.as_str()).collect();
    for (field, url) in urls(e) {
        for ph in placeholders(url) {
            let service_fills = field == "revocation.url" && FILLED_BY_SERVICE.contains(&ph);
            if !declared.contains(ph) && !service_fills {
                p.push(format!("{field}: {{{ph}}} is not a declared param"));
            }
        }
        let sample = fill(url, &|n| {
            Some(if n == "host" {
                "h.example".into()
            } else {
                "x".into()
            })
        });
        match url::Url::parse(&sample) {
            Ok(u) if u.scheme() == "https" => {}
            Ok(_) => p.push(format!("{field} is not https")),
            Err(err) => p.push(format!("{field} is not a URL: {err}")),
        }
    }
    for param in &e.params {
        match regex_lite::Regex::new(&param.pattern) {
            Err(err) => p.push(format!("params.{}: bad pattern: {err}", param.name)),
            Ok(re) => {
                if !param.pattern.starts_with('^') || !param.pattern.ends_with('$') {
                    p.push(format!(
                        "params.{}: the pattern must be anchored",
                        param.name
                    ));
                }
                for bad in ["a/b", "a?b", "a#b", "a@b", ""] {
                    if re.is_match(bad) {
                        p.push(format!(
                            "params.{}: the pattern lets {bad:?} through",
                            param.name
                        ));
                    }
                }
                if let Some(d) = &param.default {
                    if !re.is_match(d) {
                        p.push(format!("params.{}: the default does not match", param.name));
                    }
                }
            }
        }
    }
    if ![" ", ","].contains(&e.scope_separator.as_str()) {
        p.push("scope_separator must be \" \" or \",\"".into());
    }
    match e.kind {
        CredentialKind::Oauth2 => {
            if e.authorize_url.is_none() || e.token_url.is_none() {
                p.push("oauth2 needs authorize_url and token_url".into());
            }
        }
        CredentialKind::ClientCredentials => {
            if e.token_url.is_none() || e.authorize_url.is_some() {
                p.push("client_credentials needs token_url and no authorize_url".into());
            }
        }
        CredentialKind::ApiKey | CredentialKind::Basic => {
            let Some(c) = &e.credential else {
                p.push("api_key and basic need credential".into());
                return p;
            };
            let fields = if e.kind == CredentialKind::ApiKey {
                1
            } else {
                2
            };
            if c.fields.len() != fields {
                p.push(format!("credential needs {fields} field(s)"));
            }
            let ok = match c.placement {
                Placement::Header => c.header.is_some(),
                Placement::Query => c.query.is_some(),
                Placement::Path => c.path_prefix.is_some(),
                Placement::Basic => e.kind == CredentialKind::Basic,
            };
            if !ok || (e.kind == CredentialKind::Basic) != (c.placement == Placement::Basic) {
                p.push("credential.placement does not fit the kind or lacks its field".into());
            }
            if e.authorize_url.is_some() || e.token_url.is_some() || e.revocation.is_some() {
                p.push("api_key and basic entries have no OAuth endpoints".into());
            }
        }
    }
    if let Some(v) = &e.api_version {
        if let Some(eol) = &v.end_of_life {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            if time::Date::parse(eol, format).is_err() {
                p.push("api_version.end_of_life must be YYYY-MM-DD".into());
            }
        }
    }
    let answers = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("catalog/answers")
        .join(format!("{}.yaml", e.name));
    if !answers.exists() {
        p.push(format!("no recorded answers at {}", answers.display()));
    }
    p
}

#[test]
fn every_catalog_entry_fits_the_schema() {
    let entries = strict();
    let mut all = Vec::new();
    for e in &entries {
        for problem in problems(e) {
            all.push(format!("{}: {problem}", e.name));
        }
    }
    assert!(
        all.is_empty(),
        "catalog/providers.yaml:\n{}",
        all.join("\n")
    );
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(names, sorted, "names are unique and in order");
    assert!(entries.len() >= 60, "{} entries", entries.len());
    assert_eq!(catalog().len(), entries.len());
}

/// The warnings the catalog check prints: entries pinning an API version whose published
/// end of life is before `today`.
fn past_end_of_life(entries: &[CatalogEntry], today: time::Date) -> Vec<String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    entries
        .iter()
        .filter_map(|e| {
            let v = e.api_version.as_ref()?;
            let eol = time::Date::parse(v.end_of_life.as_deref()?, format).ok()?;
            (eol < today).then(|| {
                format!(
                    "warning: catalog entry {} pins API version {} whose end of life was {eol}",
                    e.name, v.version
                )
            })
        })
        .collect()
}

#[test]
fn pinned_api_versions_past_their_end_of_life_are_reported() {
    let mut old: CatalogEntry = serde_json::from_value(serde_json::json!({
        "name": "acme", "display_name": "Acme", "category": "other", "kind": "oauth2",
        "docs_url": "https://acme.example/docs",
        "api_version": {"version": "v19.0", "end_of_life": "2026-05-21"},
    }))
    .unwrap();
    let day = |d: &str| {
        time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]")).unwrap()
    };
    assert_eq!(
        past_end_of_life(std::slice::from_ref(&old), day("2026-05-21")),
        Vec::<String>::new()
    );
    let warned = past_end_of_life(std::slice::from_ref(&old), day("2026-05-22"));
    assert_eq!(warned.len(), 1);
    assert!(
        warned[0].contains("acme pins API version v19.0"),
        "{warned:?}"
    );
    old.api_version = None;
    assert!(past_end_of_life(&[old], day("2030-01-01")).is_empty());
    // The real catalog: printed, not failed, so a lapsed date does not break every build.
    for warning in past_end_of_life(&strict(), time::OffsetDateTime::now_utc().date()) {
        eprintln!("{warning}");
    }
}

#[test]
fn schema_mistakes_are_caught() {
    let base = serde_json::json!({
        "name": "acme", "display_name": "Acme", "category": "other", "kind": "oauth2",
        "docs_url": "https://acme.example/docs",
        "authorize_url": "https://{tenant}.acme.example/authorize",
        "token_url": "http://acme.example/token",
    });
    let e: CatalogEntry = serde_json::from_value(base.clone()).unwrap();
    let found = problems(&e).join("\n");
    assert!(
        found.contains("{tenant} is not a declared param"),
        "{found}"
    );
    assert!(found.contains("token_url is not https"), "{found}");
    let mut unknown = base;
    unknown["scopes_separator"] = serde_json::json!(",");
    assert!(serde_json::from_value::<CatalogEntry>(unknown).is_err());
}

#[test]
fn paths_follow_objects_and_arrays() {
    let v = serde_json::json!({"data": [{"id": 7, "name": null, "login": "x"}]});
    assert_eq!(lookup(&v, "data.0.id"), Some(&serde_json::json!(7)));
    assert_eq!(lookup(&v, "data.1.id"), None);
    let any = Paths::Any(vec!["data.0.name".into(), "data.0.login".into()]);
    assert_eq!(any.find(&v), Some(&serde_json::json!("x")));
    assert_eq!(
        fill("https://{shop}.example/{x}", &|n| (n == "shop")
            .then(|| "acme".into())),
        "https://acme.example/{x}"
    );
}

/// The README's provider table, generated from the catalog.
fn readme_table() -> String {
    let mut out = String::from(
        "| Provider | `provider:` | Credentials | Refreshed | Needs |\n|---|---|---|---|---|\n",
    );
    for e in strict() {
        let kind = match e.kind {
            CredentialKind::Oauth2 => "OAuth 2.0 sign-in",
            CredentialKind::ClientCredentials => "OAuth 2.0 client credentials",
            CredentialKind::ApiKey => "API key",
            CredentialKind::Basic => "HTTP Basic",
        };
        let needs: Vec<String> = e
            .params
            .iter()
            .filter(|p| p.default.is_none())
            .map(|p| {
                format!(
                    "`{}` ({})",
                    p.name,
                    if p.scope == ParamScope::App {
                        "app"
                    } else {
                        "connection"
                    }
                )
            })
            .collect();
        out.push_str(&format!(
            "| [{}]({}) | `{}` | {} | {} | {} |\n",
            e.display_name,
            e.docs_url,
            e.name,
            kind,
            if e.refresh { "yes" } else { "" },
            needs.join(", ")
        ));
    }
    out
}

#[test]
fn the_readme_lists_the_catalog() {
    const START: &str = "<!-- catalog table: generated from shared/catalog/providers.yaml -->\n";
    const END: &str = "<!-- end of catalog table -->";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (Some(a), Some(b)) = (readme.find(START), readme.find(END)) else {
        panic!("README.md has no catalog table markers");
    };
    let current = &readme[a + START.len()..b];
    let wanted = readme_table();
    if current != wanted {
        if std::env::var_os("BLESS_README").is_some() {
            let updated = format!("{}{}{}", &readme[..a + START.len()], wanted, &readme[b..]);
            std::fs::write(&path, updated).unwrap();
        } else {
            panic!("README.md's provider table is out of date: run BLESS_README=1 cargo test -p integrations-shared the_readme_lists_the_catalog");
        }
    }
}
