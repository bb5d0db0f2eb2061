//! What the export reads, already rendered: masctl's `homeserver.yaml` and MAS
//! `config.yaml` as masctl generates them, the secrets' contents by file name,
//! and the few facts of `masctl.toml` the rendered files do not carry.

use std::collections::BTreeMap;

use serde_json::Value;

/// One database on a Postgres server and the role that owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    /// The role's password (a secret: it goes to a Kubernetes Secret only).
    pub password: String,
}

/// Where the chart's Synapse and MAS find their databases.
// Made once per export; boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostgresTarget {
    /// The chart's own Postgres; masctl's dumps are loaded into it.
    Bundled,
    /// The external server masctl already uses; nothing is moved.
    External { synapse: Database, mas: Option<Database> },
}

/// A cert-manager issuer the user names (`--cert-issuer [cluster:]NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issuer {
    Cluster(String),
    Namespaced(String),
}

/// How masctl's edge faces the network, with what the chart needs for each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// `tls = "plain"`: behind the user's own proxy.
    Plain,
    /// `tls = "acme"`: the cluster's cert-manager takes over, through `issuer`.
    Acme { issuer: Option<Issuer>, email: Option<String>, directory: String },
    /// `tls = "files"`: the certificate chain and key (PEM) the user brought.
    Files { certificate: String, key: String },
}

/// The Synapse database's schema as `schema_version` / `schema_compat_version` hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbSchema {
    pub version: u32,
    pub compat_version: Option<u32>,
}

/// One appservice registration Synapse loads, as Synapse got it.
#[derive(Clone, PartialEq, Eq)]
pub struct Appservice {
    pub id: String,
    /// The registration file's text (holds the as_token and hs_token).
    pub text: String,
    /// Where Synapse pushes to it; `None` for a registration without a URL.
    pub url: Option<String>,
    /// The Docker network Synapse joins to reach it (`[[synapse.appservices]] network`).
    pub network: Option<String>,
    /// masctl's built-in double-puppet registration.
    pub builtin: bool,
}

impl std::fmt::Debug for Appservice {
    // No token in test output or logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Appservice({}, {:?}, {:?})", self.id, self.url, self.network)
    }
}

/// One `[[users]]` entry: masctl creates it at a switch; the chart has no such list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredUser {
    pub localpart: String,
    pub admin: bool,
    pub emails: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Input {
    pub release: String,
    pub namespace: String,
    /// `homeserver.yaml` as masctl renders it for the running generation.
    pub homeserver: Value,
    /// Top-level keys the user set in `synapse.extra` (to name dropped ones).
    pub synapse_extra_keys: Vec<String>,
    /// Extra Synapse config files that are secrets (the imported
    /// `password_config`), by name, as their YAML text.
    pub synapse_secret_files: Vec<(String, String)>,
    /// MAS `config.yaml` as masctl renders it; `None` when MAS is off.
    pub mas_config: Option<Value>,
    pub mas_extra_keys: Vec<String>,
    /// MAS runs but syn2mas has not migrated the users yet.
    pub mas_migration_in_progress: bool,
    pub matrix_host: String,
    /// The host MAS answers on in the cluster (`--mas-host`); `None`: keep masctl's
    /// when it is MAS's own, else `auth.<server_name>`.
    pub mas_host: Option<String>,
    pub tls: Tls,
    /// masctl worker kind name → count (only kinds that run).
    pub workers: Vec<(String, u32)>,
    /// Worker kinds with their own settings (`synapse.workers.extra.<kind>`).
    pub worker_extra_kinds: Vec<String>,
    pub log_level: String,
    pub postgres: PostgresTarget,
    /// Secret file name (as under masctl's `secrets/`) → content.
    pub secrets: BTreeMap<String, String>,
    /// The running Synapse database's schema, when it could be read.
    pub synapse_schema: Option<DbSchema>,
    /// The Synapse release masctl runs (for messages).
    pub synapse_version: String,
    /// The registrations Synapse loads, in its order (the double puppet last).
    pub appservices: Vec<Appservice>,
    pub declared_users: Vec<DeclaredUser>,
}

impl Input {
    pub fn server_name(&self) -> &str {
        self.homeserver.get("server_name").and_then(Value::as_str).unwrap_or_default()
    }

    /// A secret's content without its trailing newline.
    pub fn secret(&self, name: &str) -> Option<&str> {
        self.secrets.get(name).map(|s| s.trim_end_matches('\n'))
    }

    /// The host MAS is served on by the chart, and whether that differs from
    /// masctl's public base (then clients see a new issuer).
    pub fn chart_mas_host(&self) -> String {
        if let Some(h) = &self.mas_host {
            return h.clone();
        }
        match self.masctl_mas_base() {
            Some((host, path)) if path == "/" && host != self.matrix_host => host,
            _ => format!("auth.{}", self.server_name()),
        }
    }

    /// masctl's MAS `public_base` split into host and path.
    pub fn masctl_mas_base(&self) -> Option<(String, String)> {
        let base = self.mas_config.as_ref()?.pointer("/http/public_base")?.as_str()?;
        let rest = base.strip_prefix("https://").or_else(|| base.strip_prefix("http://"))?;
        let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
        Some((host.to_string(), format!("/{path}")))
    }
}
