//! Turns the provider catalog (`catalog/providers.yaml`) into JSON in `OUT_DIR`, which the
//! crate embeds and reads with serde on first use: no YAML parser runs at start.

use std::path::Path;
use yaml_rust2::{Yaml, YamlLoader};

fn json(y: &Yaml) -> serde_json::Value {
    use serde_json::Value;
    match y {
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::String(r.clone()), Value::Number),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        other => panic!("catalog: a key that is not a string: {other:?}"),
                    };
                    (key, json(v))
                })
                .collect(),
        ),
        Yaml::Null => Value::Null,
        other => panic!("catalog: a value YAML could not read: {other:?}"),
    }
}

fn main() {
    let source = Path::new("catalog/providers.yaml");
    println!("cargo:rerun-if-changed={}", source.display());
    let text = std::fs::read_to_string(source).expect("catalog/providers.yaml");
    let docs = YamlLoader::load_from_str(&text).expect("catalog/providers.yaml is not YAML");
    let value = docs.first().map(json).unwrap_or(serde_json::Value::Null);
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("catalog.json");
    std::fs::write(out, value.to_string()).expect("writing catalog.json");
}
