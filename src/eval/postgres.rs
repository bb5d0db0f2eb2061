//! Postgres: the server container and the idempotent init that creates Synapse's
//! role and database (UTF8, C locale, template0, as Synapse requires).

use super::{Entry, Inputs};
use crate::config::Config;
use crate::service::Service;
use crate::spec::{DataDir, Health, ServiceSpec};

const SERVICE: Service = Service::Postgres;
const UID: u32 = SERVICE.uid();

/// SQL that creates `name`'s role and database once (UTF8, C locale, template0) and
/// sets the role's password from a mounted secret. Runs as the superuser over the
/// local socket after every start; the password is read server-side, so it is never
/// in a command line or a log.
pub fn init_sql(name: &str) -> String {
    format!(
        r#"SELECT 'CREATE ROLE {name} LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}')\gexec
DO $$ BEGIN
  EXECUTE format('ALTER ROLE {name} PASSWORD %L', btrim(pg_read_file('/run/secrets/postgres-{name}'), E' \n'));
END $$;
SELECT 'CREATE DATABASE {name} OWNER {name} ENCODING ''UTF8'' LC_COLLATE ''C'' LC_CTYPE ''C'' TEMPLATE template0'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{name}')\gexec
"#
    )
}

/// The databases the stack needs: Synapse's, and MAS's when it is enabled.
pub fn databases(c: &Config) -> Vec<&'static str> {
    if c.mas_enabled() { vec!["synapse", "mas"] } else { vec!["synapse"] }
}

pub fn config_entry(c: &Config) -> Entry {
    let mut e = Entry::new("postgres-config");
    let sql: String = databases(c).iter().map(|d| init_sql(d)).collect();
    e.add("init.sql", format!("\\set ON_ERROR_STOP on\n{sql}"));
    e
}

pub fn spec(inp: &Inputs, config_dir: &str) -> ServiceSpec {
    let c = inp.config;
    let l = inp.layout;
    let instance = c.instance.get_ref();
    let data = SERVICE.data_dir(l).display().to_string();
    let secret = |n: &str| format!("{}:/run/secrets/{n}:ro", l.secret(n).display());
    let mut binds = vec![
        format!("{data}:/var/lib/postgresql/data"),
        format!("{config_dir}:/etc/masctl:ro"),
        secret("postgres-superuser"),
    ];
    binds.extend(databases(c).iter().map(|d| secret(&format!("postgres-{d}"))));
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
        service: SERVICE.name().into(),
        container: SERVICE.container(instance),
        network: instance.clone(),
        image: inp.images[&SERVICE].clone(),
        user: SERVICE.user(),
        entrypoint: vec![],
        cmd,
        env: vec!["POSTGRES_PASSWORD_FILE=/run/secrets/postgres-superuser".into()],
        binds,
        tmpfs: [
            ("/tmp".to_string(), "rw,nosuid,nodev,size=64m".to_string()),
            ("/run/postgresql".to_string(), format!("rw,nosuid,nodev,uid={UID},gid={UID},mode=2775")),
        ]
        .into(),
        ports: vec![],
        health: Health {
            test: ["pg_isready", "-q", "-h", "/run/postgresql", "-U", "postgres"].map(String::from).to_vec(),
            interval_ms: 1000,
            timeout_ms: 5000,
            retries: 3,
            start_period_ms: 60_000,
            http: None,
        },
        after_healthy: vec![
            ["psql", "-q", "-h", "/run/postgresql", "-U", "postgres", "-d", "postgres", "-f", "/etc/masctl/init.sql"]
                .map(String::from)
                .to_vec(),
        ],
        pre_start: vec![],
        data_dirs: vec![DataDir { path: data, uid: UID, mode: 0o700 }],
        stop_timeout_secs: 60,
        aliases: vec![],
        extra_networks: vec![],
    }
}
