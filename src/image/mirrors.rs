//! Where inputs are fetched from: the host's own apt sources and pip index, or what
//! the user sets in `MASCTL_DEBIAN_MIRRORS` / `MASCTL_PYTHON_INDEX`. No mirror is
//! named in masctl itself.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// `deb` URIs of a one-line-style `sources.list`.
pub fn parse_sources_list(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        if words.next() != Some("deb") {
            continue;
        }
        let mut uri = words.next();
        if uri.is_some_and(|w| w.starts_with('[')) {
            // Skip `[opt=val …]`, which may span several words.
            let mut w = uri;
            while let Some(x) = w {
                if x.ends_with(']') {
                    break;
                }
                w = words.next();
            }
            uri = words.next();
        }
        if let Some(u) = uri {
            out.push(u.trim_end_matches('/').to_string());
        }
    }
    out
}

/// `URIs:` of deb822 `.sources` stanzas whose `Types:` include `deb`.
pub fn parse_deb822(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let f = super::deb::parse_stanza(stanza);
        let enabled = f.get("Enabled").is_none_or(|v| v != "no");
        if enabled
            && f.get("Types").is_some_and(|t| t.split_whitespace().any(|x| x == "deb"))
            && let Some(uris) = f.get("URIs")
        {
            out.extend(uris.split_whitespace().map(|u| u.trim_end_matches('/').to_string()));
        }
    }
    out
}

/// Debian mirror roots, in the host's order, without duplicates.
pub fn debian_mirrors() -> Result<Vec<String>> {
    if let Ok(v) = std::env::var("MASCTL_DEBIAN_MIRRORS") {
        return Ok(v.split_whitespace().map(|s| s.trim_end_matches('/').to_string()).collect());
    }
    let mut all = Vec::new();
    let etc = Path::new("/etc/apt");
    if let Ok(t) = std::fs::read_to_string(etc.join("sources.list")) {
        all.extend(parse_sources_list(&t));
    }
    if let Ok(rd) = std::fs::read_dir(etc.join("sources.list.d")) {
        let mut files: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            match f.extension().and_then(|e| e.to_str()) {
                Some("list") => all.extend(parse_sources_list(&text)),
                Some("sources") => all.extend(parse_deb822(&text)),
                _ => {}
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    all.retain(|u| seen.insert(u.clone()));
    if all.is_empty() {
        bail!("no Debian mirror configured: add one to /etc/apt/sources.list(.d) or set MASCTL_DEBIAN_MIRRORS");
    }
    Ok(all)
}

/// Snapshot archives to try once the live mirrors no longer have a pinned package:
/// URL templates in `MASCTL_DEBIAN_SNAPSHOT` (space-separated, e.g. one for the main
/// archive and one for security updates), each with `{timestamp}` standing for the
/// lock's resolution time. None unless the user names them.
pub fn debian_snapshots() -> Result<Vec<String>> {
    let Ok(v) = std::env::var("MASCTL_DEBIAN_SNAPSHOT") else { return Ok(Vec::new()) };
    let all: Vec<String> = v.split_whitespace().map(|s| s.trim_end_matches('/').to_string()).collect();
    if let Some(bad) = all.iter().find(|t| !t.contains("{timestamp}")) {
        bail!("MASCTL_DEBIAN_SNAPSHOT: {bad} has no {{timestamp}} to put the lock's resolution time in");
    }
    Ok(all)
}

/// The URL of `path` in a snapshot archive at `timestamp`.
pub fn snapshot_url(template: &str, timestamp: &str, path: &str) -> String {
    format!("{}/{path}", template.replace("{timestamp}", timestamp))
}

/// The Python package index (PEP 503 simple API root) the host's pip uses.
pub fn python_index() -> Result<String> {
    for var in ["MASCTL_PYTHON_INDEX", "PIP_INDEX_URL"] {
        if let Ok(v) = std::env::var(var) {
            return Ok(v.trim_end_matches('/').to_string());
        }
    }
    // pip's own configuration first, then pip's built-in default.
    let script = "import sys\nfrom pip._internal.configuration import Configuration\n\
c = Configuration(isolated=False)\nc.load()\nv = dict(c.items()).get('global.index-url') or dict(c.items()).get('install.index-url')\n\
if not v:\n    from pip._internal.models.index import PyPI\n    v = PyPI.simple_url\nprint(v)\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .context("asking the host's pip for its index (python3 not found?)")?;
    if !out.status.success() {
        bail!(
            "could not read pip's index from the host; set MASCTL_PYTHON_INDEX: {}",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_url_table() {
        let t = "http://snap.example/archive/debian/{timestamp}";
        assert_eq!(
            snapshot_url(t, "20260804T100000Z", "pool/main/a/a.deb"),
            "http://snap.example/archive/debian/20260804T100000Z/pool/main/a/a.deb"
        );
    }

    #[test]
    fn sources_list_table() {
        let text = "# comment\ndeb http://m.example/debian bookworm main\n\
deb [arch=amd64 signed-by=/k.gpg] http://m.example/sec/ bookworm-security main\n\
deb-src http://m.example/debian bookworm main\n";
        assert_eq!(parse_sources_list(text), ["http://m.example/debian", "http://m.example/sec"]);
    }

    #[test]
    fn deb822_table() {
        let text = "Types: deb\nURIs: http://a.example/debian\nSuites: bookworm\n\n\
Types: deb-src\nURIs: http://b.example/debian\n\n\
Types: deb deb-src\nURIs: http://c.example/x http://d.example/y/\nEnabled: yes\n\n\
Types: deb\nURIs: http://e.example/z\nEnabled: no\n";
        assert_eq!(parse_deb822(text), ["http://a.example/debian", "http://c.example/x", "http://d.example/y"]);
    }
}
