//! A service's container, as `masctl supervise` runs it: written by evaluation into
//! the store, read by the unit's main process. Everything a restart depends on is in
//! here, so its hash is what the unit embeds.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::service::Service;

/// Reads the spec of a service from its store entry.
pub fn read_spec(entry: &str) -> Result<ServiceSpec> {
    let p = Path::new(entry).join("spec.json");
    serde_json::from_slice(&std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?)
        .with_context(|| format!("parsing {}", p.display()))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub service: String,
    pub container: String,
    pub network: String,
    /// `sha256:…` image ID.
    pub image: String,
    pub user: String,
    /// Replaces the image's entrypoint (a Synapse worker runs another module than
    /// the main process). Left out when empty, so other specs keep their bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    pub binds: Vec<Bind>,
    /// container path → tmpfs options.
    #[serde(default)]
    pub tmpfs: BTreeMap<String, String>,
    #[serde(default)]
    pub ports: Vec<Port>,
    pub health: Health,
    /// Commands run in the container once it is healthy, before READY=1.
    #[serde(default)]
    pub after_healthy: Vec<Vec<String>>,
    /// Commands run before the service, each in a one-shot container from the same
    /// image with the same mounts and network (e.g. `mas-cli database migrate`).
    #[serde(default)]
    pub pre_start: Vec<Vec<String>>,
    /// Host directories the service writes to, created with this owner if missing.
    #[serde(default)]
    pub data_dirs: Vec<DataDir>,
    pub stop_timeout_secs: u32,
    /// Names the container also answers to on its networks (Docker network
    /// aliases): the edge answers to the stack's public hostnames. Left out when
    /// empty, so specs without them keep their bytes and hashes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Docker networks the container joins besides `network` (they must exist).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_networks: Vec<String>,
}

impl ServiceSpec {
    /// What every service's spec starts from: its container on the instance's
    /// network, run as its user, a small `/tmp`, and nothing else.
    pub fn base(service: Service, instance: &str, image: &str, health: Health, stop_timeout_secs: u32) -> ServiceSpec {
        ServiceSpec {
            service: service.name().into(),
            container: service.container(instance),
            network: instance.to_string(),
            image: image.to_string(),
            user: service.user(),
            entrypoint: vec![],
            cmd: vec![],
            env: vec![],
            binds: vec![],
            tmpfs: [("/tmp".to_string(), "rw,nosuid,nodev,size=64m".to_string())].into(),
            ports: vec![],
            health,
            after_healthy: vec![],
            pre_start: vec![],
            data_dirs: vec![],
            stop_timeout_secs,
            aliases: vec![],
            extra_networks: vec![],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Docker `CMD` health test (argv, no shell). Empty: probe over HTTP instead,
    /// for images without a shell or client (MAS's is distroless).
    pub test: Vec<String>,
    /// `GET http://<container>:<port><path>` must answer 2xx.
    #[serde(default)]
    pub http: Option<HttpProbe>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
    pub start_period_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataDir {
    pub path: String,
    pub uid: u32,
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    pub port: u16,
    pub path: String,
}

/// Where secrets are mounted inside containers, one file per secret.
pub const SECRETS_IN: &str = "/run/secrets";

/// A bind mount. Serialized as Docker's `host:inside[:ro]`, the bytes specs had
/// when binds were strings, so store hashes do not change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Bind {
    pub host: PathBuf,
    pub inside: String,
    pub read_only: bool,
}

impl Bind {
    pub fn ro(host: impl AsRef<Path>, inside: impl Into<String>) -> Bind {
        Bind { host: host.as_ref().to_path_buf(), inside: inside.into(), read_only: true }
    }
    pub fn rw(host: impl AsRef<Path>, inside: impl Into<String>) -> Bind {
        Bind { read_only: false, ..Bind::ro(host, inside) }
    }
    /// A secret file, read-only at `/run/secrets/<name>`.
    pub fn secret(host: impl AsRef<Path>, name: &str) -> Bind {
        Bind::ro(host, format!("{SECRETS_IN}/{name}"))
    }
    /// The same path on both sides, read-only.
    pub fn same_ro(path: impl AsRef<Path>) -> Bind {
        let p = path.as_ref();
        Bind::ro(p, p.display().to_string())
    }

    /// The same path on both sides, writable.
    pub fn same_rw(path: impl AsRef<Path>) -> Bind {
        let p = path.as_ref();
        Bind::rw(p, p.display().to_string())
    }
}

impl fmt::Display for Bind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}{}", self.host.display(), self.inside, if self.read_only { ":ro" } else { "" })
    }
}

impl From<Bind> for String {
    fn from(b: Bind) -> String {
        b.to_string()
    }
}

impl TryFrom<String> for Bind {
    type Error = String;
    fn try_from(s: String) -> Result<Bind, String> {
        let (rest, read_only) = match s.strip_suffix(":ro") {
            Some(r) => (r, true),
            None => (s.as_str(), false),
        };
        match rest.rsplit_once(':') {
            Some((host, inside)) if !host.is_empty() && inside.starts_with('/') => {
                Ok(Bind { host: host.into(), inside: inside.into(), read_only })
            }
            _ => Err(format!("bind mount {s:?}: expected host:inside[:ro]")),
        }
    }
}

/// The strings Docker takes.
pub fn bind_strings(binds: &[Bind]) -> Vec<String> {
    binds.iter().map(Bind::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_keep_their_strings() {
        let cases = [
            (Bind::ro("/c", "/etc/mas"), "/c:/etc/mas:ro"),
            (Bind::rw("/r/data/synapse", "/data"), "/r/data/synapse:/data"),
            (Bind::secret("/r/secrets/x", "x"), "/r/secrets/x:/run/secrets/x:ro"),
            (Bind::same_ro("/nix/store"), "/nix/store:/nix/store:ro"),
        ];
        for (bind, want) in cases {
            let json = serde_json::to_string(&bind).unwrap();
            assert_eq!(json, format!("\"{want}\""));
            assert_eq!(serde_json::from_str::<Bind>(&json).unwrap(), bind, "{want}");
        }
        for bad in ["", "/a", "/a:rel", ":/b:ro"] {
            assert!(Bind::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }
}
