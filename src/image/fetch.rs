//! The input cache (`cache/<sha256>`) and the downloads that fill it. Every read is
//! verified against the lock; a mismatch is an error naming the input.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};

use super::lock::{Pin, PinKind};
use super::mirrors;
use crate::fsutil;
use crate::ui;

pub struct Cache {
    dir: PathBuf,
}

/// Where inputs may come from; resolved lazily so a warm cache needs no network config.
#[derive(Default)]
pub struct Sources {
    debian: Option<Vec<String>>,
    snapshots: Option<Vec<String>>,
    python: Option<String>,
}

impl Sources {
    fn debian(&mut self) -> Result<&[String]> {
        if self.debian.is_none() {
            self.debian = Some(mirrors::debian_mirrors()?);
        }
        Ok(self.debian.as_deref().unwrap_or_default())
    }
    fn snapshots(&mut self) -> Result<&[String]> {
        if self.snapshots.is_none() {
            self.snapshots = Some(mirrors::debian_snapshots()?);
        }
        Ok(self.snapshots.as_deref().unwrap_or_default())
    }
    fn python(&mut self) -> Result<&str> {
        if self.python.is_none() {
            self.python = Some(mirrors::python_index()?);
        }
        Ok(self.python.as_deref().unwrap_or_default())
    }
}

pub fn http() -> ureq::Agent {
    use ureq::tls::{RootCerts, TlsConfig};
    ureq::Agent::config_builder()
        .tls_config(TlsConfig::builder().root_certs(RootCerts::PlatformVerifier).build())
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into()
}

fn get(agent: &ureq::Agent, url: &str, accept: Option<&str>) -> Result<Vec<u8>> {
    // Transport failures (a DNS hiccup, a reset connection) are retried with a short
    // backoff; an HTTP status is an answer and is not.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match get_once(agent, url, accept) {
            Err(e) if attempt < 4 && !matches!(e.downcast_ref::<ureq::Error>(), Some(ureq::Error::StatusCode(_))) => {
                ui::detail(format!("retrying {url}: {e:#}"));
                std::thread::sleep(Duration::from_millis(500 * attempt));
            }
            other => return other.with_context(|| format!("GET {url}")),
        }
    }
}

fn get_once(agent: &ureq::Agent, url: &str, accept: Option<&str>) -> Result<Vec<u8>> {
    let mut req = agent.get(url);
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    let mut resp = req.call()?;
    let mut body = Vec::new();
    resp.body_mut().as_reader().read_to_end(&mut body)?;
    Ok(body)
}

/// Joins a link found on an index page with the page's URL.
pub fn join_url(page: &str, link: &str) -> String {
    if link.contains("://") {
        return link.to_string();
    }
    if let Some(rest) = link.strip_prefix('/') {
        let scheme_end = page.find("://").map_or(0, |i| i + 3);
        let host_end = page[scheme_end..].find('/').map_or(page.len(), |i| scheme_end + i);
        return format!("{}/{rest}", &page[..host_end]);
    }
    let base = &page[..page.rfind('/').map_or(page.len(), |i| i + 1)];
    format!("{base}{link}")
}

/// Finds a wheel's download URL on the index's project page (PEP 691 JSON).
fn wheel_url(agent: &ureq::Agent, index: &str, path: &str) -> Result<String> {
    let (project, filename) = path.split_once('/').context("wheel path must be <project>/<file>")?;
    let page = format!("{index}/{project}/");
    let body = get(agent, &page, Some("application/vnd.pypi.simple.v1+json"))?;
    let json: serde_json::Value =
        serde_json::from_slice(&body).with_context(|| format!("{page} did not answer with PEP 691 JSON"))?;
    let files = json["files"].as_array().with_context(|| format!("{page}: no files list"))?;
    let f = files
        .iter()
        .find(|f| f["filename"] == filename)
        .with_context(|| format!("{filename} is not listed on {page}"))?;
    Ok(join_url(&page, f["url"].as_str().unwrap_or_default()))
}

fn sha256_of(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

impl Cache {
    pub fn new(dir: PathBuf) -> Self {
        Cache { dir }
    }

    pub fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }

    pub fn has(&self, pin: &Pin) -> bool {
        self.path(&pin.sha256).exists()
    }

    /// Reads a cached input, verifying it. Tampered or truncated files are refused.
    pub fn read(&self, pin: &Pin) -> Result<Vec<u8>> {
        let p = self.path(&pin.sha256);
        let data = std::fs::read(&p).with_context(|| format!("{} is not in the cache", pin.label))?;
        let got = sha256_of(&data);
        if got != pin.sha256 {
            bail!(
                "cached input {} is corrupt: {} has sha256 {got}, the lock pins {}; delete the file to fetch it again",
                pin.label,
                p.display(),
                pin.sha256
            );
        }
        Ok(data)
    }

    /// Downloads what the cache lacks, a few at a time, verifying each before it lands.
    /// `image` names what the pins are for, in the error when one is gone.
    pub fn fetch_missing(&self, image: &str, pins: &[Pin], sources: &mut Sources) -> Result<()> {
        let missing: Vec<&Pin> = pins.iter().filter(|p| !self.has(p)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let total: u64 = missing.iter().map(|p| p.size).sum();
        ui::step(format!("fetching {} inputs ({})", missing.len(), ui::human_bytes(total)));
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let any_deb = missing.iter().any(|p| p.kind == PinKind::Deb);
        let debian = if any_deb { sources.debian()?.to_vec() } else { vec![] };
        let snapshots = if any_deb { sources.snapshots()?.to_vec() } else { vec![] };
        let python = if missing.iter().any(|p| p.kind == PinKind::Wheel) {
            sources.python()?.to_string()
        } else {
            String::new()
        };
        let agent = http();
        let bar = ui::bytes_bar(total, "fetch");
        let queue = Mutex::new(missing.into_iter());
        let errors = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    loop {
                        let next = queue.lock().map(|mut q| q.next()).unwrap_or(None);
                        let Some(pin) = next else { break };
                        match self.download(&agent, image, pin, &debian, &snapshots, &python) {
                            Ok(()) => bar.inc(pin.size),
                            Err(e) => errors.lock().expect("not poisoned").push(e),
                        }
                    }
                });
            }
        });
        bar.finish_and_clear();
        let mut errors = errors.into_inner().expect("not poisoned");
        if let Some(e) = errors.pop() {
            return Err(e);
        }
        Ok(())
    }

    fn download(
        &self,
        agent: &ureq::Agent,
        image: &str,
        pin: &Pin,
        debian: &[String],
        snapshots: &[String],
        python: &str,
    ) -> Result<()> {
        let data = match pin.kind {
            PinKind::Deb => {
                // The live mirrors first; a snapshot archive at the lock's time after.
                let live = debian.iter().map(|m| format!("{m}/{}", pin.path));
                let snap = pin
                    .resolved
                    .iter()
                    .flat_map(|t| snapshots.iter().map(move |s| mirrors::snapshot_url(s, t, &pin.path)));
                let mut last = None;
                let mut found = None;
                for url in live.chain(snap) {
                    match get(agent, &url, None) {
                        Ok(d) => {
                            found = Some(d);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                found.ok_or_else(|| gone_error(image, pin, debian, snapshots, last))?
            }
            PinKind::Wheel => get(agent, &wheel_url(agent, python, &pin.path)?, None)?,
        };
        self.store_verified(pin, &data)
    }

    /// Writes data for `pin` into the cache if (and only if) it matches the pin.
    pub fn store_verified(&self, pin: &Pin, data: &[u8]) -> Result<()> {
        let got = sha256_of(data);
        if got != pin.sha256 || data.len() as u64 != pin.size {
            bail!(
                "downloaded {} does not match its lock: sha256 {got} ({} bytes), expected {} ({} bytes)",
                pin.label,
                data.len(),
                pin.sha256,
                pin.size
            );
        }
        fsutil::write_atomic(&self.path(&pin.sha256), data, 0o644)
    }

    /// Puts a freshly resolved input into the cache under its own hash (used by `lock`).
    pub fn insert(&self, data: &[u8]) -> Result<String> {
        std::fs::create_dir_all(&self.dir)?;
        let sha = sha256_of(data);
        fsutil::write_atomic(&self.path(&sha), data, 0o644)?;
        Ok(sha)
    }
}

/// Debian removes superseded versions from its mirrors: say what to do about it.
fn gone_error(
    image: &str,
    pin: &Pin,
    debian: &[String],
    snapshots: &[String],
    last: Option<anyhow::Error>,
) -> anyhow::Error {
    let snap = match (&pin.resolved, snapshots.is_empty()) {
        (None, _) => "the lock records no resolution time, so no snapshot archive can be asked".to_string(),
        (Some(t), true) => format!(
            "or set MASCTL_DEBIAN_SNAPSHOT to a snapshot archive's URL template with {{timestamp}} (the lock was resolved at {t})"
        ),
        (Some(t), false) => format!("nor on the snapshot archives at {t} ({})", snapshots.join(", ")),
    };
    anyhow!(
        "{} is on none of the Debian mirrors ({}): Debian removed that version since the lock was made; \
         run `masctl image lock --update {image}` to re-resolve only what is gone, {snap}: {}",
        pin.label,
        debian.join(", "),
        last.map(|e| format!("{e:#}")).unwrap_or_default()
    )
}

/// Whether `url` answers 2xx to a HEAD request (a pinned file still on a mirror).
pub fn exists(agent: &ureq::Agent, url: &str) -> bool {
    agent.head(url).call().is_ok()
}

/// Fetches a URL found by a resolver (apt, pip) while making a lock.
pub fn fetch_url(agent: &ureq::Agent, url: &str) -> Result<Vec<u8>> {
    get(agent, url, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_url_table() {
        let page = "https://idx.example/simple/twisted/";
        let cases = [
            ("https://files.example/p/t.whl", "https://files.example/p/t.whl"),
            ("/packages/t.whl#sha256=00", "https://idx.example/packages/t.whl#sha256=00"),
            ("../../packages/t.whl", "https://idx.example/simple/twisted/../../packages/t.whl"),
        ];
        for (link, want) in cases {
            assert_eq!(join_url(page, link), want);
        }
    }

    #[test]
    fn tampered_cache_is_refused_and_bad_download_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let data = b"package bytes";
        let sha = cache.insert(data).unwrap();
        let pin = Pin {
            kind: PinKind::Deb,
            resolved: None,
            label: "x.deb".into(),
            path: "pool/x.deb".into(),
            sha256: sha.clone(),
            size: 13,
        };
        assert_eq!(cache.read(&pin).unwrap(), data);
        std::fs::write(cache.path(&sha), b"package bytez").unwrap();
        let e = cache.read(&pin).unwrap_err().to_string();
        assert!(e.contains("x.deb") && e.contains("corrupt"), "{e}");

        let other = Pin { sha256: "1".repeat(64), ..pin };
        assert!(cache.store_verified(&other, data).is_err());
        assert!(!cache.path(&other.sha256).exists());
    }
}
