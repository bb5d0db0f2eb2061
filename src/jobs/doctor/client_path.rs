//! The path a client such as Element X follows over the public hostname, step by
//! step: the well-known document, `auth_metadata` at the base URL it names, MAS's
//! discovery at the issuer, the compatibility routes, the edge among MAS's trusted
//! proxies, the QR-login rendezvous and every hostname's certificate chain.
//!
//! Pure: `client_fetch` fetches what each step needs into [`Observed`] (following
//! the URLs the answers name, as a client does); [`walk`] turns that into one
//! finding per step, each failure naming the two values that disagree and the
//! setting to change.

use std::net::IpAddr;

use serde_json::Value;

use super::finding::{Finding, Level};
use crate::generation::manifest::MasState;

/// Every walk line starts with this (how a reader, or a test, finds them).
pub const PREFIX: &str = "client path: ";
pub const AUTH_METADATA: &str = "_matrix/client/v1/auth_metadata";
pub const AUTH_METADATA_UNSTABLE: &str = "_matrix/client/unstable/org.matrix.msc2965/auth_metadata";
pub const LOGIN: &str = "_matrix/client/v3/login";
pub const LOGOUT: &str = "_matrix/client/v3/logout";
pub const REFRESH: &str = "_matrix/client/v3/refresh";
pub const RENDEZVOUS: &str = "_matrix/client/unstable/org.matrix.msc4108/rendezvous";
/// A refresh token no MAS ever issued: MAS refuses it without side effects.
pub const BOGUS_REFRESH: &str = "{\"refresh_token\":\"masctl-doctor-not-a-token\"}";

/// MAS's `http.trusted_proxies` when the config leaves it out, as masctl's does
/// (MAS's code, crates/config/src/sections/http.rs; its docs say 10/8).
const MAS_TRUSTED_PROXIES: [&str; 6] =
    ["192.168.0.0/16", "172.16.0.0/12", "10.0.0.0/10", "127.0.0.0/8", "fd00::/8", "::1/128"];

/// How MAS figures in the generation, as the walk needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mas {
    Off,
    /// Enabled, but Synapse still serves logins (`migration_in_progress`).
    Migrating,
    On {
        public_base: String,
        qr_login: bool,
    },
}

/// What the generation says a client should find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// The server name's host: where the well-known document is.
    pub server_host: String,
    /// `https://<hostnames.matrix>/`.
    pub base_url: String,
    pub mas: Mas,
    /// Every hostname the edge serves, without ports.
    pub hostnames: Vec<String>,
    /// `edge.tls = "plain"`: a proxy in front of masctl serves the public names.
    pub plain: bool,
    /// `[edge] trust`: the roots to verify chains with instead of the system's.
    pub trust: Option<String>,
    /// `[edge] extra_ca`: CAs trusted besides the system's roots.
    pub extra_ca: Vec<String>,
}

fn host_only(h: &str) -> String {
    h.split(':').next().unwrap_or(h).to_string()
}

impl Expect {
    /// From the generation's manifest (its config as evaluated, and MAS's state).
    pub fn from_generation(server_name: &str, config: &Value, mas: &MasState) -> Expect {
        let s = |v: &Value| v.as_str().map(str::to_string);
        let matrix = s(&config["hostnames"]["matrix"]).unwrap_or_else(|| format!("matrix.{server_name}"));
        let mas_host = s(&config["mas"]["hostname"]).unwrap_or_else(|| matrix.clone());
        let mut hostnames: Vec<String> = Vec::new();
        let mut names = vec![matrix.clone()];
        if mas.enabled {
            names.push(mas_host.clone());
        }
        names.push(server_name.to_string());
        for n in names.iter().map(|n| host_only(n)) {
            if !hostnames.contains(&n) {
                hostnames.push(n);
            }
        }
        let mas = match (mas.enabled, mas.delegating) {
            (false, _) => Mas::Off,
            (true, false) => Mas::Migrating,
            (true, true) => Mas::On {
                public_base: format!("https://{mas_host}{}/", mas.path_prefix),
                qr_login: config["mas"]["qr_login"].as_bool().unwrap_or(true),
            },
        };
        Expect {
            server_host: host_only(server_name),
            base_url: format!("https://{matrix}/"),
            mas,
            hostnames,
            plain: config["edge"]["tls"].as_str().unwrap_or("plain") == "plain",
            trust: s(&config["edge"]["trust"]),
            extra_ca: config["edge"]["extra_ca"].as_array().into_iter().flatten().filter_map(s).collect(),
        }
    }

    pub fn wellknown_url(&self) -> String {
        format!("https://{}/.well-known/matrix/client", self.server_host)
    }
}

/// One request's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    Answer {
        status: u16,
        body: String,
    },
    /// The TLS handshake failed: the chain is not trusted, expired, for another name…
    Tls(String),
    /// No answer: the name does not resolve, nothing listens, a timeout.
    Unreachable(String),
}

impl Fetched {
    fn json(&self) -> Option<(u16, Value)> {
        match self {
            Fetched::Answer { status, body } => Some((*status, serde_json::from_str(body).unwrap_or(Value::Null))),
            _ => None,
        }
    }

    /// "answered 404 M_UNRECOGNIZED", "failed TLS (…)", "is unreachable (…)".
    fn describe(&self) -> String {
        match self {
            Fetched::Answer { status, body } => {
                let errcode = serde_json::from_str::<Value>(body).ok().and_then(|v| s(&v["errcode"]));
                format!("answered {status}{}", errcode.map_or(String::new(), |e| format!(" {e}")))
            }
            Fetched::Tls(e) => format!("failed TLS ({e})"),
            Fetched::Unreachable(e) => format!("is unreachable ({e})"),
        }
    }
}

fn s(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// The QR-login rendezvous: the browsers' preflight and a session created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendezvous {
    pub preflight: Fetched,
    pub create: Fetched,
}

/// What the walk saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub wellknown: Fetched,
    pub auth_metadata: Fetched,
    pub auth_metadata_unstable: Fetched,
    /// MAS's discovery at the issuer `auth_metadata` named (none: no issuer).
    pub discovery: Option<Fetched>,
    pub login: Fetched,
    pub logout: Fetched,
    pub refresh: Fetched,
    /// Asked only with QR-code login on.
    pub rendezvous: Option<Rendezvous>,
    /// `https://<host>/` for every hostname.
    pub tls: Vec<(String, Fetched)>,
    /// The edge's address on the stack's network: what MAS sees as the peer.
    pub edge_ip: Option<IpAddr>,
    /// Names this host does not resolve, asked at the edge's address instead.
    pub via_edge: Vec<String>,
}

/// The base URL the walk goes on with: the one the well-known names, else the
/// expected one (the rest of the walk is still worth seeing).
pub fn base_url(e: &Expect, wellknown: &Fetched) -> String {
    let named = wellknown.json().and_then(|(_, v)| s(&v["m.homeserver"]["base_url"]));
    let b = named.unwrap_or_else(|| e.base_url.clone());
    if b.ends_with('/') { b } else { format!("{b}/") }
}

/// The issuer `auth_metadata` names.
pub fn issuer(auth_metadata: &Fetched) -> Option<String> {
    auth_metadata.json().and_then(|(status, v)| if status == 200 { s(&v["issuer"]) } else { None })
}

pub fn discovery_url(issuer: &str) -> String {
    let sep = if issuer.ends_with('/') { "" } else { "/" };
    format!("{issuer}{sep}.well-known/openid-configuration")
}

fn line(level: Level, message: String) -> Finding {
    Finding { level, message: format!("{PREFIX}{message}") }
}

fn ok(m: String) -> Finding {
    line(Level::Ok, m)
}

fn bad(m: String) -> Finding {
    line(Level::Error, m)
}

/// The one line that replaces the walk when there is nothing to walk: no MAS, or
/// MAS not serving logins yet.
pub fn skipped(e: &Expect) -> Option<Finding> {
    match e.mas {
        Mas::Off => Some(line(
            Level::Warning,
            "not walked: this generation runs no MAS ([mas] enabled = false), and Element X signs in only \
through OAuth 2.0 via MAS"
                .into(),
        )),
        Mas::Migrating => Some(line(
            Level::Warning,
            "not walked: Synapse still serves logins (mas.migration_in_progress = true); Element X cannot sign in \
until it is false"
                .into(),
        )),
        Mas::On { .. } => None,
    }
}

/// With `edge.tls = "plain"` the public names are a proxy's in front of masctl:
/// when this host cannot reach them at all, one line says the walk was not done.
pub fn not_reachable_here(e: &Expect, wellknown: &Fetched) -> Option<Finding> {
    match wellknown {
        Fetched::Unreachable(why) if e.plain => Some(line(
            Level::Warning,
            format!(
                "not walked: {} {} from this host (edge.tls = \"plain\": the proxy in front of masctl serves \
the public names; run doctor where they resolve, or check by hand as README says)",
                e.wellknown_url(),
                Fetched::Unreachable(why.clone()).describe()
            ),
        )),
        _ => None,
    }
}

/// Every step's finding, in the client's order.
pub fn walk(e: &Expect, o: &Observed) -> Vec<Finding> {
    let Mas::On { public_base, qr_login } = &e.mas else { return skipped(e).into_iter().collect() };
    let mut f = Vec::new();
    if !o.via_edge.is_empty() {
        let at = o.edge_ip.map_or("the edge".to_string(), |ip| format!("the edge at {ip}"));
        f.push(line(
            Level::Warning,
            format!(
                "{} do not resolve on this host: asked {at} directly (clients need DNS records for them)",
                o.via_edge.join(", ")
            ),
        ));
    }
    // A step that failed TLS on a hostname whose chain is reported below says no more.
    let untrusted: Vec<String> =
        o.tls.iter().filter(|(_, t)| matches!(t, Fetched::Tls(_))).map(|(h, _)| format!("https://{h}/")).collect();
    let said = |url: &str, x: &Fetched| matches!(x, Fetched::Tls(_)) && untrusted.iter().any(|h| url.starts_with(h));
    if !said(&e.wellknown_url(), &o.wellknown) {
        f.extend(wellknown(e, &o.wellknown, public_base));
    }
    let base = base_url(e, &o.wellknown);
    let mut step = |url: String, x: &Fetched, check: &dyn Fn(&str, &Fetched) -> Finding| {
        if !said(&url, x) {
            f.push(check(&url, x));
        }
    };
    step(format!("{base}{AUTH_METADATA}"), &o.auth_metadata, &|u, x| auth_metadata(u, x, public_base));
    step(format!("{base}{AUTH_METADATA_UNSTABLE}"), &o.auth_metadata_unstable, &|u, x| {
        auth_metadata(u, x, public_base)
    });
    // At a wrong issuer, MAS's discovery is not worth a second line.
    if let (Some(issuer), Some(d)) = (issuer(&o.auth_metadata), &o.discovery)
        && issuer == *public_base
    {
        step(discovery_url(&issuer), d, &|_, x| discovery(&issuer, x, public_base));
    }
    step(format!("{base}{LOGIN}"), &o.login, &login);
    step(format!("{base}{LOGOUT}"), &o.logout, &compat);
    step(format!("{base}{REFRESH}"), &o.refresh, &compat);
    f.push(trusted_proxy(o.edge_ip));
    if *qr_login {
        let url = format!("{base}{RENDEZVOUS}");
        let create = o.rendezvous.as_ref().map(|r| &r.create);
        if !create.is_some_and(|c| said(&url, c)) {
            f.push(rendezvous(&url, o.rendezvous.as_ref()));
        }
    }
    f.extend(tls(e, &o.tls));
    f
}

fn trim_slash(u: &str) -> &str {
    u.trim_end_matches('/')
}

fn wellknown(e: &Expect, w: &Fetched, public_base: &str) -> Vec<Finding> {
    let url = e.wellknown_url();
    let named = w.json().filter(|(st, _)| *st == 200).map(|(_, v)| v);
    let Some(doc) = named else {
        return vec![bad(format!(
            "{url} {} ≠ a document naming {} — the edge serves it for server_name with edge.tls = \"acme\" or \
\"files\"; a proxy in front must pass /.well-known/matrix/ to it",
            w.describe(),
            e.base_url
        ))];
    };
    let mut out = Vec::new();
    match s(&doc["m.homeserver"]["base_url"]) {
        Some(b) if trim_slash(&b) == trim_slash(&e.base_url) => out.push(ok(format!("{url} names base_url {b}"))),
        got => out.push(bad(format!(
            "base_url {} from {url} ≠ hostnames.matrix {} — set [hostnames] matrix, or fix what answers for {}",
            got.as_deref().unwrap_or("(none)"),
            e.base_url,
            e.server_host
        ))),
    }
    if let Some(i) = s(&doc["org.matrix.msc2965.authentication"]["issuer"])
        && i != public_base
    {
        out.push(bad(format!(
            "issuer {i} from {url} ≠ mas.public_base {public_base} — set [mas] hostname and path_prefix \
(public_base is https://<mas.hostname><mas.path_prefix>/), or fix what answers for {}",
            e.server_host
        )));
    }
    out
}

fn auth_metadata(url: &str, a: &Fetched, public_base: &str) -> Finding {
    match (issuer(a), a) {
        (Some(i), _) if i == public_base => ok(format!("{url}: issuer {i} = mas.public_base")),
        (Some(i), _) => bad(format!(
            "issuer {i} from {url} ≠ mas.public_base {public_base} — set [mas] hostname and path_prefix \
(public_base is https://<mas.hostname><mas.path_prefix>/), or fix the proxy in front"
        )),
        (None, Fetched::Answer { status: 404, .. }) => bad(format!(
            "{url} answered 404 ≠ MAS's metadata: Synapse is not delegating to MAS, or the route does not reach \
it — set mas.migration_in_progress = false and `masctl switch`; a proxy in front must pass /_matrix/ to the edge"
        )),
        (None, other) => bad(format!("{url} {} ≠ 200 with an issuer {public_base}", other.describe())),
    }
}

/// MAS's own discovery agrees with `auth_metadata`: the same issuer, and every
/// endpoint under the public base (MAS builds them from `http.public_base`, never
/// from the Host or forwarded headers).
fn discovery(issuer: &str, d: &Fetched, public_base: &str) -> Finding {
    let url = discovery_url(issuer);
    let Some((200, doc)) = d.json() else {
        return bad(format!("{url} {} ≠ MAS's discovery document", d.describe()));
    };
    let theirs = s(&doc["issuer"]).unwrap_or_default();
    if theirs != issuer {
        return bad(format!(
            "issuer {theirs} in {url} ≠ issuer {issuer} from auth_metadata — Synapse reaches another MAS than the \
public names do: check [mas] hostname and path_prefix, and what answers for them"
        ));
    }
    let endpoints: Vec<(String, String)> = doc
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.ends_with("_endpoint") || k.ends_with("_uri"))
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let outside: Vec<&(String, String)> = endpoints.iter().filter(|(_, v)| !v.starts_with(public_base)).collect();
    match outside.first() {
        None => ok(format!("{url} agrees: issuer {issuer}, {} endpoints under it", endpoints.len())),
        Some((k, v)) => bad(format!(
            "{k} {v} in {url} ≠ under mas.public_base {public_base} ({} endpoint(s) outside) — MAS builds its URLs \
from http.public_base: set [mas] hostname and path_prefix",
            outside.len()
        )),
    }
}

const COMPAT_FIX: &str = "the edge sends /_matrix/client/*/(login|logout|refresh) to MAS while \
mas.migration_in_progress = false; a proxy in front must pass them to the edge unchanged";

/// GET `/login` from MAS lists an `m.login.sso` flow marked OAuth-aware (as
/// `mas-cli doctor` tells them apart); Synapse delegating to MAS answers 404.
fn login(url: &str, a: &Fetched) -> Finding {
    let flows = a.json().filter(|(st, _)| *st == 200).map(|(_, v)| v["flows"].as_array().cloned().unwrap_or_default());
    let Some(flows) = flows else {
        return bad(format!("GET {url} {} ≠ MAS's login flows — {COMPAT_FIX}", a.describe()));
    };
    let by_mas = flows.iter().any(|f| {
        f["type"] == "m.login.sso"
            && (f["oauth_aware_preferred"] == true || f["org.matrix.msc3824.delegated_oidc_compatibility"] == true)
    });
    if by_mas {
        ok(format!("GET {url} is answered by MAS (an OAuth-aware m.login.sso flow)"))
    } else {
        let types: Vec<String> = flows.iter().filter_map(|f| s(&f["type"])).collect();
        bad(format!("GET {url} lists flows [{}] ≠ MAS's OAuth-aware m.login.sso — {COMPAT_FIX}", types.join(", ")))
    }
}

/// POST `/logout` (no token) and `/refresh` (a bogus token): MAS refuses them
/// with a Matrix error; Synapse, delegating, does not know the route (404).
fn compat(url: &str, a: &Fetched) -> Finding {
    let answer = a.json().map(|(st, v)| (st, s(&v["errcode"])));
    match answer {
        Some((st, Some(code))) if st != 404 && code != "M_UNRECOGNIZED" => {
            ok(format!("POST {url} is answered by MAS ({st} {code})"))
        }
        _ => bad(format!("POST {url} {} ≠ MAS's compatibility layer — {COMPAT_FIX}", a.describe())),
    }
}

/// Whether `ip` is in the `a.b.c.d/n` or `x::/n` network `cidr`.
fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let Some((net, len)) = cidr.split_once('/') else { return false };
    let (Ok(net), Ok(len)) = (net.parse::<IpAddr>(), len.parse::<u32>()) else { return false };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// MAS takes the client's address (rate limits, the policy's requester, logs)
/// from the edge's `X-Forwarded-For` only when the edge is a trusted proxy.
fn trusted_proxy(edge: Option<IpAddr>) -> Finding {
    let Some(ip) = edge else {
        return bad("the edge has no address on the stack's network ≠ one among MAS's trusted proxies".into());
    };
    if MAS_TRUSTED_PROXIES.iter().any(|c| in_cidr(ip, c)) {
        ok(format!("the edge ({ip}) is among MAS's trusted proxies: its X-Forwarded-For is honoured"))
    } else {
        bad(format!(
            "the edge's address {ip} ∉ MAS's trusted_proxies ({}) — MAS ignores its X-Forwarded-For: give Docker's \
networks a private address pool (default-address-pools in /etc/docker/daemon.json)",
            MAS_TRUSTED_PROXIES.join(", ")
        ))
    }
}

fn rendezvous(url: &str, r: Option<&Rendezvous>) -> Finding {
    let fix = "Synapse's rendezvous (experimental_features.msc4108_enabled) is off or not routed — `masctl switch` \
the config; a proxy in front must pass /_matrix/client/unstable/org.matrix.msc4108/ to the edge; or set [mas] \
qr_login = false";
    let Some(r) = r else { return bad(format!("{url} was not asked ≠ asked while mas.qr_login = true")) };
    let status = |f: &Fetched| match f {
        Fetched::Answer { status, .. } => Some(*status),
        _ => None,
    };
    match (status(&r.preflight), status(&r.create)) {
        (Some(p), Some(c)) if (200..300).contains(&p) && (200..300).contains(&c) => {
            ok(format!("{url} answers (OPTIONS {p}, POST {c}): QR-code login can start"))
        }
        (Some(p), _) if !(200..300).contains(&p) => {
            bad(format!("OPTIONS {url} {} ≠ 2xx while mas.qr_login = true — {fix}", r.preflight.describe()))
        }
        _ => bad(format!("POST {url} {} ≠ 201 while mas.qr_login = true — {fix}", r.create.describe())),
    }
}

fn tls(e: &Expect, hosts: &[(String, Fetched)]) -> Vec<Finding> {
    let roots = match (&e.trust, e.extra_ca.is_empty()) {
        (Some(t), _) => format!("[edge] trust {t}"),
        (None, true) => "the system's roots".to_string(),
        (None, false) => format!("the system's roots and [edge] extra_ca {}", e.extra_ca.join(", ")),
    };
    let mut out = Vec::new();
    let mut good = Vec::new();
    for (host, f) in hosts {
        match f {
            Fetched::Answer { .. } => good.push(host.clone()),
            Fetched::Tls(why) => out.push(bad(format!(
                "the certificate chain of https://{host}/ ≠ one {roots} vouch for ({why}) — with edge.tls = \"files\" \
set [edge] certificate to the full chain; with \"acme\" see `masctl logs proxy`"
            ))),
            Fetched::Unreachable(why) => out.push(bad(format!(
                "https://{host}/ is unreachable ({why}) ≠ served by the edge — point {host}'s DNS at this host and \
open [edge] https"
            ))),
        }
    }
    if !good.is_empty() {
        out.insert(0, ok(format!("TLS: {} present chains {roots} vouch for", good.join(", "))));
    }
    out
}

#[cfg(test)]
#[path = "client_path_tests.rs"]
mod tests;
