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
    #[serde(default = "default_mas_image")]
    pub mas: Spanned<String>,
    /// The routing proxy in front of Synapse and MAS (used when MAS is enabled).
    #[serde(default = "default_proxy_image")]
    pub proxy: Spanned<String>,
}

fn default_mas_image() -> Spanned<String> {
    s("mas")
}
fn default_proxy_image() -> Spanned<String> {
    s("proxy")
}

fn default_pg_image() -> Spanned<String> {
    s("postgres")
}
fn default_synapse_image() -> Spanned<String> {
    s("synapse")
}

impl Default for Images {
    fn default() -> Self {
        Images {
            postgres: default_pg_image(),
            synapse: default_synapse_image(),
            mas: default_mas_image(),
            proxy: default_proxy_image(),
        }
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
    /// Synapse's `password_config` (with the pepper an imported server hashed its
    /// passwords with) is the secret `secrets/synapse-password-config.yaml`, written
    /// by `masctl import synapse`. Synapse has no file option for the pepper, so the
    /// whole section is a second config file; MAS reads the pepper from a file too.
    #[serde(default)]
    pub imported_password_config: bool,
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
            imported_password_config: false,
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
    /// Run Matrix Authentication Service next to Synapse.
    #[serde(default = "off")]
    pub enabled: Spanned<bool>,
    /// Public hostname of MAS [default: hostnames.matrix].
    pub hostname: Option<Spanned<String>>,
    /// Path MAS is served under on that host [default: /auth].
    #[serde(default = "default_prefix")]
    pub path_prefix: Spanned<String>,
    /// MAS runs, but Synapse keeps its own logins until `masctl syn2mas migrate`
    /// has run; then set this to false and switch.
    #[serde(default = "off")]
    pub migration_in_progress: Spanned<bool>,
    #[serde(default)]
    pub email: Email,
    #[serde(default)]
    pub upstream_oauth2: UpstreamOauth2,
    /// MAS `account` settings (e.g. password_registration_enabled = false).
    #[serde(default)]
    pub account: BTreeMap<String, bool>,
    /// Extra top-level MAS `config.yaml` keys, merged over what masctl renders.
    #[serde(default = "empty_table")]
    pub extra: Spanned<toml::Table>,
}

fn off() -> Spanned<bool> {
    Spanned::new(0..0, false)
}
fn default_prefix() -> Spanned<String> {
    s("/auth")
}

impl Default for Mas {
    fn default() -> Self {
        Mas {
            enabled: off(),
            hostname: None,
            path_prefix: default_prefix(),
            migration_in_progress: off(),
            email: Email::default(),
            upstream_oauth2: UpstreamOauth2::default(),
            account: BTreeMap::new(),
            extra: empty_table(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    /// `none` (mail is dropped) or `smtp`.
    #[serde(default = "default_transport")]
    pub transport: Spanned<String>,
    #[serde(default = "default_from")]
    pub from: String,
    pub hostname: Option<Spanned<String>>,
    pub port: Option<u16>,
    /// `plain`, `starttls` or `tls`.
    pub mode: Option<Spanned<String>>,
    pub username: Option<String>,
    /// A file holding the SMTP password (mounted read-only into MAS).
    pub password_file: Option<Spanned<String>>,
}

fn default_transport() -> Spanned<String> {
    s("none")
}
fn default_from() -> String {
    "\"Authentication Service\" <root@localhost>".into()
}

impl Default for Email {
    fn default() -> Self {
        Email {
            transport: default_transport(),
            from: default_from(),
            hostname: None,
            port: None,
            mode: None,
            username: None,
            password_file: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamOauth2 {
    #[serde(default)]
    pub providers: Vec<Provider>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// A ULID; never change it once users are linked.
    pub id: Spanned<String>,
    /// The provider's id in Synapse (`oidc` or `oidc-<idp_id>`), so migrated SSO users keep their links.
    pub synapse_idp_id: Option<String>,
    pub issuer: String,
    pub client_id: String,
    /// A file holding the client secret (mounted read-only into MAS).
    pub client_secret_file: Option<Spanned<String>>,
    #[serde(default = "default_auth_method")]
    pub token_endpoint_auth_method: String,
    #[serde(default = "default_scope")]
    pub scope: String,
}

fn default_auth_method() -> String {
    "client_secret_basic".into()
}
fn default_scope() -> String {
    "openid profile email".into()
}

impl Config {
    pub fn matrix_hostname(&self) -> String {
        self.hostnames
            .matrix
            .as_ref()
            .map(|h| h.get_ref().clone())
            .unwrap_or_else(|| format!("matrix.{}", self.server_name.get_ref()))
    }

    pub fn mas_enabled(&self) -> bool {
        *self.mas.enabled.get_ref()
    }

    /// MAS is integrated: Synapse delegates authentication and the compatibility
    /// routes go to MAS.
    pub fn mas_delegating(&self) -> bool {
        self.mas_enabled() && !*self.mas.migration_in_progress.get_ref()
    }

    /// The pepper and the rest of `password_config` come from `secrets/` (imported).
    pub fn imported_password_config(&self) -> bool {
        self.synapse.imported_password_config
    }

    pub fn mas_hostname(&self) -> String {
        self.mas.hostname.as_ref().map(|h| h.get_ref().clone()).unwrap_or_else(|| self.matrix_hostname())
    }

    /// `(ip, port)` for the published Synapse listener.
    pub fn synapse_publish(&self) -> (String, u16) {
        super::validate::parse_publish(self.ports.synapse.get_ref()).unwrap_or(("127.0.0.1".into(), 8008))
    }
}
