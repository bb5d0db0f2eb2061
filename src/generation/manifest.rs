//! The generation manifest: what `generations`, `diff`, `status`, `gc` and the jobs
//! read of a generation, and how two of them differ.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::offsite::{RepoUrl, Schedule};
use crate::service::{Database, Service, Unit, Worker};
use crate::unit_name::UnitName;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub server_name: String,
    pub instance: String,
    /// The config as evaluated (for `masctl diff`).
    pub config: serde_json::Value,
    /// service → `sha256:…` image ID.
    pub images: BTreeMap<Service, String>,
    /// service → spec entry path (its main process).
    pub services: BTreeMap<Service, String>,
    /// Synapse worker → spec entry path. Left out when there are none, so
    /// manifests without workers keep their bytes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workers: BTreeMap<Worker, String>,
    /// unit file name → content hash.
    pub units: BTreeMap<UnitName, String>,
    /// Every store path this generation keeps alive (for gc).
    pub refs: Vec<String>,
    /// Where clients reach Synapse on the host.
    pub client_url: String,
    /// The databases Postgres holds for the stack (what a backup dumps).
    #[serde(default)]
    pub databases: Vec<Database>,
    #[serde(default)]
    pub mas: MasState,
    /// Where the databases are when Postgres is not masctl's (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_postgres: Option<ExternalPostgres>,
    /// Scheduled off-host backups (absent without `[backup]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupPlan>,
}

/// `[backup]` as the backup job needs it; no passwords (those are in `secrets/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupPlan {
    /// The restic image's `sha256:…` ID.
    pub image: String,
    pub schedule: Schedule,
    pub keep: Keep,
    pub repositories: Vec<RepoPlan>,
    /// The config file as written (a store path): part of every backup set.
    pub config_file: String,
}

/// Snapshots restic's `forget` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keep {
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

/// One repository: where it is, and the names of its secrets in `secrets/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoPlan {
    /// As written in the config (what `--from` and the output name it by).
    pub name: String,
    pub url: RepoUrl,
    pub password_secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts_secret: Option<String>,
}

/// An external Postgres as jobs reach it; no passwords (those are in `secrets/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalPostgres {
    pub host: String,
    pub port: u16,
    /// The Docker network to join to reach `host`.
    pub network: Option<String>,
    /// Database as masctl names it (`synapse`, `mas`) → where it is on the server.
    pub databases: BTreeMap<Database, DbLogin>,
}

/// A database on an external server and the role that owns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbLogin {
    pub database: String,
    pub user: String,
}

/// How MAS figures in a generation, as jobs need to know it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasState {
    pub enabled: bool,
    /// Synapse delegates authentication to MAS (enabled, migration finished).
    pub delegating: bool,
    pub path_prefix: String,
}

/// `a.b.c` → value, for comparing configs key by key.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// `what key: old -> new` for every key whose value differs between two maps.
fn changed_values<K: Ord + std::fmt::Display>(
    what: &str,
    a: &BTreeMap<K, String>,
    b: &BTreeMap<K, String>,
    out: &mut Vec<String>,
) {
    let keys: BTreeSet<&K> = a.keys().chain(b.keys()).collect();
    for k in keys {
        let (x, y) = (a.get(k), b.get(k));
        if x != y {
            out.push(format!("{what} {k}: {} -> {}", x.map_or("-", |v| v), y.map_or("-", |v| v)));
        }
    }
}

impl Manifest {
    /// Every process of the generation (services' main processes, then Synapse's
    /// workers) with its spec entry path.
    pub fn units(&self) -> Vec<(Unit, &str)> {
        let mains = self.services.iter().map(|(s, p)| (Unit::main(*s), p.as_str()));
        mains.chain(self.workers.iter().map(|(w, p)| (Unit::worker(*w), p.as_str()))).collect()
    }

    /// The unit names of Synapse's processes, the main one first: what must stop
    /// for a job that needs Synapse's database to itself.
    pub fn synapse_units(&self) -> Vec<UnitName> {
        self.units().into_iter().filter(|(u, _)| u.service == Service::Synapse).map(|(u, _)| u.unit_name()).collect()
    }

    /// The process called `name` (`synapse`, `synapse-generic-1`) and its spec path.
    pub fn unit(&self, name: &str) -> Option<(Unit, &str)> {
        let unit: Unit = name.parse().ok()?;
        self.units().into_iter().find(|(u, _)| *u == unit)
    }

    /// Lines describing how `other` differs from this one.
    pub fn diff(&self, other: &Manifest) -> Vec<String> {
        let (a, b) = (self, other);
        let mut out = Vec::new();
        let units: BTreeSet<&UnitName> = a.units.keys().chain(b.units.keys()).collect();
        for u in units {
            match (a.units.get(u), b.units.get(u)) {
                (Some(x), Some(y)) if x != y => out.push(format!("unit changed: {u}")),
                (None, Some(_)) => out.push(format!("unit added: {u}")),
                (Some(_), None) => out.push(format!("unit removed: {u}")),
                _ => {}
            }
        }
        changed_values("image", &a.images, &b.images, &mut out);
        let (mut ca, mut cb) = (BTreeMap::new(), BTreeMap::new());
        flatten("", &a.config, &mut ca);
        flatten("", &b.config, &mut cb);
        changed_values("config", &ca, &cb, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff_manifests(a: &Manifest, b: &Manifest) -> Vec<String> {
        a.diff(b)
    }

    #[test]
    fn diff_lists_units_images_and_config_keys() {
        let m = |unit_hash: &str, img: &str, level: &str| Manifest {
            format: 1,
            server_name: "e.com".into(),
            instance: "masctl".into(),
            config: serde_json::json!({"server_name": "e.com", "synapse": {"log_level": level}}),
            images: [(Service::Synapse, img.to_string())].into(),
            services: BTreeMap::new(),
            workers: BTreeMap::new(),
            units: [(UnitName::service("synapse"), unit_hash.to_string())].into(),
            refs: vec![],
            client_url: String::new(),
            databases: vec![Database::Synapse],
            mas: Default::default(),
            external_postgres: None,
            backup: None,
        };
        assert!(diff_manifests(&m("1", "a", "INFO"), &m("1", "a", "INFO")).is_empty());
        let d = diff_manifests(&m("1", "a", "INFO"), &m("2", "b", "DEBUG"));
        assert_eq!(
            d,
            [
                "unit changed: masctl-synapse.service",
                "image synapse: a -> b",
                "config synapse.log_level: \"INFO\" -> \"DEBUG\"",
            ]
        );
    }
}
