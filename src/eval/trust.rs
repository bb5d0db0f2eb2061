//! `[edge] trust`: the roots Synapse and MAS trust instead of the system's, for a
//! federation or an identity provider behind a private CA.

use crate::config::Config;
use crate::spec::Bind;

/// Where Synapse and MAS find `[edge] trust` (they use it instead of the system roots).
pub const TRUST_IN: &str = "/etc/masctl-trust/roots.pem";

/// The roots, mounted read-only (Synapse names them in `federation_custom_ca_list`;
/// MAS's HTTP client, like OpenSSL, reads `SSL_CERT_FILE`).
pub fn trust_bind(c: &Config) -> Option<Bind> {
    c.edge.trust.as_ref().map(|t| Bind::ro(t.get_ref(), TRUST_IN))
}
