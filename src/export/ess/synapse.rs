//! `synapse.*` values: secrets by reference, `additional` from what masctl's
//! `homeserver.yaml` carries beyond what the chart owns, media and logging.

use serde_json::{Map, Value, json};

use super::fragment;
use super::input::Input;
use super::report::{Finding, Reason};
use super::secrets::{Part, SecretSet};

/// Keys the chart renders itself (configs/synapse/synapse-04-homeserver-overrides
/// and -05-process-specific at 26.8.1); a user's value for one is overridden.
/// Not `experimental_features`: the chart merges maps, so masctl's (QR login,
/// `encrypted_bridges`' MSC3202 and MSC2409, the user's) carry in `additional`
/// beside the chart's own.
pub const CHART_OWNED: [&str; 30] = [
    "server_name",
    "public_baseurl",
    "signing_key_path",
    "signing_key",
    "enable_metrics",
    "log_config",
    "macaroon_secret_key_path",
    "macaroon_secret_key",
    "registration_shared_secret_path",
    "registration_shared_secret",
    "database",
    "ip_range_blacklist",
    "matrix_authentication_service",
    "matrix_rtc",
    "notify_appservices_from_worker",
    "app_service_config_files",
    "run_background_tasks_on",
    "send_federation",
    "federation_sender_instances",
    "media_store_path",
    "max_upload_size",
    "media_instance_running_background_jobs",
    "start_pushers",
    "pusher_instances",
    "update_user_directory_from_worker",
    "instance_map",
    "redis",
    "stream_writers",
    "listeners",
    "worker_app",
];

/// Keys masctl renders for its own processes, mapped elsewhere in the values or
/// meaningless in the cluster (paths into masctl's containers).
const MASCTL_OWN: [&str; 6] = [
    "worker_replication_secret_path",
    "enable_media_repo",
    "suppress_key_server_warning",
    "federation_custom_ca_list",
    "pid_file",
    "worker_name",
];

/// masctl's secret files for the chart's three Synapse credentials.
const CREDENTIALS: [(&str, &str); 3] = [
    ("signingKey", "synapse-signing.key"),
    ("macaroon", "synapse-macaroon"),
    ("registrationSharedSecret", "synapse-registration"),
];

pub fn section(input: &Input, secrets: &mut SecretSet, report: &mut Vec<Finding>) -> Map<String, Value> {
    let mut out = Map::new();
    for (value, file) in CREDENTIALS {
        if let Some(v) = input.secret(file) {
            out.insert(value.into(), secrets.credential(Part::Synapse, value, v));
        }
    }
    out.insert("additional".into(), Value::Object(additional(input, secrets, report)));
    out.insert("media".into(), media(input, report));
    match input.log_level.to_uppercase().as_str() {
        l @ ("CRITICAL" | "ERROR" | "WARNING" | "INFO" | "DEBUG") => {
            out.insert("logging".into(), json!({"rootLevel": l}));
        }
        other => report.push(Finding::new(
            "synapse.log_level",
            Reason::NoChartEquivalent(format!("{other} is not a level the chart takes (CRITICAL…DEBUG)")),
        )),
    }
    out
}

/// `synapse.additional`: `masctl` inline, `masctl-secret` from the Secret, and
/// each secret config file (the imported `password_config`) on its own.
fn additional(input: &Input, secrets: &mut SecretSet, report: &mut Vec<Finding>) -> Map<String, Value> {
    let mut keys = Map::new();
    for (k, v) in input.homeserver.as_object().into_iter().flatten() {
        let user_set = input.synapse_extra_keys.contains(k);
        if CHART_OWNED.contains(&k.as_str()) || MASCTL_OWN.contains(&k.as_str()) {
            if user_set && k != "max_upload_size" {
                let why = "the chart sets this itself; your value is not exported";
                report.push(Finding::new(format!("synapse.extra.{k}"), Reason::ChartOwned(why.into())));
            } else if k == "federation_custom_ca_list" {
                let why = "the private CA masctl trusts for federation; mount it with extraVolumes";
                report.push(Finding::new("edge.trust", Reason::NoChartEquivalent(why.into())));
            }
            continue;
        }
        keys.insert(k.clone(), v.clone());
    }
    let (inline, secret) = fragment::split(input, "synapse", keys, report);
    let mut out = Map::new();
    if !inline.is_empty() {
        out.insert("masctl".into(), json!({"config": fragment::yaml(&inline)}));
    }
    if !secret.is_empty() {
        let f = secrets.config_fragment(Part::Synapse, "masctl-secret.yaml", &fragment::yaml(&secret));
        out.insert("masctl-secret".into(), f);
    }
    for (name, text) in &input.synapse_secret_files {
        out.insert(format!("masctl-{name}"), secrets.config_fragment(Part::Synapse, name, text));
    }
    out
}

fn media(input: &Input, report: &mut Vec<Finding>) -> Value {
    let mut m = json!({"storage": {"size": "10Gi"}});
    if let Some(v) = input.homeserver.get("max_upload_size") {
        match upload_size(v) {
            Some(s) => m["maxUploadSize"] = json!(s),
            None => report.push(Finding::new(
                "synapse.extra.max_upload_size",
                Reason::NoChartEquivalent(format!("{v} is not a whole number of KiB (the chart takes ^[0-9]+[MK]$)")),
            )),
        }
    }
    m
}

/// Synapse's size (bytes, or a number with K/M/G/T in powers of 1024) as the
/// chart's `^[0-9]+[MK]$`, when it is a whole number of KiB.
pub fn upload_size(v: &Value) -> Option<String> {
    let bytes: u64 = match v {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => {
            let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
            let mult: u64 = match unit {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                _ => return None,
            };
            num.parse::<u64>().ok()?.checked_mul(mult)?
        }
        _ => return None,
    };
    match bytes {
        0 => None,
        b if b % (1 << 20) == 0 => Some(format!("{}M", b >> 20)),
        b if b % (1 << 10) == 0 => Some(format!("{}K", b >> 10)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_sizes() {
        let cases = [
            (json!("50M"), Some("50M")),
            (json!("1G"), Some("1024M")),
            (json!("512K"), Some("512K")),
            (json!(1048576), Some("1M")),
            (json!(1536), None),
            (json!(2048), Some("2K")),
            (json!("100"), None),
            (json!("5P"), None),
            (json!("abc"), None),
        ];
        for (v, want) in cases {
            assert_eq!(upload_size(&v).as_deref(), want, "{v}");
        }
    }
}
