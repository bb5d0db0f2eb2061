//! Registry references pinned by digest: `repo[:tag]@sha256:<64 hex>`.

use anyhow::{Result, bail};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `registry/path/name`, as Docker spells it.
    pub repo: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`: the manifest digest the registry must serve.
    pub digest: String,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Self> {
        let Some((name, digest)) = s.split_once('@') else {
            bail!("{s:?} has no @sha256:… digest; masctl only pulls images pinned by digest");
        };
        let hex = digest.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            bail!("{s:?}: the digest must be sha256: followed by 64 lowercase hex digits");
        }
        // A `:` after the last `/` separates the tag; one before it is a registry port.
        let slash = name.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match name[slash..].rfind(':') {
            Some(i) => (&name[..slash + i], Some(name[slash + i + 1..].to_string())),
            None => (name, None),
        };
        if repo.is_empty() || repo.contains(char::is_whitespace) {
            bail!("{s:?}: bad repository name");
        }
        Ok(Reference { repo: repo.to_string(), tag, digest: digest.to_string() })
    }

    /// `repo@sha256:…`, the form a pull by digest uses and `RepoDigests` lists.
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.repo, self.digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:8cb319ec41706adc1ed8b5b63e1de2f067073cc33a304686226f658f5e83c8b3";

    #[test]
    fn parse_table() {
        let cases = [
            (format!("ghcr.io/element-hq/mas:1.22.0@{D}"), "ghcr.io/element-hq/mas", Some("1.22.0")),
            (format!("localhost:5000/base@{D}"), "localhost:5000/base", None),
            (format!("localhost:5000/base:v1@{D}"), "localhost:5000/base", Some("v1")),
        ];
        for (s, repo, tag) in cases {
            let r = Reference::parse(&s).unwrap();
            assert_eq!((r.repo.as_str(), r.tag.as_deref(), r.digest.as_str()), (repo, tag, D));
        }
        for bad in ["ghcr.io/a/b:1", "a@sha256:abc", "a@md5:00", &format!("@{D}")] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
