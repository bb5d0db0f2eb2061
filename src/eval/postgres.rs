//! Postgres: the server container and the idempotent init that creates Synapse's
//! role and database (UTF8, C locale, template0, as Synapse requires).

use super::{Entry, Inputs};
use crate::config::Config;
use crate::secrets::POSTGRES_UID;
use crate::spec::{DataDir, Health, ServiceSpec};

/// Runs as the superuser over the local socket after every start. The password is
/// read server-side from the mounted secret, so it is never in a command or a log.
pub const INIT_SQL: &str = r#"\set ON_ERROR_STOP on
SELECT 'CREATE ROLE synapse LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'synapse')\gexec
DO $$ BEGIN
  EXECUTE format('ALTER ROLE synapse PASSWORD %L', btrim(pg_read_file('/run/secrets/postgres-synapse'), E' \n'));
END $$;
SELECT 'CREATE DATABASE synapse OWNER synapse ENCODING ''UTF8'' LC_COLLATE ''C'' LC_CTYPE ''C'' TEMPLATE template0'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'synapse')\gexec
"#;

pub fn config_entry(_c: &Config) -> Entry {
    let mut e = Entry::new("postgres-config");
    e.add("init.sql", INIT_SQL);
    e
}

pub fn spec(inp: &Inputs, config_dir: &str) -> ServiceSpec {
    let c = inp.config;
    let l = inp.layout;
    let instance = c.instance.get_ref();
    let data = l.data("postgres").display().to_string();
    let secret = |n: &str| format!("{}:/run/secrets/{n}:ro", l.secret(n).display());
    let mut cmd = Vec::new();
    for (k, v) in &c.postgres.settings {
        let v = match v.get_ref() {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        cmd.push("-c".to_string());
        cmd.push(format!("{k}={v}"));
    }
    ServiceSpec {
        service: "postgres".into(),
        container: format!("{instance}-postgres"),
        network: instance.clone(),
        image: inp.images["postgres"].clone(),
        user: format!("{POSTGRES_UID}:{POSTGRES_UID}"),
        cmd,
        env: vec!["POSTGRES_PASSWORD_FILE=/run/secrets/postgres-superuser".into()],
        binds: vec![
            format!("{data}:/var/lib/postgresql/data"),
            format!("{config_dir}:/etc/masctl:ro"),
            secret("postgres-superuser"),
            secret("postgres-synapse"),
        ],
        tmpfs: [
            ("/tmp".to_string(), "rw,nosuid,nodev,size=64m".to_string()),
            ("/run/postgresql".to_string(), format!("rw,nosuid,nodev,uid={POSTGRES_UID},gid={POSTGRES_UID},mode=2775")),
        ]
        .into(),
        ports: vec![],
        health: Health {
            test: ["pg_isready", "-q", "-h", "/run/postgresql", "-U", "postgres"].map(String::from).to_vec(),
            interval_ms: 1000,
            timeout_ms: 5000,
            retries: 3,
            start_period_ms: 60_000,
        },
        after_healthy: vec![
            ["psql", "-q", "-h", "/run/postgresql", "-U", "postgres", "-d", "postgres", "-f", "/etc/masctl/init.sql"]
                .map(String::from)
                .to_vec(),
        ],
        data_dirs: vec![DataDir { path: data, uid: POSTGRES_UID, mode: 0o700 }],
        stop_timeout_secs: 60,
    }
}
