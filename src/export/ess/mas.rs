//! `matrixAuthenticationService.*` values: secrets and keys by reference,
//! providers, email, passwords and extra settings as `additional` fragments.

use serde_json::{Map, Value, json};

use super::fragment;
use super::input::Input;
use super::keys::{self, KeyType};
use super::report::{Finding, Reason};
use super::secrets::{Part, SecretSet};

/// Sections the chart renders itself (configs/matrix-authentication-service/
/// config-overrides.yaml.tpl at 26.8.1).
pub const CHART_OWNED: [&str; 5] = ["http", "database", "matrix", "secrets", "telemetry"];

/// Sections masctl renders for its own image and tools: paths into masctl's MAS
/// image, and masctl's admin client with the policy entry that lets it in.
const MASCTL_OWN: [(&str, &str); 3] = [
    ("templates", "paths into masctl's MAS image; the chart's image has its own"),
    ("policy", "masctl's policy data admits masctl's admin client, which the cluster does not need"),
    ("clients", "masctl's own admin-API client; masctl does not manage the cluster"),
];

pub fn section(input: &Input, secrets: &mut SecretSet, report: &mut Vec<Finding>) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(cfg) = &input.mas_config else {
        out.insert("enabled".into(), json!(false));
        return out;
    };
    out.insert("enabled".into(), json!(true));
    for (value, file) in [("encryptionSecret", "mas-encryption"), ("synapseSharedSecret", "mas-synapse-secret")] {
        if let Some(v) = input.secret(file) {
            out.insert(value.into(), secrets.credential(Part::Mas, value, v));
        }
    }
    out.insert("privateKeys".into(), Value::Object(private_keys(input, cfg, secrets, report)));
    out.insert("additional".into(), Value::Object(additional(input, cfg, secrets, report)));
    out.insert("ingress".into(), json!({"host": input.chart_mas_host()}));
    if let Some((host, path)) = input.masctl_mas_base() {
        let new = format!("https://{}/", input.chart_mas_host());
        if format!("https://{host}{path}") != new {
            let why = format!(
                "MAS moves from https://{host}{path} to {new} (the chart serves it at the root of its \
                               own host): clients see a new issuer; point DNS for the new host at the ingress"
            );
            report.push(Finding::new("mas.hostname / mas.path_prefix", Reason::Changed(why)));
        }
    }
    out
}

/// One key per type, from `secrets.keys` of masctl's config; a second key of a
/// type, or a type the chart lacks, is listed.
fn private_keys(input: &Input, cfg: &Value, secrets: &mut SecretSet, report: &mut Vec<Finding>) -> Map<String, Value> {
    let mut out = Map::new();
    let listed = cfg.pointer("/secrets/keys").and_then(Value::as_array).cloned().unwrap_or_default();
    for (i, k) in listed.iter().enumerate() {
        let setting = format!("mas secrets.keys[{i}]");
        let pem = match (k.get("key_file").and_then(Value::as_str), k.get("key").and_then(Value::as_str)) {
            (Some(f), _) => f.strip_prefix("/run/secrets/").and_then(|f| input.secret(f)).map(String::from),
            (None, Some(inline)) => Some(inline.to_string()),
            _ => None,
        };
        let Some(pem) = pem else {
            report.push(Finding::new(
                setting,
                Reason::NoChartEquivalent("key not readable from masctl's secrets".into()),
            ));
            continue;
        };
        match keys::classify(&pem) {
            Some(t) if !out.contains_key(t.value_name()) => {
                let key = format!("privateKeys.{}", t.value_name());
                out.insert(t.value_name().into(), secrets.credential(Part::Mas, &key, &pem));
            }
            t => {
                let why = match t {
                    Some(t) => format!("a second {} key: the chart takes one key per type", t.value_name()),
                    None => "a key type the chart has no slot for".to_string(),
                };
                report.push(Finding::new(setting, Reason::NoChartEquivalent(why)));
            }
        }
    }
    if !out.contains_key(KeyType::Rsa.value_name()) {
        let why = "no RSA key: the chart's initSecrets makes one (a new kid)";
        report.push(Finding::new("mas secrets.keys", Reason::Changed(why.into())));
    }
    out
}

fn additional(input: &Input, cfg: &Value, secrets: &mut SecretSet, report: &mut Vec<Finding>) -> Map<String, Value> {
    let mut keys = Map::new();
    for (k, v) in cfg.as_object().into_iter().flatten() {
        if CHART_OWNED.contains(&k.as_str()) {
            if input.mas_extra_keys.contains(k) {
                let why = "the chart renders this section itself; your value is not exported";
                report.push(Finding::new(format!("mas.extra.{k}"), Reason::ChartOwned(why.into())));
            }
            continue;
        }
        if let Some((_, why)) = MASCTL_OWN.iter().find(|(n, _)| n == k) {
            let setting = if input.mas_extra_keys.contains(k) { format!("mas.extra.{k}") } else { format!("mas {k}") };
            report.push(Finding::new(setting, Reason::NoChartEquivalent((*why).into())));
            continue;
        }
        keys.insert(k.clone(), v.clone());
    }
    let mut out = Map::new();
    // One fragment per section, so a provider's or SMTP's secret stays in its own key.
    for (k, v) in keys {
        let one: Map<String, Value> = [(k.clone(), v)].into_iter().collect();
        let (inline, secret) = fragment::split(input, "mas", one, report);
        if !inline.is_empty() {
            out.insert(format!("masctl-{k}"), json!({"config": fragment::yaml(&inline)}));
        }
        if !secret.is_empty() {
            let f = secrets.config_fragment(Part::Mas, &format!("{k}.yaml"), &fragment::yaml(&secret));
            out.insert(format!("masctl-{k}"), f);
        }
    }
    out
}
