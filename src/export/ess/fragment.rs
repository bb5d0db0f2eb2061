//! Config fragments for the chart's `additional`: masctl's rendered config with
//! its secret-file references replaced by the secrets' values. Fragments holding
//! a secret go to a Secret (`configSecret`), the rest inline (`config`).

use serde_json::{Map, Value};

use super::input::Input;
use super::report::{Finding, Reason};

/// Where masctl's services see their secrets.
const SECRETS_DIR: &str = "/run/secrets/";
/// Key-name parts that mark a value as a credential even when written inline.
const SECRET_WORDS: [&str; 4] = ["secret", "password", "pepper", "token"];

/// A top-level key's value made portable, and whether it holds a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Carried {
    pub value: Value,
    pub secret: bool,
}

/// Resolves `<name>_file`/`<name>_path: /run/secrets/X` to `<name>: <X's content>`;
/// other file paths do not exist in the cluster: dropped and reported under `setting`.
pub fn carry(input: &Input, setting: &str, v: &Value, report: &mut Vec<Finding>) -> Carried {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            let mut secret = false;
            for (k, x) in m {
                let here = format!("{setting}.{k}");
                if let Some((name, path)) = file_ref(k, x) {
                    match path.strip_prefix(SECRETS_DIR).and_then(|f| input.secret(f)) {
                        Some(content) => {
                            out.insert(name.to_string(), Value::String(content.to_string()));
                            secret = true;
                        }
                        None => report.push(Finding::new(
                            here,
                            Reason::NoChartEquivalent(format!(
                                "a file on the masctl host ({path}); mount it with extraVolumes and set it again"
                            )),
                        )),
                    }
                    continue;
                }
                let c = carry(input, &here, x, report);
                secret |= c.secret || (x.is_string() && SECRET_WORDS.iter().any(|w| k.contains(w)));
                out.insert(k.clone(), c.value);
            }
            Carried { value: Value::Object(out), secret }
        }
        Value::Array(a) => {
            let items: Vec<Carried> = a.iter().map(|x| carry(input, setting, x, report)).collect();
            let secret = items.iter().any(|c| c.secret);
            Carried { value: Value::Array(items.into_iter().map(|c| c.value).collect()), secret }
        }
        _ => Carried { value: v.clone(), secret: false },
    }
}

fn file_ref<'a>(key: &'a str, v: &'a Value) -> Option<(&'a str, &'a str)> {
    let name = key.strip_suffix("_file").or_else(|| key.strip_suffix("_path"))?;
    Some((name, v.as_str()?))
}

/// YAML text of a fragment (JSON, which YAML reads).
pub fn yaml(m: &Map<String, Value>) -> String {
    serde_json::to_string_pretty(&Value::Object(m.clone())).unwrap_or_default() + "\n"
}

/// Splits carried top-level keys into the inline part and the secret part.
pub fn split(
    input: &Input,
    setting: &str,
    keys: Map<String, Value>,
    report: &mut Vec<Finding>,
) -> (Map<String, Value>, Map<String, Value>) {
    let (mut inline, mut secret) = (Map::new(), Map::new());
    for (k, v) in keys {
        // Carried as a one-key object, so a top-level `<name>_path` resolves too.
        let one = Value::Object([(k.clone(), v)].into_iter().collect());
        let c = carry(input, setting, &one, report);
        let target = if c.secret { &mut secret } else { &mut inline };
        if let Value::Object(m) = c.value {
            target.extend(m);
        }
    }
    (inline, secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::ess::fixtures;
    use serde_json::json;

    #[test]
    fn resolves_secret_files_and_lists_host_files() {
        let input = fixtures::default_stack();
        let cases = [
            (json!({"form_secret_path": "/run/secrets/synapse-form"}), json!({"form_secret": "form-1"}), true, 0),
            (
                json!({"a": {"password_file": "/run/secrets/mas-smtp-password"}}),
                json!({"a": {"password": "smtp-1"}}),
                true,
                0,
            ),
            (
                json!({"x": [{"client_secret_file": "/run/secrets/mas-provider-0"}]}),
                json!({"x": [{"client_secret": "prov-1"}]}),
                true,
                0,
            ),
            (json!({"pepper": "inline"}), json!({"pepper": "inline"}), true, 0),
            (json!({"templates_path": "/etc/thing"}), json!({}), false, 1),
            (json!({"enable_registration": false}), json!({"enable_registration": false}), false, 0),
        ];
        for (v, want, secret, findings) in cases {
            let mut report = Vec::new();
            let c = carry(&input, "t", &v, &mut report);
            assert_eq!((c.value.clone(), c.secret, report.len()), (want, secret, findings), "{v}");
        }
    }
}
