//! The local server's providers file: `providers: {name: {client_id, client_secret, ...}}`,
//! the admin API's provider body under each name, fed through the same registration path.

use crate::domain::ids::ProviderName;
use crate::domain::providers::ProviderAppInput;
use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlLoader};

#[derive(Debug, thiserror::Error)]
pub enum ProvidersFileError {
    #[error("providers file: {0}")]
    Syntax(String),
    #[error("providers file: expected a mapping 'providers: {{name: {{client_id: ..., ...}}}}'")]
    Shape,
    #[error("providers file: provider '{name}': {reason}")]
    Entry { name: String, reason: String },
}

fn to_json(y: &Yaml) -> Option<Value> {
    Some(match y {
        Yaml::String(s) | Yaml::Real(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::Number(Number::from(*i)),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Null => Value::Null,
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect::<Option<_>>()?),
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                m.insert(k.as_str()?.to_owned(), to_json(v)?);
            }
            Value::Object(m)
        }
        Yaml::Alias(_) | Yaml::BadValue => return None,
    })
}

pub fn parse_providers_file(
    text: &str,
) -> Result<Vec<(ProviderName, ProviderAppInput)>, ProvidersFileError> {
    let docs =
        YamlLoader::load_from_str(text).map_err(|e| ProvidersFileError::Syntax(e.to_string()))?;
    let Some(doc) = docs.first() else {
        return Ok(Vec::new());
    };
    let root = to_json(doc).ok_or(ProvidersFileError::Shape)?;
    let Some(providers) = root.get("providers").and_then(Value::as_object) else {
        return Err(ProvidersFileError::Shape);
    };
    providers
        .iter()
        .map(|(name, body)| {
            let entry = |reason: String| ProvidersFileError::Entry {
                name: name.clone(),
                reason,
            };
            let parsed = ProviderName::parse(name).map_err(|e| entry(e.to_string()))?;
            let input: ProviderAppInput =
                serde_json::from_value(body.clone()).map_err(|e| entry(e.to_string()))?;
            Ok((parsed, input))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_apps_and_refuses_unknown_fields() {
        let ok = "providers:\n  github:\n    client_id: abc\n    client_secret: xyz\n  acme:\n    client_id: c\n    issuer: http://127.0.0.1:9000\n    pkce: true\n";
        let list = parse_providers_file(ok).unwrap();
        assert_eq!(list.len(), 2);
        let acme = list.iter().find(|(n, _)| n.as_str() == "acme").unwrap();
        assert_eq!(acme.1.pkce, Some(true));
        assert_eq!(acme.1.issuer.as_deref(), Some("http://127.0.0.1:9000"));
        let bad = "providers:\n  github:\n    client_id: abc\n    secret: oops\n";
        let err = parse_providers_file(bad).unwrap_err().to_string();
        assert!(err.contains("github") && err.contains("secret"), "{err}");
        assert!(parse_providers_file("- a\n").is_err());
    }
}
