//! Test inputs shaped like masctl's rendered configs: (a) the default stack,
//! (b) MAS with workers, an upstream provider and SMTP, (c) an external Postgres.

use std::collections::BTreeMap;

use serde_json::json;

use super::input::{Appservice, Database, DbSchema, DeclaredUser, Input, Issuer, PostgresTarget, Tls};

fn secrets(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), format!("{v}\n"))).collect()
}

const BASE_SECRETS: [(&str, &str); 7] = [
    ("synapse-signing.key", "ed25519 a_abcd c2VlZA"),
    ("synapse-macaroon", "mac-1"),
    ("synapse-registration", "reg-1"),
    ("synapse-form", "form-1"),
    ("postgres-superuser", "super-1"),
    ("postgres-synapse", "pgsyn-1"),
    ("postgres-mas", "pgmas-1"),
];

pub fn default_stack() -> Input {
    let mut s = secrets(&BASE_SECRETS);
    s.extend(secrets(&[("mas-smtp-password", "smtp-1"), ("mas-provider-0", "prov-1")]));
    Input {
        release: "ess".into(),
        namespace: "ess".into(),
        homeserver: json!({
            "server_name": "example.org", "public_baseurl": "https://matrix.example.org/",
            "report_stats": false, "enable_registration": false,
            "listeners": [{"port": 8008}], "database": {"name": "psycopg2", "args": {}},
            "log_config": "/etc/synapse/log.yaml", "media_store_path": "/data/media",
            "signing_key_path": "/run/secrets/synapse-signing.key",
            "macaroon_secret_key_path": "/run/secrets/synapse-macaroon",
            "form_secret_path": "/run/secrets/synapse-form",
            "registration_shared_secret_path": "/run/secrets/synapse-registration",
            "suppress_key_server_warning": true,
        }),
        synapse_extra_keys: vec![],
        synapse_secret_files: vec![],
        mas_config: None,
        mas_extra_keys: vec![],
        mas_migration_in_progress: false,
        matrix_host: "matrix.example.org".into(),
        mas_host: None,
        tls: Tls::Plain,
        workers: vec![],
        worker_extra_kinds: vec![],
        log_level: "INFO".into(),
        postgres: PostgresTarget::Bundled,
        secrets: s,
        synapse_schema: Some(DbSchema { version: 92, compat_version: Some(84) }),
        synapse_version: "1.163.2".into(),
        appservices: vec![],
        declared_users: vec![],
    }
}

pub const RSA_PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMAA=\n-----END RSA PRIVATE KEY-----\n";

pub fn mas_workers_provider_smtp() -> Input {
    let mut i = default_stack();
    i.secrets.extend(secrets(&[
        ("mas-encryption", "enc-1"),
        ("mas-synapse-secret", "shared-1"),
        ("mas-admin-client", "admin-1"),
    ]));
    i.secrets.insert("mas-signing-rsa.pem".into(), RSA_PEM.into());
    let hs = i.homeserver.as_object_mut().unwrap();
    hs.insert("max_upload_size".into(), json!("100M"));
    hs.insert("instance_map".into(), json!({"main": {"host": "masctl-synapse", "port": 9093}}));
    hs.insert("matrix_authentication_service".into(), json!({"enabled": true}));
    hs.insert("worker_replication_secret_path".into(), json!("/run/secrets/synapse-replication"));
    hs.insert("listeners".into(), json!([{"port": 1}]));
    i.synapse_extra_keys = vec!["max_upload_size".into(), "listeners".into()];
    i.workers = vec![("synchrotron".into(), 2), ("generic".into(), 1), ("background".into(), 1)];
    i.worker_extra_kinds = vec!["federation-sender".into()];
    i.tls = Tls::Acme {
        issuer: Some(Issuer::Cluster("letsencrypt".into())),
        email: None,
        directory: "https://acme".into(),
    };
    i.mas_config = Some(json!({
        "http": {"public_base": "https://matrix.example.org/auth/"},
        "database": {}, "matrix": {}, "templates": {}, "policy": {}, "clients": [],
        "secrets": {"encryption_file": "/run/secrets/mas-encryption",
                    "keys": [{"key_file": "/run/secrets/mas-signing-rsa.pem"}]},
        "passwords": {"enabled": true, "schemes": [{"version": 1, "algorithm": "bcrypt"}]},
        "email": {"transport": "smtp", "hostname": "smtp.example.org", "username": "u",
                  "password_file": "/run/secrets/mas-smtp-password"},
        "upstream_oauth2": {"providers": [{"id": "01H", "issuer": "https://idp", "client_id": "c",
                             "client_secret_file": "/run/secrets/mas-provider-0"}]},
    }));
    i
}

/// A bridge's registration as its generator writes it (YAML), tokens inline.
pub const BRIDGE_REGISTRATION: &str = "id: telegram\nurl: http://mautrix-telegram:29317\n\
as_token: bridge-as-1\nhs_token: bridge-hs-1\nsender_localpart: telegrambot\n\
namespaces:\n  users:\n  - exclusive: true\n    regex: '@telegram_.*:example\\.org$'\n";

/// (b) with two bridges (one on its Docker network, one on the host's bridge),
/// the double puppet, encrypted bridges and declared users.
pub fn bridges() -> Input {
    let mut i = mas_workers_provider_smtp();
    let dp = r#"{"id": "double-puppet", "url": null, "as_token": "dp-as-1", "hs_token": "dp-hs-1"}"#;
    let reg = |id: &str, text: &str, url: Option<&str>, network: Option<&str>, builtin| Appservice {
        id: id.into(),
        text: text.into(),
        url: url.map(Into::into),
        network: network.map(Into::into),
        builtin,
    };
    i.appservices = vec![
        reg("telegram", BRIDGE_REGISTRATION, Some("http://mautrix-telegram:29317"), Some("bridges"), false),
        reg("hooks", "id: hooks\nas_token: hk-as-1\n", Some("http://172.17.0.1:9000"), None, false),
        reg("double-puppet", dp, None, None, true),
    ];
    i.secrets.extend(secrets(&[("double-puppet-as-token", "dp-as-1"), ("double-puppet-hs-token", "dp-hs-1")]));
    let hs = i.homeserver.as_object_mut().unwrap();
    hs.insert(
        "app_service_config_files".into(),
        json!(["/run/secrets/appservices/telegram.0123456789ab.yaml", "/run/secrets/appservices/double-puppet.yaml"]),
    );
    hs.insert(
        "experimental_features".into(),
        json!({"msc3202_transaction_extensions": true, "msc2409_to_device_messages_enabled": true}),
    );
    i.declared_users = vec![
        DeclaredUser { localpart: "alice".into(), admin: true, emails: vec!["alice@example.org".into()] },
        DeclaredUser { localpart: "bot".into(), admin: false, emails: vec![] },
    ];
    i
}

pub fn external_postgres() -> Input {
    let mut i = default_stack();
    let db = |d: &str, u: &str, p: &str| Database {
        host: "db.internal".into(),
        port: 5432,
        database: d.into(),
        user: u.into(),
        password: p.into(),
    };
    i.postgres = PostgresTarget::External { synapse: db("syn", "syn_u", "ext-syn-1"), mas: None };
    i.tls = Tls::Files { certificate: "CERT".into(), key: "KEY".into() };
    i
}
