//! The shape of `masctl.toml` and its defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

fn s(v: &str) -> Spanned<String> {
    Spanned::new(0..0, v.to_string())
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Matrix server name: the part after `:` in user IDs.
    pub server_name: Spanned<String>,
    /// Names the containers (`<instance>-synapse`) and the Docker network.
    #[serde(default = "default_instance")]
    pub instance: Spanned<String>,
    /// Where the store, generations, secrets and service data live.
    #[serde(default = "default_state_root")]
    pub state_root: Spanned<String>,
    #[serde(default)]
    pub hostnames: Hostnames,
    #[serde(default)]
    pub images: Images,
    #[serde(default)]
    pub postgres: Postgres,
    #[serde(default)]
    pub synapse: Synapse,
    #[serde(default)]
    pub ports: Ports,
    #[serde(default)]
    pub mas: Mas,
}

fn default_instance() -> Spanned<String> {
    s("masctl")
}
fn default_state_root() -> Spanned<String> {
    s("/var/lib/masctl")
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hostnames {
    /// Public hostname clients use for the homeserver [default: matrix.<server_name>].
    pub matrix: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Images {
    /// A recipe name from the images directory, or `repo[:tag]@sha256:…`.
    #[serde(default = "default_pg_image")]
    pub postgres: Spanned<String>,
    #[serde(default = "default_synapse_image")]
    pub synapse: Spanned<String>,
}

fn default_pg_image() -> Spanned<String> {
    s("postgres")
}
fn default_synapse_image() -> Spanned<String> {
    s("synapse")
}

impl Default for Images {
    fn default() -> Self {
        Images { postgres: default_pg_image(), synapse: default_synapse_image() }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Postgres {
    /// Server settings passed as `-c key=value` (e.g. `shared_buffers = "256MB"`).
    #[serde(default)]
    pub settings: BTreeMap<String, Spanned<toml::Value>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Synapse {
    #[serde(default)]
    pub enable_registration: bool,
    #[serde(default = "default_log_level")]
    pub log_level: Spanned<String>,
    /// Extra top-level `homeserver.yaml` keys, merged over what masctl renders.
    #[serde(default = "empty_table")]
    pub extra: Spanned<toml::Table>,
}

fn empty_table() -> Spanned<toml::Table> {
    Spanned::new(0..0, toml::Table::new())
}

fn default_log_level() -> Spanned<String> {
    s("INFO")
}

impl Default for Synapse {
    fn default() -> Self {
        Synapse {
            enable_registration: false,
            log_level: default_log_level(),
            extra: Spanned::new(0..0, toml::Table::new()),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ports {
    /// Where Synapse's client listener is published on the host: `IP:PORT` or `PORT`.
    #[serde(default = "default_synapse_port")]
    pub synapse: Spanned<String>,
}

fn default_synapse_port() -> Spanned<String> {
    s("127.0.0.1:8008")
}

impl Default for Ports {
    fn default() -> Self {
        Ports { synapse: default_synapse_port() }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Mas {
    /// Matrix Authentication Service (not integrated yet).
    #[serde(default = "off")]
    pub enabled: Spanned<bool>,
}

fn off() -> Spanned<bool> {
    Spanned::new(0..0, false)
}

impl Default for Mas {
    fn default() -> Self {
        Mas { enabled: off() }
    }
}

impl Config {
    pub fn matrix_hostname(&self) -> String {
        self.hostnames
            .matrix
            .as_ref()
            .map(|h| h.get_ref().clone())
            .unwrap_or_else(|| format!("matrix.{}", self.server_name.get_ref()))
    }

    /// `(ip, port)` for the published Synapse listener.
    pub fn synapse_publish(&self) -> (String, u16) {
        super::validate::parse_publish(self.ports.synapse.get_ref()).unwrap_or(("127.0.0.1".into(), 8008))
    }
}
