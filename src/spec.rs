//! A service's container, as `masctl supervise` runs it: written by evaluation into
//! the store, read by the unit's main process. Everything a restart depends on is in
//! here, so its hash is what the unit embeds.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

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
    /// `host:container[:ro]` bind mounts.
    pub binds: Vec<String>,
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
