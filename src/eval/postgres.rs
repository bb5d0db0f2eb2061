//! Postgres: the server container and the idempotent init that creates Synapse's
//! role and database (UTF8, C locale, template0, as Synapse requires).

use std::path::PathBuf;

use super::{Entry, Inputs};
use crate::config::Config;
use crate::generation::layout::Layout;
use crate::service::{Database, Service};
use crate::spec::{Bind, DataDir, Health, ServiceSpec};

const SERVICE: Service = Service::Postgres;
const UID: u32 = SERVICE.uid();

/// SQL that creates `name`'s role and database once (UTF8, C locale, template0) and
/// sets the role's password from a mounted secret. Runs as the superuser over the
/// local socket after every start; the password is read server-side, so it is never
/// in a command line or a log.
pub fn init_sql(db: Database) -> String {
    let name = db.name();
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

/// The Postgres major version masctl deployed before clusters were kept per major:
/// its cluster stays where it always was.
pub const FIRST_MAJOR: u32 = 15;

/// Where the cluster of a Postgres major version lives: `data/postgres` for 15 (as
/// before), `data/postgres-N` for any other, so a generation of one major never
/// sees another's cluster and rolling back finds its own untouched.
pub fn cluster_dir(layout: &Layout, major: u32) -> PathBuf {
    if major == FIRST_MAJOR { layout.data_dir(SERVICE) } else { layout.data(&format!("postgres-{major}")) }
}

/// The Postgres major version an image runs, from its environment: `PG_MAJOR` (as
/// the Docker library's images set it), else the Debian binary directory on `PATH`
/// (`/usr/lib/postgresql/N/bin`, as masctl's recipes set it).
pub fn major_from_env(env: &[String]) -> Option<u32> {
    let var = |k: &str| env.iter().find_map(|e| e.strip_prefix(k)?.strip_prefix('='));
    if let Some(m) = var("PG_MAJOR") {
        return m.trim().parse().ok();
    }
    var("PATH")?.split(':').find_map(|dir| dir.strip_prefix("/usr/lib/postgresql/")?.strip_suffix("/bin")?.parse().ok())
}

/// The databases the stack needs: Synapse's, and MAS's when it is enabled.
pub fn databases(c: &Config) -> Vec<Database> {
    if c.mas_enabled() { vec![Database::Synapse, Database::Mas] } else { vec![Database::Synapse] }
}

pub fn config_entry(c: &Config) -> Entry {
    let mut e = Entry::new("postgres-config");
    let sql: String = databases(c).into_iter().map(init_sql).collect();
    e.add("init.sql", format!("\\set ON_ERROR_STOP on\n{sql}"));
    e
}

pub fn spec(inp: &Inputs, config_dir: &str) -> ServiceSpec {
    let c = inp.config;
    let l = inp.layout;
    let instance = c.instance.get_ref();
    let data = cluster_dir(l, inp.pg_major).display().to_string();
    let mut binds = vec![
        Bind::rw(&data, "/var/lib/postgresql/data"),
        Bind::ro(config_dir, "/etc/masctl"),
        l.secret_bind("postgres-superuser"),
    ];
    binds.extend(databases(c).iter().map(|d| l.secret_bind(&format!("postgres-{d}"))));
    let mut cmd = Vec::new();
    for (k, v) in &c.postgres.settings {
        let v = match v.get_ref() {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        cmd.push("-c".to_string());
        cmd.push(format!("{k}={v}"));
    }
    let health = Health {
        test: ["pg_isready", "-q", "-h", "/run/postgresql", "-U", "postgres"].map(String::from).to_vec(),
        interval_ms: 1000,
        timeout_ms: 5000,
        retries: 3,
        start_period_ms: 60_000,
        http: None,
    };
    ServiceSpec {
        cmd,
        env: vec!["POSTGRES_PASSWORD_FILE=/run/secrets/postgres-superuser".into()],
        binds,
        tmpfs: [
            ("/tmp".to_string(), "rw,nosuid,nodev,size=64m".to_string()),
            ("/run/postgresql".to_string(), format!("rw,nosuid,nodev,uid={UID},gid={UID},mode=2775")),
        ]
        .into(),
        after_healthy: vec![
            ["psql", "-q", "-h", "/run/postgresql", "-U", "postgres", "-d", "postgres", "-f", "/etc/masctl/init.sql"]
                .map(String::from)
                .to_vec(),
        ],
        data_dirs: vec![DataDir { path: data, uid: UID, mode: 0o700 }],
        ..ServiceSpec::base(SERVICE, instance, &inp.images[&SERVICE], health, 60)
    }
}

/// Where a service reaches one of the stack's databases (`synapse`, `mas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
}

/// The bundled server's container, or the external server with the database and
/// role its administrator made.
pub fn conn(c: &Config, db: Database) -> Conn {
    let ext = c.postgres_external();
    let login = ext.and_then(|e| if db == Database::Mas { e.mas.as_ref() } else { Some(&e.synapse) });
    match (ext, login) {
        (Some(e), Some(l)) => Conn {
            host: e.host.get_ref().clone(),
            port: *e.port.get_ref(),
            database: l.get_ref().database.get_ref().clone(),
            user: l.get_ref().user.get_ref().clone(),
        },
        _ => Conn {
            host: SERVICE.container(c.instance.get_ref()),
            port: 5432,
            database: db.name().into(),
            user: db.name().into(),
        },
    }
}

/// The external server as the manifest records it for jobs.
pub fn external(c: &Config) -> Option<crate::generation::manifest::ExternalPostgres> {
    let e = c.postgres_external()?;
    let databases = databases(c)
        .into_iter()
        .map(|db| {
            let Conn { database, user, .. } = conn(c, db);
            (db, crate::generation::manifest::DbLogin { database, user })
        })
        .collect();
    Some(crate::generation::manifest::ExternalPostgres {
        host: e.host.get_ref().clone(),
        port: *e.port.get_ref(),
        network: e.network.as_ref().map(|n| n.get_ref().clone()),
        databases,
    })
}

/// What a database client (Synapse, MAS) needs of an external server: the
/// credentials derived from its password files in place of the bundled server's
/// (same paths inside, so the rendered configs do not change with them), and its
/// network.
pub fn adapt_client(c: &Config, layout: &crate::generation::layout::Layout, spec: &mut ServiceSpec) {
    let Some(e) = c.postgres_external() else { return };
    for (inside, derived) in crate::secrets::EXTERNAL_CLIENT_SECRETS {
        let secret = Bind::secret("", inside);
        for b in spec.binds.iter_mut().filter(|b| (&b.inside, b.read_only) == (&secret.inside, true)) {
            b.host = layout.secret(derived);
        }
    }
    if let Some(n) = &e.network {
        spec.extra_networks.push(n.get_ref().clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_from_env_table() {
        let cases: [(&[&str], Option<u32>); 6] = [
            (&["PATH=/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/bin", "PGDATA=/d"], Some(15)),
            (&["PATH=/usr/local/bin:/usr/lib/postgresql/17/bin"], Some(17)),
            (&["PG_MAJOR=16", "PATH=/usr/lib/postgresql/16/bin:/usr/bin"], Some(16)),
            (&["PG_MAJOR=17", "PATH=/usr/lib/postgresql/15/bin"], Some(17)),
            (&["PATH=/usr/local/bin:/usr/bin"], None),
            (&[], None),
        ];
        for (env, want) in cases {
            let env: Vec<String> = env.iter().map(|s| s.to_string()).collect();
            assert_eq!(major_from_env(&env), want, "{env:?}");
        }
    }

    #[test]
    fn clusters_live_by_major() {
        let l = Layout::new("/r");
        let cases = [(15, "/r/data/postgres"), (17, "/r/data/postgres-17"), (16, "/r/data/postgres-16")];
        for (major, want) in cases {
            assert_eq!(cluster_dir(&l, major), PathBuf::from(want), "{major}");
        }
    }
}
