//! `[edge] trust`: the roots Synapse and MAS trust instead of the system's, for a
//! federation or an identity provider behind a private CA; `[edge] extra_ca`: CAs
//! they trust besides their image's roots, as one bundle in their config entry.

use super::{Entry, Inputs};
use crate::config::Config;
use crate::service::Service;
use crate::spec::{Bind, ServiceSpec};

/// Where Synapse and MAS find `[edge] trust` (they use it instead of the system roots).
pub const TRUST_IN: &str = "/etc/masctl-trust/roots.pem";

/// The roots, mounted read-only (Synapse names them in `federation_custom_ca_list`;
/// MAS's HTTP client, like OpenSSL, reads `SSL_CERT_FILE`).
pub fn trust_bind(c: &Config) -> Option<Bind> {
    c.edge.trust.as_ref().map(|t| Bind::ro(t.get_ref(), TRUST_IN))
}

/// The bundle's name in a service's config entry.
const BUNDLE: &str = "ca-bundle.pem";

/// Adds the service's combined bundle (built with `[edge] extra_ca`) to its config
/// entry, before the entry's path is taken; whether there was one.
pub fn add_bundle(inp: &Inputs, service: Service, conf: &mut Entry) -> bool {
    let Some(bundle) = inp.ca_bundles.get(&service) else { return false };
    conf.add(BUNDLE, bundle.as_bytes());
    true
}

/// Points the service's TLS clients (OpenSSL's, rustls's native roots) at the bundle
/// in its config directory, mounted at `config_in`.
pub fn use_bundle(spec: &mut ServiceSpec, config_in: &str) {
    spec.env.push(format!("SSL_CERT_FILE={config_in}/{BUNDLE}"));
}
