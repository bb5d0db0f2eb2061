//! What masctl's two admin API clients (MAS's, Synapse's) share: the HTTP agent
//! and the escaping of a URL path segment.

use std::time::Duration;

/// An agent for an admin API on the stack's network: a 30 s bound, and non-2xx
/// answers returned rather than raised, since their bodies carry the server's reason.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// `s` as one URL path segment: every byte outside RFC 3986's unreserved set
/// percent-encoded.
pub fn path_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        for (raw, want) in [
            ("alice", "alice"),
            ("a/b", "a%2Fb"),
            ("x=y+z", "x%3Dy%2Bz"),
            ("urn:mas:admin", "urn%3Amas%3Aadmin"),
            ("@alice:example.com", "%40alice%3Aexample.com"),
        ] {
            assert_eq!(path_segment(raw), want);
        }
    }
}
