//! The built-in "appservice double puppet" registration (as the playbook's
//! matrix-appservice-double-puppet has it): no URL, so Synapse pushes nothing and
//! queries nothing; a non-exclusive namespace over every local user, so bridges
//! holding its as_token can act as any existing local user (`?user_id=`) without
//! taking the users over. Rendered as JSON, which Synapse's YAML loader reads.

use serde_json::{Value, json};

pub const ID: &str = "double-puppet";
pub const SENDER_LOCALPART: &str = "appservice-double-puppet";
/// Its file in `secrets/appservices/` (the content never changes: the tokens are
/// generated once, the namespace is the server name).
pub const FILE: &str = "double-puppet.yaml";

/// `server_name` with every regex metacharacter escaped (Python `re` syntax).
pub fn escape_regex(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The registration file; the tokens come from masctl's secrets (never derived
/// from another secret, unlike the playbook).
pub fn registration(server_name: &str, as_token: &str, hs_token: &str) -> Value {
    json!({
        "id": ID,
        "url": null,
        "as_token": as_token,
        "hs_token": hs_token,
        "sender_localpart": SENDER_LOCALPART,
        "rate_limited": false,
        "namespaces": {
            "users": [{"exclusive": false, "regex": format!("@.*:{}$", escape_regex(server_name))}],
            "aliases": [],
            "rooms": [],
        },
    })
}

/// What a bridge's config takes (`double_puppet.secrets` in the Go mautrix
/// bridges, the login shared secret in the Python ones); the README tells it.
#[cfg_attr(not(test), allow(dead_code))]
pub fn bridge_secret(as_token: &str) -> String {
    format!("as_token:{as_token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_table() {
        for (raw, want) in [("test.local", r"test\.local"), ("a-b.c:8448", r"a\-b\.c:8448"), ("x", "x")] {
            assert_eq!(escape_regex(raw), want);
        }
    }

    #[test]
    fn registration_has_the_playbooks_shape() {
        let r = registration("example.org", "AS", "HS");
        assert_eq!(r["url"], Value::Null);
        assert!(r.as_object().unwrap().contains_key("url"), "Synapse needs an explicit null");
        assert_eq!(r["namespaces"]["users"][0]["exclusive"], false);
        assert_eq!(r["namespaces"]["users"][0]["regex"], r"@.*:example\.org$");
        assert_eq!((r["as_token"].as_str(), r["hs_token"].as_str()), (Some("AS"), Some("HS")));
        assert_eq!(bridge_secret("AS"), "as_token:AS");
    }

    #[test]
    fn registration_passes_masctls_own_checks() {
        let text = serde_json::to_string_pretty(&registration("a-b.example.org", "AS", "HS")).unwrap();
        let r = super::super::registration::parse(&text).unwrap();
        assert_eq!((r.id.0.as_str(), r.url), (ID, None));
        assert_eq!(r.sender_localpart.0, SENDER_LOCALPART);
    }
}
