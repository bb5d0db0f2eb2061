//! Matrix Authentication Service: its `config.yaml` (JSON, which YAML reads) and
//! container. Secrets are files; Synapse's pre-MAS config rides along for syn2mas.

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::synapse;
use super::yaml::render;
use super::{Entry, Inputs};
use crate::config::Config;
use crate::secrets::{MAS_PEPPER, MAS_SMTP_PASSWORD};
use crate::service::Service;
use crate::spec::{Bind, Health, HttpProbe, ServiceSpec};

const SERVICE: Service = Service::Mas;

pub const CONFIG_IN_CONTAINER: &str = "/etc/mas/config.yaml";
/// Where every MAS image masctl runs keeps its share files (the upstream image's
/// own default; `mas-local` copies a release's `share/` here). Named explicitly in
/// the config, because each kind of mas-cli build has other defaults.
pub const SHARE: &str = "/usr/local/share/mas-cli";
/// MAS's internal listener: health, and the admin API with its token endpoint —
/// on the instance's network only, never published or proxied.
pub const INTERNAL_PORT: u16 = 8081;
/// masctl's own OAuth client in MAS, for the admin API. The ID is not secret (its
/// secret is, in `secrets/`); a constant keeps evaluation pure.
pub const ADMIN_CLIENT_ID: &str = "01KMASCT1ADM1NC11ENT000000";
/// The admin client's secret, as MAS reads it.
pub const ADMIN_CLIENT_SECRET: &str = "mas-admin-client";
/// Where the compatibility endpoints listen (without the path prefix).
pub const COMPAT_PORT: u16 = 8082;

fn email(c: &Config) -> Value {
    let e = &c.mas.email;
    match e.transport.get_ref().as_str() {
        "smtp" => {
            let mut v = json!({
                "from": e.from, "reply_to": e.from, "transport": "smtp",
                "mode": e.mode.as_ref().map_or("starttls".to_string(), |m| m.get_ref().clone()),
                "hostname": e.hostname.as_ref().map(|h| h.get_ref().clone()),
            });
            if let Some(port) = e.port {
                v["port"] = json!(port);
            }
            if let Some(u) = &e.username {
                v["username"] = json!(u);
                v["password_file"] = json!(format!("/run/secrets/{MAS_SMTP_PASSWORD}"));
            }
            v
        }
        _ => json!({"from": e.from, "reply_to": e.from, "transport": "blackhole"}),
    }
}

/// MAS `passwords`: version 1 is bcrypt with Synapse's pepper, so migrated hashes
/// keep working; new passwords use argon2id (the highest version).
fn passwords(c: &Config) -> Value {
    let pepper = c
        .synapse
        .extra
        .get_ref()
        .get("password_config")
        .and_then(|p| p.get("pepper"))
        .and_then(|p| p.as_str())
        .map(String::from);
    let mut v1 = json!({"version": 1, "algorithm": "bcrypt", "unicode_normalization": true});
    if c.imported_password_config() {
        v1["secret_file"] = json!(format!("/run/secrets/{MAS_PEPPER}"));
    } else if let Some(p) = pepper {
        v1["secret"] = json!(p);
    }
    json!({"enabled": true, "schemes": [v1, {"version": 2, "algorithm": "argon2id"}]})
}

/// MAS's listeners: the web one under the path prefix, the compatibility layer
/// Synapse's login routes reach, and the internal one (health, admin API).
fn http(c: &Config) -> Value {
    let prefix = c.mas.path_prefix.get_ref();
    json!({
        "public_base": format!("https://{}{prefix}/", c.mas_hostname()),
        "listeners": [
            {"name": "web", "prefix": prefix, "binds": [{"address": "[::]:8080"}],
             "resources": [{"name": "discovery"}, {"name": "human"}, {"name": "oauth"}, {"name": "graphql"},
                           {"name": "assets", "path": format!("{SHARE}/assets/")}]},
            {"name": "compat", "binds": [{"address": format!("[::]:{COMPAT_PORT}")}], "resources": [{"name": "compat"}]},
            {"name": "internal", "binds": [{"host": "0.0.0.0", "port": INTERNAL_PORT}],
             "resources": [{"name": "health"}, {"name": "oauth"}, {"name": "adminapi"}]},
        ],
    })
}

/// The upstream OAuth2 providers, each client secret read from a file of its own.
fn providers(c: &Config) -> Vec<Value> {
    c.mas
        .upstream_oauth2
        .providers
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut v = json!({
                "id": p.id.get_ref(), "issuer": p.issuer, "client_id": p.client_id,
                "token_endpoint_auth_method": p.token_endpoint_auth_method, "scope": p.scope,
            });
            if let Some(idp) = &p.synapse_idp_id {
                v["synapse_idp_id"] = json!(idp);
            }
            if p.client_secret_file.is_some() {
                v["client_secret_file"] = json!(format!("/run/secrets/{}", crate::secrets::mas_provider_secret(i)));
            }
            if let Some(name) = &p.human_name {
                v["human_name"] = json!(name);
            }
            if !p.claims_imports.is_empty() {
                v["claims_imports"] = claims_imports(&p.claims_imports);
            }
            v
        })
        .collect()
}

/// `claims_imports` as MAS reads it: only the attributes the config sets.
fn claims_imports(ci: &crate::config::ClaimsImports) -> Value {
    let mut out = serde_json::Map::new();
    for (name, import) in [("localpart", &ci.localpart), ("displayname", &ci.displayname), ("email", &ci.email)] {
        if let Some(import) = import {
            let mut v = json!({"action": import.action.get_ref()});
            if let Some(t) = &import.template {
                v["template"] = json!(t);
            }
            out.insert(name.into(), v);
        }
    }
    Value::Object(out)
}

pub fn config(c: &Config) -> Result<Value> {
    let instance = c.instance.get_ref();
    let db = super::postgres::conn(c, crate::service::Database::Mas);
    let mut cfg = json!({
        "http": http(c),
        "templates": {
            "path": format!("{SHARE}/templates/"),
            "translations_path": format!("{SHARE}/translations/"),
            "assets_manifest": format!("{SHARE}/manifest.json"),
        },
        "policy": {
            "wasm_module": format!("{SHARE}/policy.wasm"),
            // MAS's policy grants the admin scope only to the clients listed here.
            "data": {"admin_clients": [ADMIN_CLIENT_ID]},
        },
        "clients": [{
            "client_id": ADMIN_CLIENT_ID,
            "client_auth_method": "client_secret_basic",
            "client_secret_file": format!("/run/secrets/{ADMIN_CLIENT_SECRET}"),
        }],
        "database": {
            "host": db.host, "port": db.port, "username": db.user,
            "password_file": "/run/secrets/mas-db-password", "database": db.database,
        },
        "secrets": {
            "encryption_file": "/run/secrets/mas-encryption",
            "keys": [{"key_file": "/run/secrets/mas-signing-rsa.pem"}],
        },
        "matrix": {
            "kind": "synapse",
            "homeserver": c.server_name.get_ref(),
            "secret_file": "/run/secrets/mas-synapse-secret",
            // Through the routing proxy, like clients: MAS's own checks (doctor's
            // login probe) then see the compatibility routes as clients do.
            "endpoint": format!("http://{instance}-proxy:8080/"),
        },
        "passwords": passwords(c),
        "email": email(c),
        "upstream_oauth2": {"providers": providers(c)},
    });
    if !c.mas.account.is_empty() {
        cfg["account"] = serde_json::to_value(&c.mas.account)?;
    }
    if c.qr_login() {
        // A QR-code login ends in the device-code grant (MSC4108).
        cfg["oauth"] = json!({"device_code_grant_enabled": true});
    }
    let extra = serde_json::to_value(c.mas.extra.get_ref()).context("mas.extra")?;
    if let (Some(obj), Value::Object(extra)) = (cfg.as_object_mut(), extra) {
        for (k, v) in extra {
            obj.insert(k, v);
        }
    }
    Ok(cfg)
}

pub fn config_entry(c: &Config) -> Result<Entry> {
    let mut e = Entry::new("mas-config");
    e.add("config.yaml", render(&config(c)?)?);
    // What syn2mas reads: Synapse's config from before MAS took over logins —
    // without the appservice registrations. syn2mas has no use for them, and their
    // file names change with their content: a bridge's edited registration would
    // change MAS's config entry and restart MAS.
    let mut pre_mas = synapse::homeserver_pre_mas(c)?;
    if let Some(o) = pre_mas.as_object_mut() {
        o.remove("app_service_config_files");
    }
    e.add("synapse-pre-mas.yaml", render(&pre_mas)?);
    Ok(e)
}

/// The `-c config.yaml` every mas-cli invocation masctl makes starts with.
pub fn cli(args: &[&str]) -> Vec<String> {
    ["-c", CONFIG_IN_CONTAINER].iter().chain(args).map(|s| s.to_string()).collect()
}

pub fn secret_binds(inp: &Inputs) -> Vec<Bind> {
    let l = inp.layout;
    let c = inp.config;
    let mut binds: Vec<Bind> =
        ["mas-db-password", "mas-encryption", "mas-synapse-secret", "mas-signing-rsa.pem", ADMIN_CLIENT_SECRET]
            .iter()
            .map(|n| l.secret_bind(n))
            .collect();
    if c.imported_password_config() {
        binds.push(l.secret_bind(MAS_PEPPER));
    }
    if c.mas.email.transport.get_ref() == "smtp" && c.mas.email.password_file.is_some() {
        binds.push(l.secret_bind(MAS_SMTP_PASSWORD));
    }
    for (i, p) in c.mas.upstream_oauth2.providers.iter().enumerate() {
        if p.client_secret_file.is_some() {
            binds.push(l.secret_bind(&crate::secrets::mas_provider_secret(i)));
        }
    }
    binds
}

pub fn spec(inp: &Inputs, config_dir: &str) -> ServiceSpec {
    let c = inp.config;
    let instance = c.instance.get_ref();
    let mut binds = vec![Bind::ro(config_dir, "/etc/mas")];
    binds.extend(secret_binds(inp));
    let health = Health {
        test: vec![],
        http: Some(HttpProbe { port: INTERNAL_PORT, path: "/health".into() }),
        interval_ms: 500,
        timeout_ms: 3000,
        retries: 3,
        start_period_ms: 120_000,
    };
    ServiceSpec {
        // Migrations run first, in their own container (as ESS does).
        cmd: cli(&["server", "--no-migrate"]),
        binds,
        pre_start: vec![cli(&["database", "migrate"])],
        ..ServiceSpec::base(SERVICE, instance, &inp.images[&SERVICE], health, 30)
    }
}
