//! The walk's edge: the requests a client makes, over the public names, verifying
//! chains with the roots `[edge] trust` names (as MAS and Synapse do), else the
//! system's. A name this host does not resolve is asked at the edge's address on
//! the stack's network (TLS and Host still for that name), and the walk says so.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use ureq::tls::{PemItem, RootCerts, TlsConfig};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::DefaultConnector;

use super::client_path::{self as path, Expect, Fetched, Observed, Rendezvous};
use super::finding::Finding;

/// The system's resolver, then the edge's address for names it does not know.
struct EdgeResolver {
    edge: Option<IpAddr>,
    fell_back: Arc<Mutex<BTreeSet<String>>>,
}

impl std::fmt::Debug for EdgeResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EdgeResolver({:?})", self.edge)
    }
}

impl Resolver for EdgeResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        match (DefaultResolver::default().resolve(uri, config, timeout), self.edge) {
            (Err(_), Some(ip)) => {
                let host = uri.host().unwrap_or_default().to_string();
                self.fell_back.lock().unwrap().insert(host);
                let mut out = self.empty();
                out.push(SocketAddr::new(ip, uri.port_u16().unwrap_or(443)));
                Ok(out)
            }
            (r, _) => r,
        }
    }
}

/// Where Debian keeps the system's roots (read with `[edge] extra_ca`, since the
/// platform verifier takes no extra roots).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

fn roots(e: &Expect) -> Result<RootCerts> {
    let files: Vec<(&str, &str)> = match (&e.trust, e.extra_ca.is_empty()) {
        (Some(t), _) => vec![("[edge] trust", t.as_str())],
        (None, true) => return Ok(RootCerts::PlatformVerifier),
        (None, false) => {
            let system = Some(("the system's roots", SYSTEM_ROOTS)).filter(|_| Path::new(SYSTEM_ROOTS).exists());
            system.into_iter().chain(e.extra_ca.iter().map(|f| ("[edge] extra_ca", f.as_str()))).collect()
        }
    };
    let mut certs = Vec::new();
    for (what, f) in files {
        let pem = std::fs::read(f).with_context(|| format!("reading {what} {f}"))?;
        for item in ureq::tls::parse_pem(&pem) {
            if let PemItem::Certificate(c) = item.with_context(|| format!("{what} {f}"))? {
                certs.push(c);
            }
        }
    }
    Ok(RootCerts::new_with_certs(&certs))
}

fn agent(e: &Expect, edge: Option<IpAddr>, fell_back: Arc<Mutex<BTreeSet<String>>>) -> Result<ureq::Agent> {
    let config = ureq::Agent::config_builder()
        .tls_config(TlsConfig::builder().root_certs(roots(e)?).build())
        .timeout_global(Some(Duration::from_secs(15)))
        // A refusal's status and body are what the walk reads.
        .http_status_as_error(false)
        .build();
    Ok(ureq::Agent::with_parts(config, DefaultConnector::default(), EdgeResolver { edge, fell_back }))
}

/// A failed request: the TLS handshake, or no answer at all.
fn failed(err: ureq::Error) -> Fetched {
    let text = err.to_string();
    let tls = matches!(err, ureq::Error::Tls(_) | ureq::Error::Rustls(_))
        || ["certificate", "tls", "handshake"].iter().any(|w| text.to_lowercase().contains(w));
    if tls { Fetched::Tls(text) } else { Fetched::Unreachable(text) }
}

fn fetched(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Fetched {
    match r {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            Fetched::Answer { status, body }
        }
        Err(e) => failed(e),
    }
}

fn get(a: &ureq::Agent, url: &str) -> Fetched {
    fetched(a.get(url).header("Accept", "application/json").call())
}

fn post(a: &ureq::Agent, url: &str, content_type: &str, body: &str) -> Fetched {
    fetched(a.post(url).header("Content-Type", content_type).send(body.as_bytes()))
}

/// The walk: each request as the client makes it, then the pure checks.
pub fn walk(e: &Expect, edge: Option<IpAddr>) -> Result<Vec<Finding>> {
    if let Some(f) = path::skipped(e) {
        return Ok(vec![f]);
    }
    // Plain: the public names are not the edge's to answer for.
    let fallback = if e.plain { None } else { edge };
    let fell_back = Arc::new(Mutex::new(BTreeSet::new()));
    let a = agent(e, fallback, fell_back.clone())?;
    let wellknown = get(&a, &e.wellknown_url());
    if let Some(f) = path::not_reachable_here(e, &wellknown) {
        return Ok(vec![f]);
    }
    let base = path::base_url(e, &wellknown);
    let auth_metadata = get(&a, &format!("{base}{}", path::AUTH_METADATA));
    let discovery = path::issuer(&auth_metadata).map(|i| get(&a, &path::discovery_url(&i)));
    let qr = matches!(e.mas, path::Mas::On { qr_login: true, .. });
    let rendezvous_url = format!("{base}{}", path::RENDEZVOUS);
    let observed = Observed {
        auth_metadata_unstable: get(&a, &format!("{base}{}", path::AUTH_METADATA_UNSTABLE)),
        login: get(&a, &format!("{base}{}", path::LOGIN)),
        logout: post(&a, &format!("{base}{}", path::LOGOUT), "application/json", "{}"),
        refresh: post(&a, &format!("{base}{}", path::REFRESH), "application/json", path::BOGUS_REFRESH),
        rendezvous: qr.then(|| Rendezvous {
            preflight: fetched(
                a.options(&rendezvous_url)
                    .header("Origin", "https://app.element.io")
                    .header("Access-Control-Request-Method", "POST")
                    .call(),
            ),
            // A session Synapse forgets by itself a minute later.
            create: post(&a, &rendezvous_url, "text/plain", "masctl doctor"),
        }),
        tls: e.hostnames.iter().map(|h| (h.clone(), get(&a, &format!("https://{h}/")))).collect(),
        edge_ip: edge,
        via_edge: fell_back.lock().unwrap().iter().cloned().collect(),
        wellknown,
        auth_metadata,
        discovery,
    };
    Ok(path::walk(e, &observed))
}
