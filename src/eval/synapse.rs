//! Synapse: `homeserver.yaml` (written as JSON, which YAML parsers read as is) and
//! its container. Secrets are referenced by path only.

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::trust::TRUST_IN;
use super::yaml::render;
use super::{Entry, Inputs};
use crate::config::Config;
use crate::secrets::SYNAPSE_PASSWORD_CONFIG;
use crate::service::{Database, Service};
use crate::spec::{Bind, DataDir, Health, ServiceSpec};

const SERVICE: Service = Service::Synapse;
const UID: u32 = SERVICE.uid();

/// Settings Synapse refuses while it delegates authentication to MAS.
const REFUSED_UNDER_MAS: [&str; 14] = [
    "password_config",
    "enable_registration",
    "enable_registration_captcha",
    "user_consent",
    "oidc_providers",
    "oidc_config",
    "saml2_config",
    "cas_config",
    "jwt_config",
    "password_providers",
    "login_via_existing_session",
    "refresh_token_lifetime",
    "nonrefreshable_access_token_lifetime",
    "session_lifetime",
];

/// `homeserver.yaml` as Synapse runs it: delegating to MAS when the config says so.
pub fn homeserver(c: &Config) -> Result<Value> {
    let mut hs = homeserver_pre_mas(c)?;
    if c.mas_delegating()
        && let Some(obj) = hs.as_object_mut()
    {
        for k in REFUSED_UNDER_MAS {
            obj.remove(k);
        }
        obj.insert("enable_3pid_changes".into(), json!(false));
        obj.insert(
            "matrix_authentication_service".into(),
            json!({
                "enabled": true,
                "endpoint": format!("http://{}-mas:8080{}/", c.instance.get_ref(), c.mas.path_prefix.get_ref()),
                "secret_path": "/run/secrets/synapse-mas-secret",
            }),
        );
    }
    if c.qr_login() {
        experimental(&mut hs)["msc4108_enabled"] = json!(true);
    }
    if c.workers_on() {
        super::workers::share(c, &mut hs);
    }
    Ok(hs)
}

/// Synapse's own config without MAS: what it runs before the migration, and what
/// `syn2mas` reads (it needs the pre-MAS password and SSO settings).
pub fn homeserver_pre_mas(c: &Config) -> Result<Value> {
    let db = super::postgres::conn(c, Database::Synapse);
    let mut hs = json!({
        "server_name": c.server_name.get_ref(),
        "public_baseurl": format!("https://{}/", c.matrix_hostname()),
        "report_stats": false,
        "enable_registration": c.synapse.enable_registration,
        "listeners": [
            {
                "port": 8008, "type": "http", "tls": false, "bind_addresses": ["0.0.0.0"], "x_forwarded": true,
                "resources": [{"names": ["client", "federation"], "compress": false}],
            },
            {
                "port": ADMIN_PORT, "type": "http", "tls": false, "bind_addresses": ["0.0.0.0"], "tag": ADMIN_TAG,
                "resources": [{"names": ["client"], "compress": false}],
            },
        ],
        "database": {
            "name": "psycopg2",
            "args": {
                "host": db.host, "port": db.port, "user": db.user, "dbname": db.database,
                "passfile": "/run/secrets/synapse-pgpass", "cp_min": 2, "cp_max": 10,
            },
        },
        "log_config": "/etc/synapse/log.yaml",
        "media_store_path": "/data/media",
        "signing_key_path": "/run/secrets/synapse-signing.key",
        "macaroon_secret_key_path": "/run/secrets/synapse-macaroon",
        "form_secret_path": "/run/secrets/synapse-form",
        "registration_shared_secret_path": "/run/secrets/synapse-registration",
        "suppress_key_server_warning": true,
    });
    if c.edge.trust.is_some() {
        // A private CA (tests): federation trusts it instead of the system roots.
        hs["federation_custom_ca_list"] = json!([TRUST_IN]);
    }
    if !c.synapse.oidc_providers.is_empty() {
        hs["oidc_providers"] = oidc_providers(c);
    }
    let extra = serde_json::to_value(c.synapse.extra.get_ref()).context("synapse.extra")?;
    if let (Some(obj), Value::Object(extra)) = (hs.as_object_mut(), extra) {
        for (k, v) in extra {
            obj.insert(k, v);
        }
    }
    appservices(c, &mut hs);
    Ok(hs)
}

/// Synapse's own `oidc_providers`, each client secret read from masctl's copy.
fn oidc_providers(c: &Config) -> Value {
    let providers = c.synapse.oidc_providers.iter().enumerate().map(|(i, p)| {
        let mut mapping = json!({"localpart_template": p.localpart_template});
        if let Some(t) = &p.display_name_template {
            mapping["display_name_template"] = json!(t);
        }
        let mut v = json!({
            "idp_id": p.idp_id.get_ref(),
            "issuer": p.issuer.get_ref(),
            "client_id": p.client_id,
            "client_secret_path": format!("/run/secrets/{}", crate::secrets::synapse_oidc_secret(i)),
            "scopes": p.scopes,
            "user_mapping_provider": {"config": mapping},
        });
        if let Some(name) = &p.idp_name {
            v["idp_name"] = json!(name);
        }
        v
    });
    Value::Array(providers.collect())
}

/// Where Synapse reads the appservice registrations (`secrets/appservices/` on the host).
const APPSERVICES_IN: &str = "/run/secrets/appservices";

/// (host file under `secrets/`, container path) for every registration Synapse loads.
pub fn registration_mounts(c: &Config) -> Vec<(String, String)> {
    let mut files: Vec<String> = c.registrations.iter().map(|l| l.file_name()).collect();
    if c.synapse.double_puppet.enabled {
        files.push(crate::appservice::double_puppet::FILE.into());
    }
    files.into_iter().map(|f| (format!("appservices/{f}"), format!("{APPSERVICES_IN}/{f}"))).collect()
}

/// `app_service_config_files` and, for encrypted bridges, the experimental
/// features they need (merged into any `experimental_features` from `extra`).
fn appservices(c: &Config, hs: &mut Value) {
    let files: Vec<String> = registration_mounts(c).into_iter().map(|(_, inside)| inside).collect();
    if !files.is_empty() {
        hs["app_service_config_files"] = json!(files);
    }
    if c.synapse.encrypted_bridges {
        let xf = experimental(hs);
        xf["msc3202_transaction_extensions"] = json!(true);
        xf["msc2409_to_device_messages_enabled"] = json!(true);
    }
}

/// `experimental_features`, made an object if `extra` did not give one.
fn experimental(hs: &mut Value) -> &mut Value {
    if !hs.get("experimental_features").is_some_and(Value::is_object) {
        hs["experimental_features"] = json!({});
    }
    &mut hs["experimental_features"]
}

/// The port masctl's own admin calls use (never published, not behind the edge),
/// and its listener's tag, which names its access logger.
pub const ADMIN_PORT: u16 = 8009;
const ADMIN_TAG: &str = "masctl-admin";

/// Two loggers stay at WARNING whatever the level, because at INFO they write
/// secrets: `synapse.handlers.auth` logs the credentials a registration completed
/// with (a registration token among them), and the admin listener's access log
/// the URL of a token's revocation, which holds the token.
fn log_config(level: &str) -> Value {
    let quiet = json!({"level": "WARNING"});
    json!({
        "version": 1,
        "formatters": {"plain": {"format": "%(levelname)s %(name)s %(request)s %(message)s"}},
        "filters": {"context": {"()": "synapse.logging.context.LoggingContextFilter", "request": ""}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["context"], "stream": "ext://sys.stdout"}},
        "loggers": {
            "synapse.storage.SQL": {"level": "INFO"},
            "synapse.handlers.auth": quiet,
            format!("synapse.access.http.{ADMIN_TAG}"): quiet,
        },
        "root": {"level": level, "handlers": ["console"]},
        "disable_existing_loggers": false,
    })
}

pub fn config_entry(c: &Config) -> Result<Entry> {
    let mut e = Entry::new("synapse-config");
    let hs = render(&homeserver(c)?)?;
    let log = render(&log_config(c.synapse.log_level.get_ref()))?;
    e.add("homeserver.yaml", hs);
    e.add("log.yaml", log);
    Ok(e)
}

pub fn spec(inp: &Inputs, config_dir: &str) -> ServiceSpec {
    let c = inp.config;
    let l = inp.layout;
    let instance = c.instance.get_ref();
    let data = l.data_dir(SERVICE).display().to_string();
    let secret = |n: &str| l.secret_bind(n);
    let mut binds = vec![
        Bind::rw(&data, "/data"),
        Bind::ro(config_dir, "/etc/synapse"),
        secret("synapse-pgpass"),
        secret("synapse-macaroon"),
        secret("synapse-form"),
        secret("synapse-registration"),
        secret("synapse-signing.key"),
    ];
    for (host, inside) in registration_mounts(c) {
        binds.push(Bind::ro(l.secret(&host), inside));
    }
    binds.extend((0..c.synapse.oidc_providers.len()).map(|i| secret(&crate::secrets::synapse_oidc_secret(i))));
    let mut cmd = vec!["--config-path".to_string(), "/etc/synapse/homeserver.yaml".into()];
    if c.mas_delegating() {
        binds.push(secret("synapse-mas-secret"));
    } else if c.imported_password_config() {
        // Read after homeserver.yaml: Synapse merges config files section by section.
        binds.push(secret(SYNAPSE_PASSWORD_CONFIG));
        cmd.extend(["--config-path".to_string(), format!("/run/secrets/{SYNAPSE_PASSWORD_CONFIG}")]);
    }
    let health = Health {
        test: [
            "python3",
            "-c",
            "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8008/health', timeout=3)",
        ]
        .map(String::from)
        .to_vec(),
        interval_ms: 1000,
        timeout_ms: 5000,
        retries: 3,
        start_period_ms: 120_000,
        http: None,
    };
    ServiceSpec {
        cmd,
        binds,
        // The edge owns the public ports; Synapse is reached inside the stack.
        ports: vec![],
        data_dirs: vec![DataDir { path: data, uid: UID, mode: 0o750 }],
        extra_networks: appservice_networks(c),
        ..ServiceSpec::base(SERVICE, instance, &inp.images[&SERVICE], health, 30)
    }
}

/// The Docker networks of bridges Synapse reaches there, each once.
fn appservice_networks(c: &Config) -> Vec<String> {
    let mut nets: Vec<String> = Vec::new();
    for n in c.synapse.appservices.iter().filter_map(|a| a.network.as_ref()) {
        if !nets.contains(n.get_ref()) {
            nets.push(n.get_ref().clone());
        }
    }
    nets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appservice::{Loaded, registration};
    use std::path::Path;

    #[test]
    fn qr_login_turns_on_the_rendezvous() {
        // (config, msc4108_enabled, MAS's device-code grant rendered)
        let cases = [
            ("[mas]\nenabled = true\n", Some(true)),
            ("[mas]\nenabled = true\nqr_login = false\n", None),
            ("[mas]\nenabled = true\nmigration_in_progress = true\n", None),
            ("", None),
        ];
        for (extra, want) in cases {
            let c = crate::config::parse(Path::new("m.toml"), &format!("server_name = \"e.com\"\n{extra}")).unwrap();
            let hs = homeserver(&c).unwrap();
            assert_eq!(hs["experimental_features"]["msc4108_enabled"].as_bool(), want, "{extra}");
            if c.mas_enabled() {
                let grant = &super::super::mas::config(&c).unwrap()["oauth"]["device_code_grant_enabled"];
                assert_eq!(grant.as_bool(), want, "{extra}");
            }
        }
    }

    #[test]
    fn loggers_that_write_secrets_stay_at_warning() {
        // (synapse.log_level, root level)
        for (level, root) in [("DEBUG", "DEBUG"), ("INFO", "INFO"), ("WARNING", "WARNING")] {
            let log = log_config(level);
            assert_eq!(log["root"]["level"], root);
            for quiet in ["synapse.handlers.auth", "synapse.access.http.masctl-admin"] {
                assert_eq!(log["loggers"][quiet]["level"], "WARNING", "{quiet} at {level}");
            }
        }
        let c = crate::config::parse(Path::new("m.toml"), "server_name = \"e.com\"\n").unwrap();
        let hs = homeserver(&c).unwrap();
        let admin = hs["listeners"].as_array().unwrap().iter().find(|l| l["tag"] == ADMIN_TAG).unwrap();
        assert_eq!((admin["port"].as_u64(), admin["x_forwarded"].as_bool()), (Some(ADMIN_PORT.into()), None));
    }

    #[test]
    fn appservices_render_into_homeserver_yaml_and_mounts() {
        let text = "server_name = \"e.com\"\n[[synapse.appservices]]\npath = \"/b/tg.yaml\"\nnetwork = \"bridges\"\n\
[[synapse.appservices]]\npath = \"/b/wa.yaml\"\nnetwork = \"bridges\"\n\
[synapse]\nencrypted_bridges = true\n[synapse.double_puppet]\nenabled = true\n\
[synapse.extra.experimental_features]\nmsc3266_enabled = true\n";
        let mut c = crate::config::parse(Path::new("m.toml"), text).unwrap();
        for id in ["tg", "wa"] {
            let body = format!(
                "id: {id}\nurl: null\nas_token: A{id}\nhs_token: H{id}\nsender_localpart: {id}bot\nnamespaces: {{}}\n"
            );
            let reg = registration::parse(&body).unwrap();
            c.registrations.push(Loaded::new(format!("/b/{id}.yaml").into(), body, reg));
        }
        let hs = homeserver(&c).unwrap();
        let files = hs["app_service_config_files"].as_array().unwrap();
        assert_eq!(files.len(), 3, "{files:?}");
        assert!(files[0].as_str().unwrap().starts_with("/run/secrets/appservices/tg."));
        assert_eq!(files[2], "/run/secrets/appservices/double-puppet.yaml");
        let xf = &hs["experimental_features"];
        assert_eq!(
            (xf["msc3202_transaction_extensions"].as_bool(), xf["msc3266_enabled"].as_bool()),
            (Some(true), Some(true))
        );
        assert_eq!(xf["msc2409_to_device_messages_enabled"], true);
        assert!(!render(&hs).unwrap().contains("Atg"), "no token in homeserver.yaml");
        // A changed registration is a new file name: Synapse's config changes with it.
        let before = c.registrations[0].file_name();
        c.registrations[0].text.push_str("# edited\n");
        assert_ne!(before, c.registrations[0].file_name());
        assert_eq!(appservice_networks(&c), vec!["bridges".to_string()]);
        let mounts = registration_mounts(&c);
        assert_eq!(mounts.len(), 3);
        assert!(mounts.iter().all(|(host, inside)| inside.ends_with(host.trim_start_matches("appservices/"))));
    }
}
