//! Checks on a parsed config that serde cannot express, each with a location.

use std::net::IpAddr;
use std::path::Path;

use anyhow::Result;

use super::{Config, at};
use crate::image::reference::Reference;

/// Keys of `homeserver.yaml` that masctl owns: overriding them would break the stack.
pub const MANAGED_SYNAPSE_KEYS: [&str; 10] = [
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
];

fn valid_hostname(h: &str) -> bool {
    let host = match h.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => h,
    };
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// `IP:PORT` or `PORT` (then on loopback).
pub fn parse_publish(s: &str) -> Option<(String, u16)> {
    match s.rsplit_once(':') {
        Some((ip, port)) => {
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            ip.parse::<IpAddr>().ok()?;
            Some((ip.to_string(), port.parse().ok().filter(|p| *p > 0)?))
        }
        None => Some(("127.0.0.1".into(), s.parse().ok().filter(|p| *p > 0)?)),
    }
}

pub fn validate(c: &Config, path: &Path, text: &str) -> Result<()> {
    let err = |span: std::ops::Range<usize>, msg: String| at(path, text, span, msg);
    if !valid_hostname(c.server_name.get_ref()) {
        return Err(err(c.server_name.span(), format!("server_name {:?} is not a host name", c.server_name.get_ref())));
    }
    if let Some(h) = &c.hostnames.matrix
        && !valid_hostname(h.get_ref())
    {
        return Err(err(h.span(), format!("hostnames.matrix {:?} is not a host name", h.get_ref())));
    }
    let inst = c.instance.get_ref();
    if inst.is_empty()
        || inst.len() > 40
        || !inst.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
    {
        return Err(err(c.instance.span(), format!("instance {inst:?} must be 1-40 of a-z, 0-9 and -")));
    }
    if !c.state_root.get_ref().starts_with('/') {
        return Err(err(c.state_root.span(), "state_root must be an absolute path".into()));
    }
    for img in [&c.images.postgres, &c.images.synapse, &c.images.mas, &c.images.proxy] {
        let v = img.get_ref();
        if v.contains('/') || v.contains('@') || v.contains(':') {
            if let Err(e) = Reference::parse(v) {
                return Err(err(img.span(), format!("{e:#}")));
            }
        } else if v.is_empty() || !v.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
            return Err(err(
                img.span(),
                format!("{v:?} is neither an image recipe name nor a repo@sha256:… reference"),
            ));
        }
    }
    for (k, v) in &c.postgres.settings {
        let ok_key = !k.is_empty() && k.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '.');
        let ok_val = matches!(
            v.get_ref(),
            toml::Value::String(_) | toml::Value::Integer(_) | toml::Value::Boolean(_) | toml::Value::Float(_)
        );
        if !ok_key || !ok_val {
            return Err(err(
                v.span(),
                format!("postgres.settings.{k} must be a setting name with a string, number or boolean"),
            ));
        }
    }
    let level = c.synapse.log_level.get_ref();
    if !["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"].contains(&level.as_str()) {
        return Err(err(
            c.synapse.log_level.span(),
            format!("log_level {level:?} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ));
    }
    for key in c.synapse.extra.get_ref().keys() {
        if MANAGED_SYNAPSE_KEYS.contains(&key.as_str()) {
            // Point at the key itself: the first line after the table's start that defines it.
            let start = c.synapse.extra.span().start.min(text.len());
            let mut offset = start;
            let mut local = start;
            for line in text[start..].split_inclusive('\n') {
                let t = line.trim_start();
                if t.strip_prefix(key.as_str()).is_some_and(|r| r.starts_with([' ', '=', '.'])) {
                    local = offset + (line.len() - t.len());
                    break;
                }
                offset += line.len();
            }
            return Err(err(
                local..local,
                format!("synapse.extra.{key} is managed by masctl and cannot be overridden"),
            ));
        }
    }
    if parse_publish(c.ports.synapse.get_ref()).is_none() {
        return Err(err(
            c.ports.synapse.span(),
            format!("ports.synapse {:?} is not IP:PORT or PORT", c.ports.synapse.get_ref()),
        ));
    }
    validate_mas(c, &err)?;
    Ok(())
}

/// A ULID: 26 Crockford base32 characters, the first at most `7`.
pub fn valid_ulid(s: &str) -> bool {
    const ALPHABET: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    s.len() == 26 && s.chars().all(|c| ALPHABET.contains(c)) && s.as_bytes()[0] <= b'7'
}

type ErrAt<'a> = &'a dyn Fn(std::ops::Range<usize>, String) -> anyhow::Error;

fn validate_mas(c: &Config, err: ErrAt) -> Result<()> {
    let m = &c.mas;
    if let Some(h) = &m.hostname
        && !valid_hostname(h.get_ref())
    {
        return Err(err(h.span(), format!("mas.hostname {:?} is not a host name", h.get_ref())));
    }
    let p = m.path_prefix.get_ref();
    if !p.starts_with('/') || (p.len() > 1 && p.ends_with('/')) || p.contains(char::is_whitespace) {
        return Err(err(m.path_prefix.span(), format!("mas.path_prefix {p:?} must start with / and not end with /")));
    }
    if p == "/" || p.starts_with("/_matrix") || p.starts_with("/_synapse") {
        return Err(err(m.path_prefix.span(), format!("mas.path_prefix {p:?} would shadow Synapse's paths")));
    }
    match m.email.transport.get_ref().as_str() {
        "none" => {}
        "smtp" => {
            if m.email.hostname.is_none() {
                return Err(err(m.email.transport.span(), "mas.email: transport smtp needs a hostname".into()));
            }
            if let Some(mode) = &m.email.mode
                && !["plain", "starttls", "tls"].contains(&mode.get_ref().as_str())
            {
                return Err(err(
                    mode.span(),
                    format!("mas.email.mode {:?} is not plain, starttls or tls", mode.get_ref()),
                ));
            }
        }
        other => {
            return Err(err(m.email.transport.span(), format!("mas.email.transport {other:?} is not none or smtp")));
        }
    }
    let secret_files = m
        .email
        .password_file
        .iter()
        .chain(m.upstream_oauth2.providers.iter().filter_map(|p| p.client_secret_file.as_ref()));
    for f in secret_files {
        if !f.get_ref().starts_with('/') {
            return Err(err(f.span(), format!("{:?}: secret files must be absolute paths", f.get_ref())));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for p in &m.upstream_oauth2.providers {
        if !valid_ulid(p.id.get_ref()) {
            let msg =
                format!("provider id {:?} is not a ULID (26 characters of 0-9A-Z without I, L, O, U)", p.id.get_ref());
            return Err(err(p.id.span(), msg));
        }
        if !seen.insert(p.id.get_ref().clone()) {
            return Err(err(p.id.span(), format!("provider id {} is used twice", p.id.get_ref())));
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
            ("server_name = \"e.com\"\ninstance = \"Big\"\n", "m.toml:2:12:", "instance"),
            ("server_name = \"e.com\"\n[postgres.settings]\nx = [1]\n", "m.toml:3:5:", "postgres.settings.x"),
            ("server_name = 5\n", "m.toml:1:15:", "invalid type"),
            ("[synapse]\n", "m.toml:1:1:", "server_name"),
        ];
        for (text, loc, what) in cases {
            let e = check(text).unwrap_err();
            assert!(e.starts_with(loc) && e.contains(what), "{text:?} gave {e}");
            assert!(!e.contains('\n'), "{e}");
        }
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
            (format!("{base}{}", provider.replace("TNF", "TNI")), "m.toml:5:6:", "ULID"),
            (format!("{base}{provider}client_secret_file = \"rel\"\n"), "m.toml:8:22:", "absolute"),
        ];
        for (text, loc, what) in cases {
            let e = check(&text).unwrap_err();
            assert!(e.starts_with(loc) && e.contains(what), "{text:?} gave {e}");
        }
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
        ] {
            let got = super::parse_publish(s);
            assert_eq!(got.as_ref().map(|(a, b)| (a.as_str(), *b)), want, "{s}");
        }
    }
}
