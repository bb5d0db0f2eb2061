//! Checks on a parsed config that serde cannot express, each with a location.
//!
//! Nothing is left to the runtime: every string that reaches a unit file, the
//! proxy's config, a command line, a bind mount or a Docker name is held to an
//! allowlist here; the rest only reaches the YAML configs through serde_json, which
//! escapes it. Control characters are refused everywhere, keys included, down into
//! the `extra` tables.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;

use anyhow::Result;
use toml::de::{DeTable, DeValue};

use super::{Config, TlsMode, at};
use crate::image::reference::Reference;
use crate::service::Unit;

/// Keys of `homeserver.yaml` that masctl owns: overriding them would break the stack.
pub const MANAGED_SYNAPSE_KEYS: [&str; 13] = [
    "server_name",
    "database",
    "listeners",
    "signing_key_path",
    "media_store_path",
    "log_config",
    "macaroon_secret_key_path",
    "form_secret_path",
    "registration_shared_secret_path",
    "pid_file",
    "matrix_authentication_service",
    // from `[edge] trust`
    "federation_custom_ca_list",
    // from `[[synapse.appservices]]` and `[synapse.double_puppet]`
    "app_service_config_files",
];

/// `experimental_features` keys `synapse.encrypted_bridges` sets.
const ENCRYPTED_BRIDGE_FEATURES: [&str; 2] = ["msc3202_transaction_extensions", "msc2409_to_device_messages_enabled"];

/// Top-level keys of MAS's `config.yaml` that masctl renders (`account` comes from
/// `[mas.account]`).
pub const MANAGED_MAS_KEYS: [&str; 11] = [
    "http",
    "database",
    "secrets",
    "matrix",
    "passwords",
    "email",
    "upstream_oauth2",
    "account",
    // masctl's admin client and the share paths every mas-cli build needs named.
    "clients",
    "policy",
    "templates",
];

/// Postgres settings masctl's containers and health checks depend on.
const MANAGED_POSTGRES_SETTINGS: [&str; 8] = [
    "port",
    "listen_addresses",
    "unix_socket_directories",
    "data_directory",
    "config_file",
    "hba_file",
    "ident_file",
    "external_pid_file",
];

/// Docker's own networks (and swarm's): an instance of that name would join them.
const DOCKER_NETWORKS: [&str; 6] = ["host", "bridge", "none", "default", "ingress", "docker_gwbridge"];

const LOG_LEVELS: [&str; 5] = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

const AUTH_METHODS: [&str; 6] =
    ["none", "client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "sign_in_with_apple"];

type Span = Range<usize>;
/// Why a value is refused; the caller adds the field, the value and the location.
type Verdict = std::result::Result<(), String>;

fn ok_if(cond: bool, why: impl Into<String>) -> Verdict {
    if cond { Ok(()) } else { Err(why.into()) }
}

/// A DNS name: dot-separated labels of letters, digits and `-`.
pub fn dns_name(h: &str) -> Verdict {
    ok_if(
        !h.is_empty()
            && h.len() <= 253
            && h.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            }),
        "is not a host name (letters, digits, - and dots)",
    )
}

/// A host name with an optional `:port`, as in a server name or a URL's authority.
pub fn host_port(h: &str) -> Verdict {
    match h.rsplit_once(':') {
        Some((host, port)) => {
            port_number(port).ok_or("has a bad port")?;
            dns_name(host)
        }
        None => dns_name(h),
    }
}

fn port_number(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|p| *p > 0)
}

/// Names the containers and the Docker network: `[a-z][a-z0-9-]*`, at most 40.
pub fn instance(s: &str) -> Verdict {
    ok_if(
        s.len() <= 40
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "must be 1-40 of a-z, 0-9 and -, starting with a letter",
    )?;
    ok_if(!DOCKER_NETWORKS.contains(&s), "is one of Docker's own networks")
}

/// An absolute path that is safe in a unit file, a bind mount (`src:dst:ro`) and a
/// command line: letters, digits and `/._-+@`, no `..`.
pub fn safe_path(s: &str) -> Verdict {
    ok_if(s.starts_with('/'), "must be an absolute path")?;
    ok_if(s.len() <= 1024, "is too long")?;
    if let Some(c) = s.chars().find(|&c| !(c.is_ascii_alphanumeric() || "/._-+@".contains(c))) {
        return Err(format!("contains {c:?}; paths may use letters, digits and /._-+@"));
    }
    ok_if(!s.split('/').any(|c| c == ".."), "must not contain ..")
}

/// Where MAS is served: `/` and then `[A-Za-z0-9._~-]` segments.
pub fn path_prefix(p: &str) -> Verdict {
    ok_if(p.starts_with('/') && (p.len() == 1 || !p.ends_with('/')), "must start with / and not end with /")?;
    if let Some(c) = p.chars().find(|&c| !(c.is_ascii_alphanumeric() || "/._~-".contains(c))) {
        return Err(format!("contains {c:?}; path prefixes may use letters, digits and /._~-"));
    }
    ok_if(!p.contains("//"), "must not contain //")?;
    ok_if(!p.split('/').any(|s| s == "." || s == ".."), "must not contain . or .. segments")?;
    ok_if(
        p != "/" && !p.starts_with("/_matrix") && !p.starts_with("/_synapse") && !p.starts_with("/_masctl"),
        "would shadow Synapse's paths",
    )
}

/// An ACME directory: an `https://host[:port][/path]` URL.
pub fn acme_directory(s: &str) -> Verdict {
    ok_if(s.starts_with("https://"), "must be an https:// URL")?;
    issuer(s)
}

/// The ACME account's address, as it goes into the Caddyfile: a plain
/// `local@domain` (letters, digits and `.+_-` before the `@`).
pub fn acme_email(s: &str) -> Verdict {
    let plain = s.split_once('@').is_some_and(|(local, _)| {
        !local.is_empty() && local.chars().all(|c| c.is_ascii_alphanumeric() || ".+_-".contains(c))
    });
    ok_if(plain, "is not a plain email address (letters, digits and .+_- before the @)")?;
    email_address(s)
}

/// A Docker network name: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 64.
pub fn network_name(s: &str) -> Verdict {
    ok_if(
        s.len() <= 64
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
        "is not a Docker network name (letters, digits and _.-)",
    )?;
    ok_if(!DOCKER_NETWORKS.contains(&s), "is one of Docker's own networks")
}

/// A Postgres setting (GUC) name: `[A-Za-z_][A-Za-z0-9_]*`, dotted for extensions'.
pub fn guc_name(k: &str) -> Verdict {
    ok_if(
        k.len() <= 63
            && k.split('.').all(|part| {
                part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            }),
        "is not a setting name (letters, digits and _, dotted for extensions)",
    )?;
    ok_if(!MANAGED_POSTGRES_SETTINGS.contains(&k.to_ascii_lowercase().as_str()), "is managed by masctl")
}

/// `local@domain`.
pub fn email_address(s: &str) -> Verdict {
    let Some((local, domain)) = s.rsplit_once('@') else { return Err("is not an email address".into()) };
    ok_if(
        !local.is_empty()
            && local.len() <= 64
            && local.chars().all(|c| c.is_ascii_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-".contains(c)),
        "is not an email address",
    )?;
    dns_name(domain).map_err(|_| "is not an email address".to_string())
}

/// A mailbox: `addr`, `Name <addr>` or `"Name" <addr>`.
pub fn mailbox(s: &str) -> Verdict {
    let Some(rest) = s.strip_suffix('>') else { return email_address(s) };
    let Some((name, addr)) = rest.rsplit_once('<') else { return Err("is not a mailbox".into()) };
    let name = name.trim_end();
    let name = name.strip_prefix('"').and_then(|n| n.strip_suffix('"')).unwrap_or(name);
    ok_if(!name.chars().any(|c| "\"\\<>".contains(c)), "has a display name with quotes, \\ or <>")?;
    email_address(addr)
}

/// An OpenID issuer: `https://host[:port][/path]`.
pub fn issuer(s: &str) -> Verdict {
    // MAS and Synapse fetch discovery and keys from it: plain HTTP would let anyone
    // on the path sign people in.
    let Some(rest) = s.strip_prefix("https://") else { return Err("must be an https:// URL".into()) };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    host_port(authority)?;
    match path.chars().find(|&c| !(c.is_ascii_alphanumeric() || "/._~-%".contains(c))) {
        Some(c) => Err(format!("has {c:?} in its path")),
        None => Ok(()),
    }
}

/// An OAuth client ID: URL-safe characters.
pub fn client_id(s: &str) -> Verdict {
    ok_if(
        !s.is_empty() && s.len() <= 255 && s.chars().all(|c| c.is_ascii_alphanumeric() || "._~-:@+/=".contains(c)),
        "is not a client ID (letters, digits and ._~-:@+/=)",
    )
}

/// Synapse's id of an OIDC provider: `oidc` or `oidc-<idp_id>`.
pub fn synapse_idp_id(s: &str) -> Verdict {
    let ok = s == "oidc"
        || s.strip_prefix("oidc-")
            .is_some_and(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || "._~-".contains(c)));
    ok_if(ok, "must be oidc or oidc-<idp_id> (letters, digits and ._~-)")
}

/// Synapse's own `idp_id`: what follows `oidc-` in its users' records.
pub fn synapse_own_idp_id(s: &str) -> Verdict {
    ok_if(
        !s.is_empty() && s.len() <= 250 && s.chars().all(|c| c.is_ascii_alphanumeric() || "._~-".contains(c)),
        "is not an idp_id (letters, digits and ._~-)",
    )
}

/// What MAS does with a claim: `claims_imports.<attribute>.action`.
pub fn claim_action(s: &str) -> Verdict {
    one_of(s, &["ignore", "suggest", "force", "require"])
}

/// OAuth scopes: space-separated tokens of visible ASCII without `"` and `\`.
pub fn scope(s: &str) -> Verdict {
    ok_if(
        s.split(' ').all(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')),
        "must be scope tokens separated by single spaces",
    )
}

fn one_of(s: &str, allowed: &[&str]) -> Verdict {
    ok_if(allowed.contains(&s), format!("is not one of {}", allowed.join(", ")))
}

/// An image: a recipe name, or `repo[:tag]@sha256:…` with Docker's characters.
/// A recipe input's name, as `[inputs.NAME]` in an image declaration spells it.
pub fn input_name(v: &str) -> Verdict {
    ok_if(
        !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "is not an input name (a-z, 0-9 and -)",
    )
}

pub fn image(v: &str) -> Verdict {
    if !(v.contains('/') || v.contains('@') || v.contains(':')) {
        return ok_if(
            !v.is_empty() && v.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'),
            "is neither an image recipe name nor a repo@sha256:… reference",
        );
    }
    let r = Reference::parse(v).map_err(|e| format!("{e:#}"))?;
    ok_if(
        r.repo.chars().all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c))
            && r.tag.iter().all(|t| t.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))),
        "has characters Docker does not allow in a reference",
    )
}

/// `IP:PORT` or `PORT` (then on loopback).
pub fn parse_publish(s: &str) -> Option<(String, u16)> {
    match s.rsplit_once(':') {
        Some((ip, port)) => {
            let ip = ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')).unwrap_or(ip);
            ip.parse::<IpAddr>().ok()?;
            Some((ip.to_string(), port_number(port)?))
        }
        None => Some(("127.0.0.1".into(), port_number(s)?)),
    }
}

/// A ULID: 26 Crockford base32 characters, the first at most `7`.
pub fn valid_ulid(s: &str) -> bool {
    const ALPHABET: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    s.len() == 26 && s.chars().all(|c| ALPHABET.contains(c)) && s.as_bytes()[0] <= b'7'
}

/// Spans of every key and value in the document, by path (array items by index),
/// for fields serde does not keep spans of.
struct Doc {
    /// path → (key span, value span)
    spans: BTreeMap<Vec<String>, (Span, Span)>,
    /// The first control character in document order: (span, what holds it).
    control: Option<(Span, String)>,
}

impl Doc {
    fn new(text: &str) -> Doc {
        let mut doc = Doc { spans: BTreeMap::new(), control: None };
        if let Ok(t) = DeTable::parse(text) {
            doc.table(&mut Vec::new(), t.get_ref());
        }
        doc
    }

    fn note_control(&mut self, s: &str, span: Span, what: impl FnOnce() -> String) {
        if let Some(c) = s.chars().find(|&c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
            && self.control.as_ref().is_none_or(|(first, _)| span.start < first.start)
        {
            self.control = Some((span, format!("{} contains a control character (U+{:04X})", what(), c as u32)));
        }
    }

    fn table(&mut self, path: &mut Vec<String>, t: &DeTable) {
        for (k, v) in t {
            let key: &str = k.get_ref();
            let parent = path.join(".");
            self.note_control(key, k.span(), || {
                format!("a key in {}", if parent.is_empty() { "the top level" } else { &parent })
            });
            path.push(key.to_string());
            self.spans.insert(path.clone(), (k.span(), v.span()));
            self.value(path, v.get_ref(), v.span());
            path.pop();
        }
    }

    fn value(&mut self, path: &mut Vec<String>, v: &DeValue, span: Span) {
        match v {
            DeValue::String(s) => self.note_control(s, span, || path.join(".")),
            DeValue::Table(t) => self.table(path, t),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(i.to_string());
                    self.spans.insert(path.clone(), (item.span(), item.span()));
                    self.value(path, item.get_ref(), item.span());
                    path.pop();
                }
            }
            _ => {}
        }
    }

    /// The (key, value) spans of `path`, else of its nearest ancestor in the file.
    fn find(&self, path: &[&str]) -> (Span, Span) {
        (0..=path.len())
            .rev()
            .find_map(|n| {
                let p: Vec<String> = path[..n].iter().map(|s| s.to_string()).collect();
                self.spans.get(&p).cloned()
            })
            .unwrap_or((0..0, 0..0))
    }

    fn value_span(&self, path: &[&str]) -> Span {
        self.find(path).1
    }

    fn key_span(&self, path: &[&str]) -> Span {
        self.find(path).0
    }
}

struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
    doc: Doc,
}

impl Checker<'_> {
    fn err(&self, span: Span, msg: impl std::fmt::Display) -> anyhow::Error {
        at(self.path, self.text, span, msg)
    }

    /// `verdict` on `value` of `field`, located at `span`.
    fn check(&self, field: &str, value: &str, span: Span, verdict: Verdict) -> Result<()> {
        verdict.map_err(|why| self.err(span, format!("{field} {value:?} {why}")))
    }

    fn spanned(&self, field: &str, v: &toml::Spanned<String>, f: fn(&str) -> Verdict) -> Result<()> {
        self.check(field, v.get_ref(), v.span(), f(v.get_ref()))
    }

    /// A field serde keeps no span of, found in the document by its path.
    fn plain(&self, path: &[&str], v: &str, f: fn(&str) -> Verdict) -> Result<()> {
        self.check(&path.join("."), v, self.doc.value_span(path), f(v))
    }

    /// `extra` tables may add keys, not replace the ones masctl renders.
    fn refuse_managed(&self, section: &str, extra: &toml::Spanned<toml::Table>, managed: &[&str]) -> Result<()> {
        match extra.get_ref().keys().find(|k| managed.contains(&k.as_str())) {
            Some(key) => Err(self.err(
                self.doc.key_span(&[section, "extra", key]),
                format!("{section}.extra.{key} is managed by masctl and cannot be overridden"),
            )),
            None => Ok(()),
        }
    }
}

pub fn validate(c: &Config, path: &Path, text: &str) -> Result<()> {
    let k = Checker { path, text, doc: Doc::new(text) };
    if let Some((span, msg)) = &k.doc.control {
        return Err(k.err(span.clone(), msg));
    }
    k.spanned("server_name", &c.server_name, host_port)?;
    if let Some(h) = &c.hostnames.matrix {
        k.spanned("hostnames.matrix", h, host_port)?;
    }
    k.spanned("instance", &c.instance, instance)?;
    k.spanned("state_root", &c.state_root, safe_path)?;
    for (name, img) in [
        ("images.postgres", &c.images.postgres),
        ("images.synapse", &c.images.synapse),
        ("images.mas", &c.images.mas),
        ("images.proxy", &c.images.proxy),
        ("images.redis", &c.images.redis),
        ("images.restic", &c.images.restic),
    ] {
        k.spanned(name, img, image)?;
    }
    for (name, dir) in &c.images.inputs {
        let field = ["images", "inputs", name.as_str()];
        k.check("image input", name, k.doc.key_span(&field), input_name(name))?;
        k.spanned(&format!("images.inputs.{name}"), dir, safe_path)?;
    }
    for (key, v) in &c.postgres.settings {
        let field = ["postgres", "settings", key.as_str()];
        k.check("postgres setting", key, k.doc.key_span(&field), guc_name(key))?;
        let ok_val = matches!(
            v.get_ref(),
            toml::Value::String(_) | toml::Value::Integer(_) | toml::Value::Boolean(_) | toml::Value::Float(_)
        );
        if !ok_val {
            return Err(k.err(v.span(), format!("postgres.settings.{key} must be a string, number or boolean")));
        }
    }
    validate_external_postgres(c, &k)?;
    k.spanned("synapse.log_level", &c.synapse.log_level, |l| one_of(l, &LOG_LEVELS))?;
    k.refuse_managed("synapse", &c.synapse.extra, &MANAGED_SYNAPSE_KEYS)?;
    if c.imported_password_config() && c.synapse.extra.get_ref().contains_key("password_config") {
        return Err(k.err(
            k.doc.key_span(&["synapse", "extra", "password_config"]),
            "synapse.extra.password_config: with imported_password_config = true, password_config is \
secrets/synapse-password-config.yaml (Synapse would let one replace the other); edit that file",
        ));
    }
    if c.ports.synapse.get_ref().addr().is_none() {
        return Err(k.err(
            c.ports.synapse.span(),
            format!("ports.synapse {:?} is not IP:PORT or PORT (1-65535)", c.ports.synapse.get_ref().text()),
        ));
    }
    validate_appservices(c, &k)?;
    validate_users(c, &k)?;
    validate_workers(c, &k)?;
    validate_mas(c, &k)?;
    validate_synapse_oidc(c, &k)?;
    validate_qr_login(c, &k)?;
    validate_backup(c, &k)?;
    validate_edge(c, &k)
}

/// `[backup]`: at least one repository, each a kind restic reaches; sftp with its
/// key and host key; files named by safe paths (read when the config is loaded).
fn validate_backup(c: &Config, k: &Checker) -> Result<()> {
    let Some(b) = &c.backup else { return Ok(()) };
    if b.repositories.is_empty() {
        return Err(k.err(k.doc.key_span(&["backup"]), "backup needs at least one [[backup.repository]]"));
    }
    for (i, r) in b.repositories.iter().enumerate() {
        let url = crate::offsite::RepoUrl::parse(r.url.get_ref())
            .map_err(|why| k.err(r.url.span(), format!("backup.repository.url {:?} {why}", r.url.get_ref())))?;
        if b.repositories[..i].iter().any(|o| o.url.get_ref() == r.url.get_ref()) {
            return Err(k.err(r.url.span(), format!("backup.repository.url {:?} is listed twice", r.url.get_ref())));
        }
        k.spanned("backup.repository.password_file", &r.password_file, safe_path)?;
        let sftp = matches!(url, crate::offsite::RepoUrl::Sftp(_));
        for (field, f) in [("ssh_key_file", &r.ssh_key_file), ("known_hosts_file", &r.known_hosts_file)] {
            match f {
                Some(f) if !sftp => {
                    return Err(k.err(f.span(), format!("backup.repository.{field} is for sftp: repositories only")));
                }
                Some(f) => k.spanned(&format!("backup.repository.{field}"), f, safe_path)?,
                None if sftp => {
                    return Err(k.err(
                        r.url.span(),
                        format!("backup.repository.url {:?}: an sftp repository needs {field}", r.url.get_ref()),
                    ));
                }
                None => {}
            }
        }
    }
    Ok(())
}

/// What `mas.qr_login` turns on must not be turned off (or made to conflict)
/// through the `extra` tables.
fn validate_qr_login(c: &Config, k: &Checker) -> Result<()> {
    if !c.qr_login() {
        return Ok(());
    }
    let grant = c.mas.extra.get_ref().get("oauth").and_then(|o| o.get("device_code_grant_enabled"));
    if grant.is_some_and(|g| g.as_bool() != Some(true)) {
        return Err(k.err(
            k.doc.value_span(&["mas", "extra", "oauth", "device_code_grant_enabled"]),
            "mas.extra.oauth.device_code_grant_enabled: QR-code login (mas.qr_login, on by default) ends in \
MAS's device-code grant; remove this key or set mas.qr_login = false",
        ));
    }
    let xf = c.synapse.extra.get_ref().get("experimental_features");
    if xf.and_then(|x| x.get("msc4108_delegation_endpoint")).is_some() {
        return Err(k.err(
            k.doc.value_span(&["synapse", "extra", "experimental_features", "msc4108_delegation_endpoint"]),
            "synapse.extra.experimental_features.msc4108_delegation_endpoint: Synapse refuses it together with \
its own rendezvous, which mas.qr_login (on by default) turns on; remove this key or set mas.qr_login = false",
        ));
    }
    Ok(())
}

fn validate_appservices(c: &Config, k: &Checker) -> Result<()> {
    for a in &c.synapse.appservices {
        k.spanned("synapse.appservices.path", &a.path, safe_path)?;
        if let Some(n) = &a.network {
            k.spanned("synapse.appservices.network", n, network_name)?;
        }
    }
    let features = c.synapse.extra.get_ref().get("experimental_features").and_then(|v| v.as_table());
    if let Some(key) = features.and_then(|f| ENCRYPTED_BRIDGE_FEATURES.iter().find(|k| f.contains_key(**k))) {
        return Err(k.err(
            k.doc.key_span(&["synapse", "extra", "experimental_features", key]),
            format!("synapse.extra.experimental_features.{key}: set synapse.encrypted_bridges = true instead"),
        ));
    }
    Ok(())
}

/// `[[users]]`: localparts Synapse would register, each once, not masctl's own;
/// emails as for MAS; password files named by a safe path (their mode and content
/// are checked when the config is loaded).
fn validate_users(c: &Config, k: &Checker) -> Result<()> {
    use crate::declared_users::{MASCTL_ADMIN, localpart_problem};
    for (i, u) in c.users.iter().enumerate() {
        let lp = &u.localpart;
        if let Some(why) = localpart_problem(lp.get_ref(), c.server_name.get_ref()) {
            return Err(k.err(lp.span(), format!("users.localpart {:?} {why}", lp.get_ref())));
        }
        if lp.get_ref() == MASCTL_ADMIN {
            return Err(k.err(lp.span(), format!("users.localpart {MASCTL_ADMIN:?} is masctl's own admin account")));
        }
        if c.users[..i].iter().any(|e| e.localpart.get_ref() == lp.get_ref()) {
            return Err(k.err(lp.span(), format!("users.localpart {:?} is declared twice", lp.get_ref())));
        }
        if let Some(f) = &u.password_file {
            k.spanned("users.password_file", f, safe_path)?;
        }
        for e in &u.emails {
            k.spanned("users.emails", e, email_address)?;
        }
    }
    Ok(())
}

/// A Postgres role or database name masctl writes into pgpass lines and SQL
/// identifiers: lower-case letters, digits and `_`, at most 63 (Postgres's limit).
pub fn pg_identifier(s: &str) -> Verdict {
    ok_if(
        !s.is_empty()
            && s.len() <= 63
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "is not a plain Postgres name (a-z, 0-9 and _, not starting with a digit, at most 63)",
    )
}

/// The external server's host: a DNS name or an IP address.
pub fn pg_host(s: &str) -> Verdict {
    if s.parse::<IpAddr>().is_ok() {
        Ok(())
    } else {
        dns_name(s).map_err(|_| "is not a host name or IP address".into())
    }
}

fn validate_external_postgres(c: &Config, k: &Checker) -> Result<()> {
    let Some(ext) = &c.postgres.external else { return Ok(()) };
    if let Some(key) = c.postgres.settings.keys().next() {
        return Err(k.err(
            k.doc.key_span(&["postgres", "settings", key]),
            format!(
                "postgres.settings.{key} configures the bundled Postgres, which does not run with [postgres.external]; \
set it on the external server"
            ),
        ));
    }
    let e = ext.get_ref();
    k.spanned("postgres.external.host", &e.host, pg_host)?;
    if *e.port.get_ref() == 0 {
        return Err(k.err(e.port.span(), "postgres.external.port must be 1-65535"));
    }
    if let Some(n) = &e.network {
        k.spanned("postgres.external.network", n, network_name)?;
        if n.get_ref() == c.instance.get_ref() {
            let msg = format!("postgres.external.network {:?} is the instance's own network", n.get_ref());
            return Err(k.err(n.span(), msg));
        }
    }
    let mut dbs = vec![("synapse", &e.synapse)];
    match &e.mas {
        Some(m) => dbs.push(("mas", m)),
        None if c.mas_enabled() => {
            return Err(k.err(
                ext.span(),
                "[postgres.external] needs a mas = { database, user, password_file } entry: MAS is enabled and \
keeps its own database",
            ));
        }
        None => {}
    }
    for (name, db) in &dbs {
        let d = db.get_ref();
        k.spanned(&format!("postgres.external.{name}.database"), &d.database, pg_identifier)?;
        k.spanned(&format!("postgres.external.{name}.user"), &d.user, pg_identifier)?;
        k.spanned(&format!("postgres.external.{name}.password_file"), &d.password_file, safe_path)?;
    }
    if let [(_, syn), (_, mas)] = dbs.as_slice()
        && syn.get_ref().database.get_ref() == mas.get_ref().database.get_ref()
    {
        let d = &mas.get_ref().database;
        return Err(k.err(
            d.span(),
            format!("postgres.external.mas.database {:?} is Synapse's too; MAS needs its own", d.get_ref()),
        ));
    }
    Ok(())
}

/// Keys of `homeserver.yaml` masctl owns once workers run: the replication setup
/// and who does what.
pub const MANAGED_WORKER_KEYS: [&str; 20] = [
    "redis",
    "instance_map",
    "stream_writers",
    "worker_replication_secret",
    "worker_replication_secret_path",
    "federation_sender_instances",
    "pusher_instances",
    "send_federation",
    "start_pushers",
    "run_background_tasks_on",
    "update_user_directory_from_worker",
    "notify_appservices_from_worker",
    "update_user_directory",
    "notify_appservices",
    "enable_media_repo",
    "media_instance_running_background_jobs",
    "worker_app",
    "worker_name",
    "worker_listeners",
    "worker_log_config",
];

/// The most workers of one kind: each is a Python process of its own.
const MAX_WORKERS_PER_KIND: u32 = 16;

fn validate_workers(c: &Config, k: &Checker) -> Result<()> {
    let w = &c.synapse.workers;
    for (kind, n) in &w.counts {
        let most = if kind.at_most_one() { 1 } else { MAX_WORKERS_PER_KIND };
        if *n.get_ref() > most {
            return Err(k.err(
                n.span(),
                format!("synapse.workers.counts.{kind} = {}: at most {most} ({kind} workers)", n.get_ref()),
            ));
        }
    }
    if c.workers_on() {
        k.refuse_managed("synapse", &c.synapse.extra, &MANAGED_WORKER_KEYS)?;
        // Processes find each other by container name: one DNS label.
        let longest =
            c.workers().into_iter().map(|w| Unit::worker(w).container(c.instance.get_ref())).max_by_key(String::len);
        if let Some(name) = longest.filter(|n| n.len() > 63) {
            return Err(k.err(
                c.instance.span(),
                format!(
                    "instance {:?} is too long for the workers: their container name {name:?} is over 63 characters",
                    c.instance.get_ref()
                ),
            ));
        }
    }
    for (kind, extra) in &w.extra {
        let span = k.doc.key_span(&["synapse", "workers", "extra", kind.name()]);
        if w.count(*kind) == 0 {
            return Err(k.err(span, format!("synapse.workers.extra.{kind}: no {kind} workers run")));
        }
        let managed = extra
            .get_ref()
            .keys()
            .find(|key| MANAGED_SYNAPSE_KEYS.contains(&key.as_str()) || MANAGED_WORKER_KEYS.contains(&key.as_str()));
        if let Some(key) = managed {
            return Err(k.err(
                span,
                format!("synapse.workers.extra.{kind}.{key} is managed by masctl and cannot be overridden"),
            ));
        }
    }
    Ok(())
}

fn validate_edge(c: &Config, k: &Checker) -> Result<()> {
    let e = &c.edge;
    for (name, v) in [("edge.http", &e.http), ("edge.https", &e.https), ("edge.federation", &e.federation)] {
        if v.get_ref().addr().is_none() {
            return Err(k.err(v.span(), format!("{name} {:?} is not IP:PORT or PORT (1-65535)", v.get_ref().text())));
        }
    }
    k.spanned("edge.acme_directory", &e.acme_directory, acme_directory)?;
    if let Some(m) = &e.acme_email {
        k.spanned("edge.acme_email", m, acme_email)?;
    }
    for (name, f) in [
        ("edge.acme_directory_ca", &e.acme_directory_ca),
        ("edge.certificate", &e.certificate),
        ("edge.key", &e.key),
        ("edge.trust", &e.trust),
    ] {
        if let Some(f) = f {
            k.spanned(name, f, safe_path)?;
        }
    }
    for f in &e.extra_ca {
        k.spanned("edge.extra_ca", f, safe_path)?;
        if e.trust.is_some() {
            let msg = "edge.extra_ca: edge.trust already replaces the roots MAS and Synapse trust; use one of the two";
            return Err(k.err(f.span(), msg));
        }
    }
    for n in &e.networks {
        k.spanned("edge.networks", n, network_name)?;
        if n.get_ref() == c.instance.get_ref() {
            return Err(k.err(n.span(), format!("edge.networks {:?} is the instance's own network", n.get_ref())));
        }
    }
    let mode = e.tls.get_ref();
    let needs = |what: &str, v: &Option<toml::Spanned<String>>, why: &str| match v {
        Some(_) => Ok(()),
        None => Err(k.err(e.tls.span(), format!("edge: tls = {why:?} needs {what}"))),
    };
    match mode {
        TlsMode::Acme => needs("acme_email", &e.acme_email, "acme")?,
        TlsMode::Files => {
            needs("certificate", &e.certificate, "files")?;
            needs("key", &e.key, "files")?;
        }
        TlsMode::Plain => {}
    }
    if *mode != TlsMode::Plain {
        // Certificates are for names; the edge listens on 443 and 8448.
        let mut names = vec![("server_name", &c.server_name)];
        names.extend(c.hostnames.matrix.as_ref().map(|h| ("hostnames.matrix", h)));
        names.extend(c.mas.hostname.as_ref().map(|h| ("mas.hostname", h)));
        for (field, v) in names {
            if v.get_ref().contains(':') {
                let msg =
                    format!("{field} {:?} has a port; with TLS the edge serves names on 443 and 8448", v.get_ref());
                return Err(k.err(v.span(), msg));
            }
        }
    }
    Ok(())
}

/// MAS logs in to the SMTP server with both or neither (`email.rs`: a username
/// without a password, or the reverse, stops MAS at start-up).
fn smtp_credentials(e: &super::Email, k: &Checker) -> Result<()> {
    match (&e.username, &e.password_file) {
        (Some(_), None) => Err(k.err(
            k.doc.value_span(&["mas", "email", "username"]),
            "mas.email.username needs password_file (a 0600 file holding the SMTP password)",
        )),
        (None, Some(f)) => Err(k.err(f.span(), "mas.email.password_file needs a username to log in with")),
        _ => Ok(()),
    }
}

fn validate_mas(c: &Config, k: &Checker) -> Result<()> {
    let m = &c.mas;
    if let Some(h) = &m.hostname {
        k.spanned("mas.hostname", h, host_port)?;
    }
    k.spanned("mas.path_prefix", &m.path_prefix, path_prefix)?;
    let e = &m.email;
    k.spanned("mas.email.transport", &e.transport, |t| one_of(t, &["none", "smtp"]))?;
    if e.transport.get_ref() == "smtp" && e.hostname.is_none() {
        return Err(k.err(e.transport.span(), "mas.email: transport smtp needs a hostname"));
    }
    if let Some(h) = &e.hostname {
        k.spanned("mas.email.hostname", h, dns_name)?;
    }
    if let Some(mode) = &e.mode {
        k.spanned("mas.email.mode", mode, |m| one_of(m, &["plain", "starttls", "tls"]))?;
    }
    if e.port == Some(0) {
        return Err(k.err(k.doc.value_span(&["mas", "email", "port"]), "mas.email.port must be 1-65535"));
    }
    k.plain(&["mas", "email", "from"], &e.from, mailbox)?;
    if let Some(f) = &e.password_file {
        k.spanned("mas.email.password_file", f, safe_path)?;
    }
    smtp_credentials(e, k)?;
    for key in m.account.keys() {
        let field = ["mas", "account", key.as_str()];
        let verdict = ok_if(
            key.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !key.is_empty(),
            "is not a MAS account setting",
        );
        k.check("mas.account setting", key, k.doc.key_span(&field), verdict)?;
    }
    k.refuse_managed("mas", &m.extra, &MANAGED_MAS_KEYS)?;
    let mut seen = std::collections::BTreeSet::new();
    for (i, p) in m.upstream_oauth2.providers.iter().enumerate() {
        if !valid_ulid(p.id.get_ref()) {
            let msg =
                format!("provider id {:?} is not a ULID (26 characters of 0-9A-Z without I, L, O, U)", p.id.get_ref());
            return Err(k.err(p.id.span(), msg));
        }
        if !seen.insert(p.id.get_ref().clone()) {
            return Err(k.err(p.id.span(), format!("provider id {} is used twice", p.id.get_ref())));
        }
        let i = i.to_string();
        let field = |name: &'static str| ["mas", "upstream_oauth2", "providers", i.as_str(), name];
        k.plain(&field("issuer"), &p.issuer, issuer)?;
        k.plain(&field("client_id"), &p.client_id, client_id)?;
        if let Some(idp) = &p.synapse_idp_id {
            k.plain(&field("synapse_idp_id"), idp, synapse_idp_id)?;
        }
        k.plain(&field("token_endpoint_auth_method"), &p.token_endpoint_auth_method, |a| one_of(a, &AUTH_METHODS))?;
        k.plain(&field("scope"), &p.scope, scope)?;
        if let Some(f) = &p.client_secret_file {
            k.spanned(&field("client_secret_file").join("."), f, safe_path)?;
        }
        let imports = &p.claims_imports;
        for (name, import) in
            [("localpart", &imports.localpart), ("displayname", &imports.displayname), ("email", &imports.email)]
        {
            if let Some(import) = import {
                let what = format!("mas.upstream_oauth2.providers.claims_imports.{name}.action");
                k.spanned(&what, &import.action, claim_action)?;
            }
        }
    }
    Ok(())
}

/// `[[synapse.oidc_providers]]`: Synapse's own single sign-on, before MAS takes over.
fn validate_synapse_oidc(c: &Config, k: &Checker) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, p) in c.synapse.oidc_providers.iter().enumerate() {
        k.spanned("synapse.oidc_providers.idp_id", &p.idp_id, synapse_own_idp_id)?;
        if !seen.insert(p.idp_id.get_ref().clone()) {
            return Err(
                k.err(p.idp_id.span(), format!("synapse.oidc_providers idp_id {} is used twice", p.idp_id.get_ref()))
            );
        }
        k.spanned("synapse.oidc_providers.issuer", &p.issuer, issuer)?;
        let i = i.to_string();
        k.plain(&["synapse", "oidc_providers", i.as_str(), "client_id"], &p.client_id, client_id)?;
        k.spanned("synapse.oidc_providers.client_secret_file", &p.client_secret_file, safe_path)?;
        if c.mas_delegating() {
            let msg = "synapse.oidc_providers: MAS signs people in now (mas.enabled without migration_in_progress); \
remove Synapse's own providers: MAS's [[mas.upstream_oauth2.providers]] take over their users";
            return Err(k.err(p.idp_id.span(), msg));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use std::path::Path;

    fn check(text: &str) -> Result<(), String> {
        parse(Path::new("m.toml"), text).map(|_| ()).map_err(|e| format!("{e:#}"))
    }

    /// Each config is refused with one line that starts with `loc` and says `what`.
    fn assert_refused<T: AsRef<str>>(cases: &[(T, &str, &str)]) {
        for (text, loc, what) in cases {
            let text = text.as_ref();
            let e = check(text).unwrap_err();
            assert!(e.starts_with(loc) && e.contains(what), "{text:?} gave {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn declared_users_are_checked_with_a_location() {
        let u = |body: &str| format!("server_name = \"e.com\"\n[[users]]\nlocalpart = \"alice\"\n[[users]]\n{body}\n");
        let cases = [
            (u("localpart = \"Bob\""), "m.toml:5:13:", "lower-case"),
            (u("localpart = \"_b\""), "m.toml:5:13:", "begin with _"),
            (u("localpart = \"42\""), "m.toml:5:13:", "all digits"),
            (u("localpart = \"alice\""), "m.toml:5:13:", "declared twice"),
            (u("localpart = \"masctl-admin\""), "m.toml:5:13:", "masctl's own"),
            (u("localpart = \"b\"\nemails = [\"nope\"]"), "m.toml:6:11:", "not an email address"),
            (u("localpart = \"b\"\npassword_file = \"rel/pw\""), "m.toml:6:17:", "users.password_file"),
            (u("localpart = \"b\"\nadmin = \"yes\""), "m.toml:6:9:", "bool"),
            (u("localpart = \"b\"\nname = \"B\""), "m.toml:6:1:", "unknown field"),
        ];
        assert_refused(&cases);
        check(&u("localpart = \"bot\"\nadmin = false\nemails = [\"b@e.com\"]")).unwrap();
    }

    #[test]
    fn minimal_and_full_configs_are_accepted() {
        check("server_name = \"example.com\"\n").unwrap();
        check(
            "server_name = \"example.com\"\ninstance = \"t1\"\n[hostnames]\nmatrix = \"m.example.com\"\n\
[postgres.settings]\nshared_buffers = \"256MB\"\nmax_connections = 50\n\
[synapse]\nlog_level = \"DEBUG\"\n[synapse.extra]\nmax_upload_size = \"100M\"\n[ports]\nsynapse = \"8448\"\n",
        )
        .unwrap();
    }

    #[test]
    fn invalid_configs_point_at_the_problem() {
        let cases = [
            ("server_name = \"exa mple\"\n", "m.toml:1:15:", "not a host name"),
            ("server_name = \"e.com\"\nbogus = 1\n", "m.toml:2:1:", "unknown field `bogus`"),
            ("server_name = \"e.com\"\n[synapse]\nlog_level = \"LOUD\"\n", "m.toml:3:13:", "LOUD"),
            ("server_name = \"e.com\"\n[ports]\nsynapse = \"1.2.3:80\"\n", "m.toml:3:11:", "ports.synapse"),
            ("server_name = \"e.com\"\n[images]\nsynapse = \"ghcr.io/x/y:1\"\n", "m.toml:3:11:", "digest"),
            ("server_name = \"e.com\"\n[synapse.extra]\ndatabase = 1\n", "m.toml:3:1:", "managed by masctl"),
            (
                "server_name = \"e.com\"\n[synapse]\nimported_password_config = true\n[synapse.extra.password_config]\npolicy = {}\n",
                "m.toml:4:",
                "secrets/synapse-password-config.yaml",
            ),
            ("server_name = \"e.com\"\ninstance = \"Big\"\n", "m.toml:2:12:", "instance"),
            ("server_name = \"e.com\"\n[postgres.settings]\nx = [1]\n", "m.toml:3:5:", "postgres.settings.x"),
            ("server_name = 5\n", "m.toml:1:15:", "invalid type"),
            ("[synapse]\n", "m.toml:1:1:", "server_name"),
        ];
        assert_refused(&cases);
    }

    #[test]
    fn worker_sections() {
        let base = "server_name = \"e.com\"\n[synapse.workers]\n";
        check(&format!("{base}preset = \"one-of-each\"\n")).unwrap();
        check(&format!(
            "{base}preset = \"specialised\"\ncounts = {{ synchrotron = 3, pusher = 0 }}\n\
[synapse.workers.extra.federation-sender]\nfederation_rr_transactions_per_room_per_second = 20\n"
        ))
        .unwrap();
        let cases = [
            (format!("{base}preset = \"many\"\n"), "m.toml:3:10:", "unknown variant `many`"),
            (format!("{base}counts = {{ bogus = 1 }}\n"), "m.toml:3:12:", "unknown variant `bogus`"),
            (format!("{base}counts = {{ background = 2 }}\n"), "m.toml:3:25:", "at most 1"),
            (format!("{base}counts = {{ generic = 17 }}\n"), "m.toml:3:22:", "at most 16"),
            (format!("{base}counts = {{ generic = -1 }}\n"), "m.toml:3:22:", "invalid value"),
            (
                format!("{base}counts = {{ generic = 1 }}\n[synapse.workers.extra.pusher]\npusher_x = 1\n"),
                "m.toml:4:",
                "no pusher workers run",
            ),
            (
                format!("{base}preset = \"one-of-each\"\n[synapse.workers.extra.pusher]\nworker_app = \"x\"\n"),
                "m.toml:4:",
                "managed by masctl",
            ),
            (
                format!("{base}preset = \"one-of-each\"\n[synapse.extra]\nredis = {{}}\n"),
                "m.toml:5:1:",
                "synapse.extra.redis is managed",
            ),
        ];
        assert_refused(&cases);
        // Without workers, the keys stay the user's.
        check("server_name = \"e.com\"\n[synapse.extra]\nenable_media_repo = false\n").unwrap();
    }

    #[test]
    fn mas_sections() {
        let base = "server_name = \"e.com\"\n[mas]\nenabled = true\n";
        check(base).unwrap();
        let provider = "[[mas.upstream_oauth2.providers]]\nid = \"01JSHPZHAXC50QBKH67MH33TNF\"\nissuer = \"https://dex.e.com/\"\nclient_id = \"mas\"\n";
        check(&format!(
            "{base}migration_in_progress = true\npath_prefix = \"/account\"\n[mas.email]\ntransport = \"smtp\"\n\
hostname = \"mail.e.com\"\nmode = \"starttls\"\n{provider}synapse_idp_id = \"oidc-dex\"\nclient_secret_file = \"/etc/masctl/dex\"\n"
        ))
        .unwrap();
        let cases = [
            (format!("{base}path_prefix = \"auth\"\n"), "m.toml:4:15:", "path_prefix"),
            (format!("{base}path_prefix = \"/_matrix/x\"\n"), "m.toml:4:15:", "shadow"),
            (format!("{base}[mas.email]\ntransport = \"smtp\"\n"), "m.toml:5:13:", "hostname"),
            (format!("{base}[mas.email]\ntransport = \"pigeon\"\n"), "m.toml:5:13:", "pigeon"),
            (
                format!("{base}[mas.email]\ntransport = \"smtp\"\nhostname = \"m.e.com\"\nusername = \"mas\"\n"),
                "m.toml:7:12:",
                "needs password_file",
            ),
            (
                format!("{base}[mas.email]\ntransport = \"smtp\"\nhostname = \"m.e.com\"\npassword_file = \"/p\"\n"),
                "m.toml:7:17:",
                "needs a username",
            ),
            (format!("{base}{}", provider.replace("TNF", "TNI")), "m.toml:5:6:", "ULID"),
            (format!("{base}{provider}client_secret_file = \"rel\"\n"), "m.toml:8:22:", "absolute"),
        ];
        assert_refused(&cases);
    }

    #[test]
    fn ulid_table() {
        let cases = [
            ("01JSHPZHAXC50QBKH67MH33TNF", true),
            ("81JSHPZHAXC50QBKH67MH33TNF", false),
            ("01JSHPZHAXC50QBKH67MH33TN", false),
            ("01jshpzhaxc50qbkh67mh33tnf", false),
        ];
        for (s, ok) in cases {
            assert_eq!(super::valid_ulid(s), ok, "{s}");
        }
    }

    #[test]
    fn publish_table() {
        for (s, want) in [
            ("127.0.0.1:8008", Some(("127.0.0.1", 8008))),
            ("8448", Some(("127.0.0.1", 8448))),
            ("[::1]:80", Some(("::1", 80))),
            ("host:80", None),
            ("0", None),
            ("+80", None),
            ("127.0.0.1:65536", None),
            ("127.0.0.1:80\n", None),
            ("", None),
        ] {
            let got = super::parse_publish(s);
            assert_eq!(got.as_ref().map(|(a, b)| (a.as_str(), *b)), want, "{s}");
        }
    }

    /// Each allowlist on values it must take and values it must refuse.
    #[test]
    fn edge_sections() {
        let base = "server_name = \"e.com\"\n";
        check(&format!("{base}[edge]\ntls = \"acme\"\nacme_email = \"admin@e.com\"\n")).unwrap();
        check(&format!(
            "{base}[edge]\ntls = \"files\"\ncertificate = \"/etc/tls/c.pem\"\nkey = \"/etc/tls/k.pem\"\n\
https = \"127.0.0.1:8443\"\nnetworks = [\"fed-1\"]\nexpose_admin = true\n"
        ))
        .unwrap();
        let cases = [
            (format!("{base}[edge]\ntls = \"acme\"\n"), "m.toml:3:7:", "needs acme_email"),
            (format!("{base}[edge]\ntls = \"files\"\nkey = \"/k\"\n"), "m.toml:3:7:", "needs certificate"),
            (format!("{base}[edge]\ntls = \"tls\"\n"), "m.toml:3:7:", "unknown variant"),
            (format!("{base}[edge]\nacme_directory = \"http://ca/dir\"\n"), "m.toml:3:18:", "https://"),
            (format!("{base}[edge]\nacme_directory = \"https://ca/{{x}}\"\n"), "m.toml:3:18:", "in its path"),
            (format!("{base}[edge]\nacme_email = \"a{{$X}}@e.com\"\n"), "m.toml:3:14:", "plain email"),
            (format!("{base}[edge]\ntrust = \"roots.pem\"\n"), "m.toml:3:9:", "absolute path"),
            (format!("{base}[edge]\ncertificate = \"/a b\"\n"), "m.toml:3:15:", "edge.certificate"),
            (format!("{base}[edge]\nhttps = \"1.2.3:443\"\n"), "m.toml:3:9:", "edge.https"),
            (format!("{base}[edge]\nnetworks = [\"host\"]\n"), "m.toml:3:13:", "Docker's own"),
            (format!("{base}[edge]\nnetworks = [\"masctl\"]\n"), "m.toml:3:13:", "instance's own"),
            (format!("{base}[edge]\nnetworks = [\"a b\"]\n"), "m.toml:3:13:", "network name"),
            (
                "server_name = \"e.com:8448\"\n[edge]\ntls = \"acme\"\nacme_email = \"a@e.com\"\n".to_string(),
                "m.toml:1:15:",
                "has a port",
            ),
            (format!("{base}[synapse.extra]\nfederation_custom_ca_list = []\n"), "m.toml:3:1:", "managed"),
        ];
        assert_refused(&cases);
    }

    #[test]
    fn allowlist_tables() {
        type Rule = fn(&str) -> super::Verdict;
        let tables: [(&str, Rule, &[&str], &[&str]); 12] = [
            (
                "dns_name",
                super::dns_name,
                &["e.com", "mail-1.e.com", "localhost", "10.0.0.1"],
                &["", "a..b", "-a.com", "a-.com", "a_b.com", "a b", "a.com:25", "ä.com", &"a".repeat(64)],
            ),
            (
                "host_port",
                super::host_port,
                &["test.local", "e.com:8448", "matrix.e.com"],
                &["e.com:", "e.com:0", "e.com:+1", "e.com:99999", "e.com\"", "e.com/x", "e.com;"],
            ),
            (
                "instance",
                super::instance,
                &["masctl", "masctl-try", "t12345-mas", "a"],
                &["", "host", "bridge", "none", "default", "Big", "1abc", "-a", "a_b", "a.b", &"a".repeat(41)],
            ),
            (
                "safe_path",
                super::safe_path,
                &["/var/lib/masctl", "/var/tmp/masctl-stack-Ab1xYz", "/tmp/.tmpAbC/root", "/etc/masctl/dex+1@x"],
                &["rel", "", "/a b", "/a\"b", "/a%b", "/a\\b", "/a:b", "/a/../b", "/a\nb", "/a$b", "/ä"],
            ),
            (
                "path_prefix",
                super::path_prefix,
                &["/auth", "/account/mas", "/a.b~c-d_e"],
                &[
                    "auth",
                    "/",
                    "/auth/",
                    "/a//b",
                    "/auth;x",
                    "/a\"b",
                    "/a b",
                    "/a{b",
                    "/_matrix/x",
                    "/a/../b",
                    "/a/./b",
                ],
            ),
            (
                "guc_name",
                super::guc_name,
                &["shared_buffers", "auto_explain.log_min_duration", "_x"],
                &["", "1x", "a-b", "a b", "a=b", "a.", "port", "Listen_Addresses", "data_directory"],
            ),
            (
                "mailbox",
                super::mailbox,
                &["a@e.com", "\"Auth Service\" <root@localhost>", "Auth <a.b+c@e.com>"],
                &["", "nobody", "a@", "@e.com", "\"A\"B\" <a@e.com>", "A <a@e.com", "a b@e.com", "A <a@e_c.com>"],
            ),
            (
                "issuer",
                super::issuer,
                &["https://dex.e.com/", "https://e.com:8443/realms/x", "https://localhost:5556/dex"],
                &[
                    "http://localhost:5556/dex",
                    "dex.e.com",
                    "ftp://e.com/",
                    "https://",
                    "https://e.com/a b",
                    "https://e.com/\"",
                    "https://e com/",
                ],
            ),
            (
                "client_id",
                super::client_id,
                &["mas", "0b2a8c7e-1f3d-4c2a-9b1e-123456789abc", "app@e.com"],
                &["", "a b", "a\"b", "a'b", "a\\b", "a;b"],
            ),
            (
                "synapse_idp_id",
                super::synapse_idp_id,
                &["oidc", "oidc-dex", "oidc-a.b_c"],
                &["", "dex", "oidc-", "oidc-a b"],
            ),
            ("scope", super::scope, &["openid", "openid profile email"], &["", "openid  email", " openid", "a\"b"]),
            (
                "image",
                super::image,
                &[
                    "synapse",
                    "mas-standin",
                    "ghcr.io/a/b:1@sha256:8cb319ec41706adc1ed8b5b63e1de2f067073cc33a304686226f658f5e83c8b3",
                ],
                &[
                    "",
                    "a b",
                    "ghcr.io/a/b:1",
                    "ghcr.io/a/b;x@sha256:8cb319ec41706adc1ed8b5b63e1de2f067073cc33a304686226f658f5e83c8b3",
                ],
            ),
        ];
        for (name, rule, good, bad) in tables {
            for v in good {
                assert!(rule(v).is_ok(), "{name} refused {v:?}: {:?}", rule(v));
            }
            for v in bad {
                assert!(rule(v).is_err(), "{name} accepted {v:?}");
            }
        }
    }

    #[test]
    fn control_characters_are_refused_where_they_are() {
        let cases = [
            ("server_name = \"e.com\"\nstate_root = \"/a\\nExecStartPre=/bin/x\"\n", "m.toml:2:14:", "state_root"),
            ("server_name = \"e.com\"\n[synapse.extra]\nx = \"a\\u0007\"\n", "m.toml:3:5:", "synapse.extra.x"),
            (
                "server_name = \"e.com\"\n[synapse.extra.a]\nb = [\"ok\", \"\\t\"]\n",
                "m.toml:3:12:",
                "synapse.extra.a.b.1",
            ),
            ("server_name = \"e.com\"\n[mas.extra]\n\"k\\n\" = 1\n", "m.toml:3:1:", "a key in mas.extra"),
            ("server_name = \"e.com\"\n[postgres.settings]\nwork_mem = \"8MB\\n\"\n", "m.toml:3:12:", "work_mem"),
            ("server_name = \"e.com\\u007f\"\n", "m.toml:1:15:", "U+007F"),
        ];
        assert_refused(&cases);
    }

    #[test]
    fn qr_login_conflicts_are_located() {
        let mas = "server_name = \"e.com\"\n[mas]\nenabled = true\n";
        let cases = [
            (
                format!("{mas}[mas.extra.oauth]\ndevice_code_grant_enabled = false\n"),
                "m.toml:5:29:",
                "mas.qr_login = false",
            ),
            (
                format!("{mas}[synapse.extra.experimental_features]\nmsc4108_delegation_endpoint = \"https://x\"\n"),
                "m.toml:5:31:",
                "msc4108_delegation_endpoint",
            ),
        ];
        assert_refused(&cases);
        for ok in [
            format!("{mas}qr_login = false\n[mas.extra.oauth]\ndevice_code_grant_enabled = false\n"),
            format!("{mas}migration_in_progress = true\n[mas.extra.oauth]\ndevice_code_grant_enabled = false\n"),
            format!("{mas}[mas.extra.oauth]\ndevice_code_grant_enabled = true\n"),
        ] {
            check(&ok).unwrap();
        }
    }

    #[test]
    fn managed_keys_are_located_at_the_key() {
        let cases = [
            ("server_name = \"e.com\"\n[mas.extra]\nfoo = 1\ndatabase = 1\n", "m.toml:4:1:", "mas.extra.database"),
            ("server_name = \"e.com\"\nmas.extra.http = {}\n", "m.toml:2:11:", "mas.extra.http"),
            ("server_name = \"e.com\"\n[synapse.extra]\nlisteners = []\n", "m.toml:3:1:", "synapse.extra.listeners"),
            ("server_name = \"e.com\"\n[postgres.settings]\nport = 1\n", "m.toml:3:1:", "managed by masctl"),
        ];
        assert_refused(&cases);
    }
}
