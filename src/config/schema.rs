//! The shape of `masctl.toml` and its defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::service::{Service, Worker, WorkerKind};

fn s(v: &str) -> Spanned<String> {
    Spanned::new(0..0, v.to_string())
}

fn publish(v: &str) -> Spanned<Publish> {
    Spanned::new(0..0, Publish::from(v.to_string()))
}

/// Where a listener is published on the host, `IP:PORT` or `PORT` (then on
/// loopback): parsed once, when the config is read; validation refuses one that
/// does not parse, so after it [`Publish::addr`] is always there. It serializes as
/// written, so generation hashes keep their bytes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(from = "String", into = "String")]
pub struct Publish {
    text: String,
    addr: Option<(String, u16)>,
}

impl Publish {
    /// As written in the config.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// `(ip, port)`; None when it does not parse (validation refuses it).
    pub fn addr(&self) -> Option<(String, u16)> {
        self.addr.clone()
    }
}

impl From<String> for Publish {
    fn from(text: String) -> Publish {
        let addr = super::validate::parse_publish(&text);
        Publish { text, addr }
    }
}

impl From<Publish> for String {
    fn from(p: Publish) -> String {
        p.text
    }
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
    #[serde(default)]
    pub edge: Edge,
    /// Scheduled off-host backups; left out of the evaluated config when absent,
    /// so configs without it evaluate as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<super::Backup>,
    /// `[[users]]`: accounts a switch creates when they are missing. They are not
    /// part of a generation (left out of the evaluated config): users live in the
    /// databases, and a rollback does not remove one.
    #[serde(default, skip_serializing)]
    pub users: Vec<DeclaredUser>,
    /// Where the config was read from, for located errors found after parsing.
    #[serde(skip)]
    pub origin: Origin,
    /// `[[synapse.appservices]]`'s files as read and checked by `config::load`.
    #[serde(skip)]
    pub registrations: Vec<crate::appservice::Loaded>,
}

/// One `[[users]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredUser {
    /// The user ID's localpart (`alice` for `@alice:<server_name>`).
    pub localpart: Spanned<String>,
    /// A Synapse admin (without MAS) or a user who may request admin (with MAS).
    #[serde(default)]
    pub admin: bool,
    /// A 0600 file holding the password, set when the user is created (again only
    /// with `switch --reset-declared-passwords`). None: a bot with no password.
    #[serde(default)]
    pub password_file: Option<Spanned<String>>,
    /// Verified email addresses (with MAS; Synapse's own registration cannot add them).
    #[serde(default)]
    pub emails: Vec<Spanned<String>>,
}

/// A config file's path and text.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub path: std::path::PathBuf,
    pub text: String,
}

impl Config {
    /// `file:line:column: msg` for a value of this config.
    pub fn at(&self, span: std::ops::Range<usize>, msg: impl std::fmt::Display) -> anyhow::Error {
        super::at(&self.origin.path, &self.origin.text, span, msg)
    }
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
    /// The edge in front of Synapse and MAS (Caddy; runs with MAS or with TLS).
    #[serde(default = "default_proxy_image")]
    pub proxy: Spanned<String>,
    /// The replication bus for Synapse's workers [default: the `redis` recipe]
    /// (runs only with workers). Left out of the evaluated config when it is the
    /// default, so configs without workers evaluate as before.
    #[serde(default = "default_redis_image", skip_serializing_if = "is_default_redis")]
    pub redis: Spanned<String>,
    /// The backup engine (restic) [default: the `restic` recipe]; built only with
    /// `[backup]`, and left out of the evaluated config when it is the default.
    #[serde(default = "default_restic_image", skip_serializing_if = "is_default_restic")]
    pub restic: Spanned<String>,
    /// Directories recipes take as inputs, by input name (e.g. `mas-dist` for the
    /// `mas-local` recipe: an unpacked MAS release).
    #[serde(default)]
    pub inputs: BTreeMap<String, Spanned<String>>,
}

fn default_mas_image() -> Spanned<String> {
    s("mas")
}
fn default_proxy_image() -> Spanned<String> {
    s("proxy")
}

fn default_redis_image() -> Spanned<String> {
    s("redis")
}
fn is_default_redis(v: &Spanned<String>) -> bool {
    v.get_ref() == "redis"
}

fn default_restic_image() -> Spanned<String> {
    s("restic")
}
fn is_default_restic(v: &Spanned<String>) -> bool {
    v.get_ref() == "restic"
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
            redis: default_redis_image(),
            restic: default_restic_image(),
            inputs: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Postgres {
    /// Server settings passed as `-c key=value` (e.g. `shared_buffers = "256MB"`).
    #[serde(default)]
    pub settings: BTreeMap<String, Spanned<toml::Value>>,
    /// A Postgres server masctl does not run: Synapse and MAS use it instead of the
    /// bundled one, with databases and roles its administrator made.
    pub external: Option<Spanned<ExternalPostgres>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalPostgres {
    /// Host name or IP address the stack's containers reach the server at.
    pub host: Spanned<String>,
    #[serde(default = "default_pg_port")]
    pub port: Spanned<u16>,
    /// A Docker network (made by you) the stack's containers join to reach `host`.
    pub network: Option<Spanned<String>>,
    pub synapse: Spanned<ExternalDatabase>,
    /// Needed when MAS is enabled.
    pub mas: Option<Spanned<ExternalDatabase>>,
}

fn default_pg_port() -> Spanned<u16> {
    Spanned::new(0..0, 5432)
}

/// One database on an external server and the role that owns it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalDatabase {
    pub database: Spanned<String>,
    pub user: Spanned<String>,
    /// A file (0600) holding the role's password; its content never reaches the
    /// store, a unit, an argv or the environment.
    pub password_file: Spanned<String>,
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
    /// Worker processes next to the main one. Left out of the evaluated config
    /// when off, so configs without workers evaluate as before.
    #[serde(default, skip_serializing_if = "Workers::is_off")]
    pub workers: Workers,
    /// Bridges and bots: their registration files, which Synapse loads. Left out of
    /// the evaluated config when empty (as the next two when off), so configs
    /// without appservices evaluate as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub appservices: Vec<Appservice>,
    /// What encrypted bridges need of Synapse: MSC3202 transaction extensions (device
    /// lists and one-time-key counts) and MSC2409 to-device messages pushed to them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted_bridges: bool,
    /// The built-in double-puppet registration: its as_token lets bridges act as
    /// their local users.
    #[serde(default, skip_serializing_if = "DoublePuppet::is_off")]
    pub double_puppet: DoublePuppet,
    /// Synapse's own single sign-on, as a host has it before MAS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oidc_providers: Vec<SynapseOidc>,
}

/// One bridge's (or bot's) registration file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Appservice {
    /// The registration file the bridge generated (YAML). masctl copies it into
    /// `secrets/` at each switch: its tokens are secrets.
    pub path: Spanned<String>,
    /// A Docker network Synapse joins to reach the bridge at its `url` (the bridge's
    /// own network); without it, the URL must be reachable from the stack's network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DoublePuppet {
    #[serde(default)]
    pub enabled: bool,
}

impl DoublePuppet {
    pub fn is_off(&self) -> bool {
        !self.enabled
    }
}

/// A starting set of workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// No workers: the main process does everything.
    #[default]
    None,
    /// One generic worker (client and federation requests), one each for media,
    /// federation sending, push, and background tasks.
    OneOfEach,
    /// Requests split by kind: two synchrotrons, a client reader, an event
    /// creator, federation reader and inbound, plus the duties of `one-of-each`.
    Specialised,
}

impl Preset {
    pub fn counts(self) -> &'static [(WorkerKind, u32)] {
        use WorkerKind::*;
        match self {
            Preset::None => &[],
            Preset::OneOfEach => {
                &[(Generic, 1), (MediaRepository, 1), (FederationSender, 1), (Pusher, 1), (Background, 1)]
            }
            Preset::Specialised => &[
                (Synchrotron, 2),
                (ClientReader, 1),
                (EventCreator, 1),
                (FederationReader, 1),
                (FederationInbound, 1),
                (MediaRepository, 1),
                (FederationSender, 1),
                (Pusher, 1),
                (Background, 1),
            ],
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Workers {
    /// `none`, `one-of-each` or `specialised`.
    #[serde(default = "no_preset")]
    pub preset: Spanned<Preset>,
    /// Workers per kind, over the preset's (`synchrotron = 2`, `pusher = 0`).
    #[serde(default)]
    pub counts: BTreeMap<WorkerKind, Spanned<u32>>,
    /// Settings only one kind of worker reads, in its own config file (so a
    /// change restarts just those workers), e.g. `[synapse.workers.extra.federation-sender]`.
    #[serde(default)]
    pub extra: BTreeMap<WorkerKind, Spanned<toml::Table>>,
}

fn no_preset() -> Spanned<Preset> {
    Spanned::new(0..0, Preset::None)
}

impl Default for Workers {
    fn default() -> Self {
        Workers { preset: no_preset(), counts: BTreeMap::new(), extra: BTreeMap::new() }
    }
}

impl Workers {
    pub fn is_off(&self) -> bool {
        *self.preset.get_ref() == Preset::None && self.counts.is_empty() && self.extra.is_empty()
    }

    /// How many workers of each kind run: the preset's, overridden by `counts`.
    pub fn count(&self, kind: WorkerKind) -> u32 {
        match self.counts.get(&kind) {
            Some(n) => *n.get_ref(),
            None => self.preset.get_ref().counts().iter().find(|(k, _)| *k == kind).map_or(0, |(_, n)| *n),
        }
    }

    /// Every worker that runs, by kind then number.
    pub fn roster(&self) -> Vec<Worker> {
        WorkerKind::ALL
            .into_iter()
            .flat_map(|kind| (1..=self.count(kind)).map(move |index| Worker { kind, index }))
            .collect()
    }
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
            workers: Workers::default(),
            appservices: Vec::new(),
            encrypted_bridges: false,
            double_puppet: DoublePuppet::default(),
            oidc_providers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ports {
    /// Where Synapse's client listener is published on the host: `IP:PORT` or `PORT`.
    #[serde(default = "default_synapse_port")]
    pub synapse: Spanned<Publish>,
}

fn default_synapse_port() -> Spanned<Publish> {
    publish("127.0.0.1:8008")
}

impl Default for Ports {
    fn default() -> Self {
        Ports { synapse: default_synapse_port() }
    }
}

/// How the edge faces the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain HTTP on `ports.synapse`, behind your own proxy (or `masctl try`).
    Plain,
    /// Certificates from an ACME CA, obtained and renewed by the edge.
    Acme,
    /// A certificate and key you bring.
    Files,
}

pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    /// `plain`, `acme` or `files`.
    #[serde(default = "plain")]
    pub tls: Spanned<TlsMode>,
    /// The ACME account's contact address (expiry notices).
    pub acme_email: Option<Spanned<String>>,
    /// The ACME directory [default: Let's Encrypt's].
    #[serde(default = "default_acme_directory")]
    pub acme_directory: Spanned<String>,
    /// PEM roots the edge trusts for the ACME directory's own HTTPS (a private CA).
    pub acme_directory_ca: Option<Spanned<String>>,
    /// With `tls = "files"`: the certificate chain (PEM) and its private key.
    pub certificate: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    /// PEM roots Synapse's federation client and MAS trust instead of the system's
    /// (a private CA; tests).
    pub trust: Option<Spanned<String>>,
    /// PEM CA files MAS and Synapse trust in addition to their image's public roots
    /// (an identity provider or mail server behind an internal CA).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_ca: Vec<Spanned<String>>,
    /// Where the TLS edge's listeners are published on the host: `IP:PORT` or `PORT`.
    #[serde(default = "default_http")]
    pub http: Spanned<Publish>,
    #[serde(default = "default_https")]
    pub https: Spanned<Publish>,
    #[serde(default = "default_federation")]
    pub federation: Spanned<Publish>,
    /// Serve Synapse's admin API (`/_synapse/admin`) on the public listeners
    /// [default: only with `tls = "plain"`, whose port is loopback by default].
    pub expose_admin: Option<Spanned<bool>>,
    /// Further Docker networks the edge (answering to the stack's hostnames) and
    /// Synapse (for outgoing federation) join.
    #[serde(default)]
    pub networks: Vec<Spanned<String>>,
}

fn plain() -> Spanned<TlsMode> {
    Spanned::new(0..0, TlsMode::Plain)
}
fn default_acme_directory() -> Spanned<String> {
    s(LETS_ENCRYPT)
}
fn default_http() -> Spanned<Publish> {
    publish("0.0.0.0:80")
}
fn default_https() -> Spanned<Publish> {
    publish("0.0.0.0:443")
}
fn default_federation() -> Spanned<Publish> {
    publish("0.0.0.0:8448")
}

impl Default for Edge {
    fn default() -> Self {
        Edge {
            tls: plain(),
            acme_email: None,
            acme_directory: default_acme_directory(),
            acme_directory_ca: None,
            certificate: None,
            key: None,
            trust: None,
            extra_ca: Vec::new(),
            http: default_http(),
            https: default_https(),
            federation: default_federation(),
            expose_admin: None,
            networks: Vec::new(),
        }
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
    /// Sign-in by QR code (MSC4108): Synapse's rendezvous endpoint and MAS's
    /// device-code grant, on as in Element's chart.
    #[serde(default = "on", skip_serializing_if = "is_on")]
    pub qr_login: Spanned<bool>,
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
fn on() -> Spanned<bool> {
    Spanned::new(0..0, true)
}
/// The default left out of the generation's manifest (its hash stays as it was).
fn is_on(b: &Spanned<bool>) -> bool {
    *b.get_ref()
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
            qr_login: on(),
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
    /// The name on MAS's login button ("Continue with …").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human_name: Option<String>,
    /// Which claims become the account's localpart, display name and email.
    #[serde(default, skip_serializing_if = "ClaimsImports::is_empty")]
    pub claims_imports: ClaimsImports,
}

/// MAS's `claims_imports`: for each attribute, what to do with the claim its template renders.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimsImports {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub localpart: Option<ClaimImport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub displayname: Option<ClaimImport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<ClaimImport>,
}

impl ClaimsImports {
    pub fn is_empty(&self) -> bool {
        self == &ClaimsImports::default()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimImport {
    /// `ignore`, `suggest`, `force` or `require`.
    pub action: Spanned<String>,
    /// A Jinja template over the provider's claims, e.g. `{{ user.preferred_username }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// One of Synapse's own `oidc_providers` (before a migration to MAS).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SynapseOidc {
    /// Synapse records its users under `oidc-<idp_id>`: MAS's `synapse_idp_id` must say that.
    pub idp_id: Spanned<String>,
    pub idp_name: Option<String>,
    pub issuer: Spanned<String>,
    pub client_id: String,
    /// A 0600 file holding the client secret; copied into Synapse's own secrets.
    pub client_secret_file: Spanned<String>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default = "default_localpart_template")]
    pub localpart_template: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name_template: Option<String>,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into()]
}
fn default_localpart_template() -> String {
    "{{ user.preferred_username }}".into()
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

    /// The external Postgres, when the config names one.
    pub fn postgres_external(&self) -> Option<&ExternalPostgres> {
        self.postgres.external.as_ref().map(|e| e.get_ref())
    }

    pub fn mas_enabled(&self) -> bool {
        *self.mas.enabled.get_ref()
    }

    /// MAS is integrated: Synapse delegates authentication and the compatibility
    /// routes go to MAS.
    pub fn mas_delegating(&self) -> bool {
        self.mas_enabled() && !*self.mas.migration_in_progress.get_ref()
    }

    /// QR-code login is served: it needs Synapse delegating to MAS.
    pub fn qr_login(&self) -> bool {
        self.mas_delegating() && *self.mas.qr_login.get_ref()
    }

    /// The pepper and the rest of `password_config` come from `secrets/` (imported).
    pub fn imported_password_config(&self) -> bool {
        self.synapse.imported_password_config
    }

    pub fn mas_hostname(&self) -> String {
        self.mas.hostname.as_ref().map(|h| h.get_ref().clone()).unwrap_or_else(|| self.matrix_hostname())
    }

    pub fn tls(&self) -> TlsMode {
        *self.edge.tls.get_ref()
    }

    /// Whether the config runs a service: MAS when enabled, Postgres unless the
    /// config names an external one, Synapse and the edge always (the edge holds
    /// clients' requests while Synapse restarts, so a switch fails none of them,
    /// in plain HTTP too).
    pub fn runs(&self, service: Service) -> bool {
        match service {
            Service::Mas => self.mas_enabled(),
            Service::Proxy => true,
            Service::Redis => self.workers_on(),
            Service::Postgres => self.postgres_external().is_none(),
            Service::Synapse => true,
        }
    }

    /// Synapse runs worker processes (and Redis for them).
    pub fn workers_on(&self) -> bool {
        !self.workers().is_empty()
    }

    /// Synapse's workers, by kind then number.
    pub fn workers(&self) -> Vec<Worker> {
        self.synapse.workers.roster()
    }

    /// Synapse's admin API on the public listeners.
    pub fn expose_admin(&self) -> bool {
        self.edge.expose_admin.as_ref().map_or(self.tls() == TlsMode::Plain, |e| *e.get_ref())
    }

    /// Every hostname the edge serves: the Matrix hostname, MAS's, the server name
    /// (for the well-known documents), without duplicates, ports stripped.
    pub fn served_hostnames(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut names = vec![self.matrix_hostname()];
        if self.mas_enabled() {
            names.push(self.mas_hostname());
        }
        names.push(self.server_name.get_ref().clone());
        for n in names {
            let host = n.split(':').next().unwrap_or(&n).to_string();
            if !out.contains(&host) {
                out.push(host);
            }
        }
        out
    }

    /// `(ip, port)` for the published Synapse listener.
    pub fn synapse_publish(&self) -> (String, u16) {
        self.ports.synapse.get_ref().addr().unwrap_or(("127.0.0.1".into(), 8008))
    }
}
