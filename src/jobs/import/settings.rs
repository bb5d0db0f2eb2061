//! What an existing Synapse's `homeserver.yaml` carries over (pure): the secrets
//! that must stay the same (signing key, pepper, macaroon, form and registration
//! secrets) and the settings that become `masctl.toml` keys.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde_json::Value;

/// Registration settings carried into `[synapse.extra]` when the source sets them.
pub const REGISTRATION_KEYS: [&str; 10] = [
    "enable_registration_without_verification",
    "registration_requires_token",
    "registrations_require_3pid",
    "allowed_local_3pids",
    "disable_msisdn_registration",
    "auto_join_rooms",
    "autocreate_auto_join_rooms",
    "auto_join_rooms_for_guests",
    "allow_guest_access",
    "inhibit_user_in_use_error",
];

/// Where a secret's value comes from in the source config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretValue {
    Inline(String),
    /// A `*_path` key: the path as the source config names it.
    File(String),
}

/// (masctl secret name, where its value is).
pub type SecretSource = (&'static str, SecretValue);

/// The secrets masctl keeps under its own names, and the source keys they come from.
const SECRETS: [(&str, &str); 3] = [
    ("synapse-macaroon", "macaroon_secret_key"),
    ("synapse-form", "form_secret"),
    ("synapse-registration", "registration_shared_secret"),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub server_name: String,
    /// As the source config names it (a path in its own file system or container).
    pub signing_key_path: String,
    pub media_store_path: String,
    pub secrets: Vec<SecretSource>,
    /// The whole `password_config` when it holds a pepper: it becomes a secret file.
    pub password_config: Option<Value>,
    /// masctl.toml keys to set: (path, value).
    pub config: Vec<(Vec<String>, Value)>,
}

fn key(path: &[&str]) -> Vec<String> {
    path.iter().map(|s| s.to_string()).collect()
}

/// Reads the settings that carry over; refuses a server name other than the stack's.
pub fn settings(hs: &Value, server_name: &str, config_dir: &str) -> Result<Settings> {
    let Some(name) = hs.get("server_name").and_then(Value::as_str) else {
        bail!("the Synapse config has no server_name");
    };
    if name != server_name {
        bail!(
            "the Synapse config's server_name is {name:?}, masctl.toml's is {server_name:?}: a server's name cannot \
change (it is in every user and room ID); set server_name = {name:?} in masctl.toml"
        );
    }
    let signing_key_path = hs
        .get("signing_key_path")
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(|| format!("{config_dir}/{name}.signing.key"));
    let media_store_path = hs.get("media_store_path").and_then(Value::as_str).unwrap_or("media_store").to_string();
    let mut secrets = Vec::new();
    for (secret, k) in SECRETS {
        let inline = hs.get(k).and_then(Value::as_str);
        let file = hs.get(format!("{k}_path")).and_then(Value::as_str);
        match (inline, file) {
            (Some(v), _) if !v.is_empty() => secrets.push((secret, SecretValue::Inline(v.to_string()))),
            (_, Some(p)) => secrets.push((secret, SecretValue::File(p.to_string()))),
            _ => {}
        }
    }
    let mut config = Vec::new();
    if let Some(b) = hs.get("enable_registration").and_then(Value::as_bool) {
        config.push((key(&["synapse", "enable_registration"]), Value::Bool(b)));
    }
    for k in REGISTRATION_KEYS {
        if let Some(v) = hs.get(k).filter(|v| !v.is_null()) {
            config.push((key(&["synapse", "extra", k]), v.clone()));
        }
    }
    let pwc = hs.get("password_config").filter(|v| v.is_object());
    let has_pepper = pwc.and_then(|p| p.get("pepper")).and_then(Value::as_str).is_some_and(|p| !p.is_empty());
    let password_config = match (pwc, has_pepper) {
        (Some(p), true) => {
            config.push((key(&["synapse", "imported_password_config"]), Value::Bool(true)));
            Some(p.clone())
        }
        (Some(p), false) => {
            config.push((key(&["synapse", "extra", "password_config"]), p.clone()));
            None
        }
        (None, _) => None,
    };
    Ok(Settings { server_name: name.to_string(), signing_key_path, media_store_path, secrets, password_config, config })
}

/// A path the source config names, on this host: through the source container's
/// mounts (longest prefix first), relative ones against the config's directory.
pub fn resolve(path: &str, mounts: &[(String, PathBuf)], config_dir: &Path) -> PathBuf {
    let mut sorted: Vec<&(String, PathBuf)> = mounts.iter().collect();
    sorted.sort_by_key(|(inside, _)| std::cmp::Reverse(inside.len()));
    for (inside, host) in sorted {
        let inside = inside.trim_end_matches('/');
        if path == inside {
            return host.clone();
        }
        if let Some(rest) = path.strip_prefix(inside).and_then(|r| r.strip_prefix('/')) {
            return host.join(rest);
        }
    }
    let p = Path::new(path);
    if p.is_absolute() { p.to_path_buf() } else { config_dir.join(p) }
}

/// The registrations the source's Synapse loads (`app_service_config_files`), as
/// its config names them, in its order.
pub fn registration_files(hs: &Value) -> Result<Vec<String>> {
    match hs.get("app_service_config_files") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .ok_or_else(|| anyhow::anyhow!("app_service_config_files: {v} is not a path"))
            })
            .collect(),
        Some(v) => bail!("app_service_config_files is {v}, not a list of paths"),
    }
}

/// Where a registration the source lists may be on this host, most likely first:
/// through the source container's mounts, and on a playbook host also where the
/// playbook keeps it. The playbook mounts `<dir>/<bridge>/config/registration.yaml`
/// (older roles: `bridge/` or the bridge's base directory) into Synapse's
/// container as `/matrix-<bridge>-registration.yaml`.
pub fn registration_candidates(
    listed: &str,
    mounts: &[(String, PathBuf)],
    config_dir: &Path,
    playbook: Option<&Path>,
) -> Vec<PathBuf> {
    let mut out = vec![resolve(listed, mounts, config_dir)];
    let bridge = Path::new(listed)
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("matrix-"))
        .and_then(|n| n.strip_suffix("-registration.yaml"))
        .filter(|b| !b.is_empty() && !b.contains(".."));
    if let (Some(dir), Some(bridge)) = (playbook, bridge) {
        for sub in ["config", "bridge", ""] {
            out.push(dir.join(bridge).join(sub).join("registration.yaml"));
        }
    }
    out
}

/// The masctl.toml change naming the registrations: `synapse.appservices`, an
/// array of `{path}` tables (as `[[synapse.appservices]]` would write them).
pub fn appservices_change(paths: &[PathBuf]) -> (Vec<String>, Value) {
    let list = paths.iter().map(|p| serde_json::json!({"path": p.display().to_string()})).collect();
    (key(&["synapse", "appservices"]), Value::Array(list))
}

/// One of the source's `oidc_providers`: its masctl.toml table (without
/// `client_secret_file`, which the caller adds) and where its client secret is.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcImport {
    pub idp_id: String,
    pub table: serde_json::Map<String, Value>,
    pub secret: SecretValue,
}

/// The source's `oidc_providers` (Synapse's own single sign-on), as
/// `[[synapse.oidc_providers]]` tables; refuses what masctl cannot carry.
pub fn oidc_providers(hs: &Value) -> Result<Vec<OidcImport>> {
    let Some(list) = hs.get("oidc_providers").and_then(Value::as_array) else { return Ok(vec![]) };
    list.iter().map(oidc_provider).collect()
}

fn oidc_provider(p: &Value) -> Result<OidcImport> {
    let str_of = |k: &str| p.get(k).and_then(Value::as_str).map(String::from);
    // Synapse's default idp_id is "oidc" (recorded as plain `oidc`); it prefixes any other with `oidc-`.
    let idp_id = str_of("idp_id").unwrap_or_else(|| "oidc".into());
    let (Some(issuer), Some(client_id)) = (str_of("issuer"), str_of("client_id")) else {
        bail!("oidc_providers {idp_id}: no issuer or client_id");
    };
    let secret = match (str_of("client_secret"), str_of("client_secret_path")) {
        (Some(v), _) => SecretValue::Inline(v),
        (None, Some(path)) => SecretValue::File(path),
        (None, None) => bail!(
            "oidc_providers {idp_id}: no client_secret or client_secret_path (a client_secret_jwt_key is not \
carried over): add it to [[synapse.oidc_providers]] yourself"
        ),
    };
    let mut table = serde_json::Map::new();
    table.insert("idp_id".into(), Value::String(idp_id.clone()));
    if let Some(name) = str_of("idp_name") {
        table.insert("idp_name".into(), Value::String(name));
    }
    table.insert("issuer".into(), Value::String(issuer));
    table.insert("client_id".into(), Value::String(client_id));
    if let Some(scopes) = p.get("scopes").filter(|v| v.is_array()) {
        table.insert("scopes".into(), scopes.clone());
    }
    let mapping = &p["user_mapping_provider"]["config"];
    for (from, to) in [("localpart_template", "localpart_template"), ("display_name_template", "display_name_template")]
    {
        if let Some(t) = mapping.get(from).and_then(Value::as_str) {
            table.insert(to.into(), Value::String(t.into()));
        }
    }
    Ok(OidcImport { idp_id, table, secret })
}

/// The masctl.toml change naming Synapse's own providers, each with its secret's file.
pub fn oidc_change(providers: &[(OidcImport, PathBuf)]) -> (Vec<String>, Value) {
    let list = providers
        .iter()
        .map(|(p, secret)| {
            let mut t = p.table.clone();
            t.insert("client_secret_file".into(), Value::String(secret.display().to_string()));
            Value::Object(t)
        })
        .collect();
    (key(&["synapse", "oidc_providers"]), Value::Array(list))
}

/// A signing key file: one or more `ed25519 <id> <unpadded base64 seed>` lines.
pub fn check_signing_key(text: &str) -> Result<String> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    let Some(line) = first else { bail!("the signing key file is empty") };
    let parts: Vec<&str> = line.split_whitespace().collect();
    match parts.as_slice() {
        ["ed25519", id, seed] if !id.is_empty() && seed.len() >= 43 => Ok(format!("ed25519:{id}")),
        _ => bail!("the signing key file does not start with an `ed25519 <id> <key>` line"),
    }
}

/// The `password_config` secret file for Synapse: read after homeserver.yaml, it
/// replaces the section as a whole (JSON is YAML).
pub fn password_config_file(pwc: &Value) -> String {
    format!("{}\n", serde_json::json!({ "password_config": pwc }))
}

fn to_edit(v: &Value) -> Option<toml_edit::Value> {
    Some(match v {
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64()?.into(),
        },
        Value::String(s) => s.as_str().into(),
        Value::Array(a) => {
            let mut arr = toml_edit::Array::new();
            for x in a {
                arr.push(to_edit(x)?);
            }
            arr.into()
        }
        Value::Object(m) => {
            let mut t = toml_edit::InlineTable::new();
            for (k, x) in m {
                if let Some(x) = to_edit(x) {
                    t.insert(k, x);
                }
            }
            t.into()
        }
        Value::Null => return None,
    })
}

/// `text` (a masctl.toml) with `changes` set, everything else kept as written.
pub fn apply(text: &str, changes: &[(Vec<String>, Value)]) -> Result<String> {
    let mut doc: toml_edit::DocumentMut = text.parse()?;
    for (path, v) in changes {
        let Some(v) = to_edit(v) else { continue };
        let (last, tables) = path.split_last().expect("a key");
        let mut t = doc.as_table_mut();
        for name in tables {
            let entry = t.entry(name).or_insert_with(|| {
                let mut new = toml_edit::Table::new();
                new.set_implicit(true);
                toml_edit::Item::Table(new)
            });
            let Some(next) = entry.as_table_mut() else {
                bail!("{} is not a table in the config", path.join("."));
            };
            t = next;
        }
        t.insert(last, toml_edit::value(v));
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn playbook_registrations_are_found_where_the_playbook_keeps_them() {
        let mounts = vec![("/data".to_string(), PathBuf::from("/matrix/synapse/config"))];
        let pb = Some(Path::new("/matrix"));
        // (listed in app_service_config_files, playbook?, candidates)
        let cases: [(&str, Option<&Path>, &[&str]); 4] = [
            (
                "/matrix-mautrix-telegram-registration.yaml",
                pb,
                &[
                    "/matrix-mautrix-telegram-registration.yaml",
                    "/matrix/mautrix-telegram/config/registration.yaml",
                    "/matrix/mautrix-telegram/bridge/registration.yaml",
                    "/matrix/mautrix-telegram/registration.yaml",
                ],
            ),
            ("/data/hookshot.yaml", pb, &["/matrix/synapse/config/hookshot.yaml"]),
            ("/matrix-mautrix-telegram-registration.yaml", None, &["/matrix-mautrix-telegram-registration.yaml"]),
            ("bot.yaml", pb, &["/etc/synapse/bot.yaml"]),
        ];
        for (listed, playbook, want) in cases {
            let got = registration_candidates(listed, &mounts, Path::new("/etc/synapse"), playbook);
            let want: Vec<PathBuf> = want.iter().map(PathBuf::from).collect();
            assert_eq!(got, want, "{listed}");
        }
    }

    #[test]
    fn registration_files_are_read_as_synapse_lists_them() {
        let ok = json!({"app_service_config_files": ["/a.yaml", "/b.yaml"]});
        assert_eq!(registration_files(&ok).unwrap(), ["/a.yaml", "/b.yaml"]);
        assert!(registration_files(&json!({})).unwrap().is_empty());
        assert!(registration_files(&json!({"app_service_config_files": null})).unwrap().is_empty());
        assert!(registration_files(&json!({"app_service_config_files": "/a.yaml"})).is_err());
        assert!(registration_files(&json!({"app_service_config_files": [1]})).is_err());
        let text = apply("", &[appservices_change(&[PathBuf::from("/matrix/tg/config/registration.yaml")])]).unwrap();
        let t: toml::Table = text.parse().unwrap();
        assert_eq!(t["synapse"]["appservices"][0]["path"].as_str(), Some("/matrix/tg/config/registration.yaml"));
    }

    #[test]
    fn carries_secrets_and_registration_settings() {
        let hs = json!({
            "server_name": "example.com",
            "signing_key_path": "/data/example.com.signing.key",
            "media_store_path": "/matrix-media-store-parent/media-store",
            "macaroon_secret_key": "mac",
            "form_secret_path": "/data/form",
            "registration_shared_secret": "",
            "registration_shared_secret_path": "/data/reg",
            "enable_registration": true,
            "registration_requires_token": true,
            "auto_join_rooms": ["#a:example.com"],
            "allow_guest_access": null,
            "password_config": {"pepper": "p3pp3r", "policy": {"enabled": true, "minimum_length": 8}},
        });
        let s = settings(&hs, "example.com", "/data").unwrap();
        assert_eq!(s.signing_key_path, "/data/example.com.signing.key");
        assert_eq!(
            s.secrets,
            vec![
                ("synapse-macaroon", SecretValue::Inline("mac".into())),
                ("synapse-form", SecretValue::File("/data/form".into())),
                ("synapse-registration", SecretValue::File("/data/reg".into())),
            ]
        );
        let keys: Vec<String> = s.config.iter().map(|(k, _)| k.join(".")).collect();
        assert_eq!(
            keys,
            [
                "synapse.enable_registration",
                "synapse.extra.registration_requires_token",
                "synapse.extra.auto_join_rooms",
                "synapse.imported_password_config"
            ]
        );
        assert_eq!(s.password_config.unwrap()["policy"]["minimum_length"], 8);
    }

    #[test]
    fn refusals_and_defaults() {
        let e = settings(&json!({"server_name": "other.org"}), "example.com", "/c").unwrap_err().to_string();
        assert!(e.contains("\"other.org\"") && e.contains("cannot"), "{e}");
        assert!(settings(&json!({}), "example.com", "/c").is_err());
        let s =
            settings(&json!({"server_name": "example.com", "password_config": {"enabled": true}}), "example.com", "/c")
                .unwrap();
        assert_eq!(s.signing_key_path, "/c/example.com.signing.key");
        assert_eq!(s.media_store_path, "media_store");
        assert!(s.password_config.is_none(), "no pepper: not a secret");
        assert_eq!(s.config[0].0.join("."), "synapse.extra.password_config");
    }

    #[test]
    fn resolve_table() {
        let mounts = vec![
            ("/data".to_string(), PathBuf::from("/matrix/synapse/config")),
            ("/matrix-media-store-parent".to_string(), PathBuf::from("/matrix/synapse/storage")),
        ];
        let dir = Path::new("/etc/synapse");
        let cases = [
            ("/data/example.com.signing.key", "/matrix/synapse/config/example.com.signing.key"),
            ("/matrix-media-store-parent/media-store", "/matrix/synapse/storage/media-store"),
            ("/data", "/matrix/synapse/config"),
            ("/database/x", "/database/x"),
            ("media_store", "/etc/synapse/media_store"),
        ];
        for (inside, host) in cases {
            assert_eq!(resolve(inside, &mounts, dir), PathBuf::from(host), "{inside}");
        }
    }

    #[test]
    fn oidc_providers_carry_over_with_their_secrets() {
        let hs = serde_json::json!({"oidc_providers": [
            {"idp_id": "keycloak", "idp_name": "SSO", "issuer": "https://kc/realms/m", "client_id": "synapse",
             "client_secret": "s3", "scopes": ["openid", "profile"],
             "user_mapping_provider": {"config": {"localpart_template": "{{ user.preferred_username }}"}}},
            {"issuer": "https://dex/", "client_id": "syn", "client_secret_path": "/data/dex.secret"},
        ]});
        let got = oidc_providers(&hs).unwrap();
        assert_eq!(got[0].idp_id, "keycloak");
        assert_eq!(got[0].secret, SecretValue::Inline("s3".into()));
        assert_eq!(got[0].table["localpart_template"], "{{ user.preferred_username }}");
        assert_eq!(got[1].idp_id, "oidc", "Synapse's default idp_id");
        assert_eq!(got[1].secret, SecretValue::File("/data/dex.secret".into()));
        let pairs: Vec<(OidcImport, PathBuf)> = got.into_iter().map(|p| (p, PathBuf::from("/s/x"))).collect();
        let text = apply("", &[oidc_change(&pairs)]).unwrap();
        let t: toml::Table = toml::from_str(&text).unwrap();
        let first = &t["synapse"]["oidc_providers"][0];
        assert_eq!(first["client_secret_file"].as_str(), Some("/s/x"), "{text}");
        assert!(!text.contains("s3"), "the secret itself stays out of masctl.toml: {text}");
        for (bad, why) in [
            (serde_json::json!({"oidc_providers": [{"issuer": "https://a/"}]}), "no issuer or client_id"),
            (serde_json::json!({"oidc_providers": [{"issuer": "https://a/", "client_id": "c"}]}), "no client_secret"),
        ] {
            let e = oidc_providers(&bad).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
        assert!(oidc_providers(&serde_json::json!({})).unwrap().is_empty());
    }

    #[test]
    fn signing_key_lines() {
        let k = format!("ed25519 a_AbCd {}\n", "A".repeat(43));
        assert_eq!(check_signing_key(&k).unwrap(), "ed25519:a_AbCd");
        assert!(check_signing_key("").is_err());
        assert!(check_signing_key("-----BEGIN PRIVATE KEY-----").is_err());
    }

    #[test]
    fn apply_keeps_the_operators_text() {
        let text = "# my server\nserver_name = \"example.com\"\n\n[synapse]\n# keep me\nlog_level = \"INFO\"\n";
        let changes = vec![
            (key(&["synapse", "enable_registration"]), json!(true)),
            (key(&["synapse", "extra", "auto_join_rooms"]), json!(["#a:example.com"])),
            (key(&["synapse", "extra", "password_config"]), json!({"policy": {"enabled": true}})),
        ];
        let out = apply(text, &changes).unwrap();
        assert!(out.starts_with("# my server\n") && out.contains("# keep me\nlog_level = \"INFO\"\n"), "{out}");
        let parsed: toml::Table = out.parse().unwrap();
        assert_eq!(parsed["synapse"]["enable_registration"].as_bool(), Some(true));
        assert_eq!(parsed["synapse"]["extra"]["auto_join_rooms"][0].as_str(), Some("#a:example.com"));
        assert_eq!(parsed["synapse"]["extra"]["password_config"]["policy"]["enabled"].as_bool(), Some(true));
        // What is printed without --write-config: the same changes on their own.
        let alone: toml::Table = apply("", &changes).unwrap().parse().unwrap();
        assert_eq!(alone["synapse"]["enable_registration"].as_bool(), Some(true));
        assert!(apply("synapse = 1\n", &changes).is_err());
    }

    #[test]
    fn password_config_file_is_yaml_with_the_section() {
        let f = password_config_file(&json!({"pepper": "a\"b"}));
        let v: Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["password_config"]["pepper"], "a\"b");
    }
}
