//! `--chart DIR`: the values checked against that chart's own `values.schema.json`
//! (JSON Schema Draft 2020-12, the check Helm makes at install) before anything is
//! written, so a values file the chart would refuse never leaves masctl.

use std::fmt;

use serde_json::Value;

pub use jsonschema::Validator;

/// One rule of the chart's schema the values break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where in values.yaml, as a JSON path (`$.synapse.workers["media-repository"]`).
    pub path: String,
    /// The schema keyword that failed (`required`, `type`, `additionalProperties`…).
    pub rule: String,
    /// Where that rule is in values.schema.json, as a JSON pointer.
    pub schema_at: String,
    /// The validator's own words, with the offending value masked (it may be long).
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "values.yaml at {}: breaks the chart's `{}` rule ({}; values.schema.json#{})",
            self.path, self.rule, self.message, self.schema_at
        )
    }
}

/// The chart's schema, compiled as Draft 2020-12 whatever its `$schema` says
/// (the chart declares 2020-12; Helm 4 reads it so). Nothing is fetched: the
/// crate is built without its network and file resolvers, and the chart's
/// schema is one self-contained document.
pub fn compile(schema: &Value) -> Result<Validator, String> {
    jsonschema::draft202012::options()
        .build(schema)
        .map_err(|e| format!("not a valid JSON Schema: {} (at #{})", e.masked(), e.schema_path().as_str()))
}

/// Every rule the values break, ordered by where they are in the values.
pub fn check(schema: &Validator, values: &Value) -> Vec<Violation> {
    let mut out: Vec<Violation> = schema
        .iter_errors(values)
        .map(|e| Violation {
            path: json_path(values, e.instance_path().as_str()),
            rule: e.kind().keyword().to_string(),
            schema_at: e.schema_path().as_str().to_string(),
            message: e.masked().to_string(),
        })
        .collect();
    out.sort_by(|a, b| (&a.path, &a.schema_at).cmp(&(&b.path, &b.schema_at)));
    out.dedup();
    out
}

/// A JSON pointer into `doc` as a JSON path: `$` the root, `.key` for plain
/// keys, `["key"]` for others, `[i]` for array items.
pub fn json_path(doc: &Value, pointer: &str) -> String {
    let mut out = String::from("$");
    let mut at = Some(doc);
    for raw in pointer.split('/').skip(1) {
        let seg = raw.replace("~1", "/").replace("~0", "~");
        match at {
            Some(Value::Array(a)) if seg.parse::<usize>().is_ok() => {
                out.push_str(&format!("[{seg}]"));
                at = a.get(seg.parse::<usize>().unwrap_or(usize::MAX));
            }
            _ => {
                let plain = !seg.is_empty()
                    && !seg.starts_with(|c: char| c.is_ascii_digit())
                    && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if plain {
                    out.push('.');
                    out.push_str(&seg);
                } else {
                    out.push_str(&format!("[{}]", Value::String(seg.clone())));
                }
                at = at.and_then(|v| v.get(&seg));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::export::ess::{export, fixtures};

    /// The fixture chart's schema: Element's `values.schema.json` for matrix-stack
    /// 26.8.1, verbatim, beside a minimal Chart.yaml.
    fn schema() -> Value {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ess-chart/values.schema.json");
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    #[test]
    fn json_paths() {
        let doc = json!({"a": {"b-c": [{"d": 1}], "7": {}}});
        for (pointer, want) in [
            ("", "$"),
            ("/a", "$.a"),
            ("/a/b-c", "$.a[\"b-c\"]"),
            ("/a/b-c/0/d", "$.a[\"b-c\"][0].d"),
            ("/a/7", "$.a[\"7\"]"),
            ("/x~1y/z", "$[\"x/y\"].z"),
        ] {
            assert_eq!(json_path(&doc, pointer), want, "{pointer}");
        }
    }

    #[test]
    fn the_fixture_exports_pass_the_charts_schema() {
        let v = compile(&schema()).unwrap();
        let inputs = [
            fixtures::default_stack(),
            fixtures::mas_workers_provider_smtp(),
            fixtures::external_postgres(),
            fixtures::bridges(),
        ];
        for input in inputs {
            let e = export(&input).unwrap();
            assert_eq!(check(&v, &e.values), vec![], "{}", input.release);
        }
    }

    /// (what is done to the default stack's values, the path and rule the error names)
    #[test]
    fn broken_values_are_named_by_path_and_rule() {
        type Break = fn(&mut Value);
        let cases: [(Break, &str, &str); 4] = [
            (|v| v["serverName"] = json!(7), "$.serverName", "type"),
            (
                |v| v["synapse"]["media"] = json!({"maxUploadSize": "lots", "x": 1}),
                "$.synapse.media",
                "additionalProperties",
            ),
            (|v| v["synapse"]["logging"]["rootLevel"] = json!("LOUD"), "$.synapse.logging.rootLevel", "enum"),
            (
                |v| v["postgres"]["essPasswords"]["synapse"] = json!({"secretKey": "k"}),
                "$.postgres.essPasswords.synapse",
                "oneOf",
            ),
        ];
        let v = compile(&schema()).unwrap();
        for (brk, path, rule) in cases {
            let mut values = export(&fixtures::default_stack()).unwrap().values;
            brk(&mut values);
            let bad = check(&v, &values);
            assert!(bad.iter().any(|b| b.path == path && b.rule == rule), "{path} {rule}: {bad:#?}");
            let line = bad[0].to_string();
            assert!(line.starts_with("values.yaml at $.") && line.contains("values.schema.json#/"), "{line}");
        }
    }

    #[test]
    fn a_schema_that_requires_more_refuses_at_the_root() {
        let mut s = schema();
        s["required"] = json!(["masctlFixtureRequired"]);
        let bad = check(&compile(&s).unwrap(), &export(&fixtures::default_stack()).unwrap().values);
        assert_eq!(bad.len(), 1, "{bad:#?}");
        assert_eq!((bad[0].path.as_str(), bad[0].rule.as_str()), ("$", "required"));
        assert!(bad[0].message.contains("masctlFixtureRequired"), "{}", bad[0]);
    }

    #[test]
    fn a_broken_schema_is_refused() {
        let e = compile(&json!({"type": "nonsense"})).unwrap_err();
        assert!(e.contains("not a valid JSON Schema"), "{e}");
    }
}
