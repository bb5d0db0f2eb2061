//! The builder end to end: reproducibility, cache verification, Docker load and the
//! listing, against the real engine and the committed locks.

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;

use common::{Root, docker_ok, shared_cache};
use sha2::{Digest, Sha256};

fn sha256_file(p: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(p).unwrap()))
}

fn list(root: &Root) -> Vec<serde_json::Value> {
    let out = root.ok(&["image", "list", "--json"]);
    serde_json::from_str::<serde_json::Value>(&out).unwrap().as_array().unwrap().clone()
}

fn row<'a>(rows: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    rows.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("{name} not listed"))
}

/// The config blob named by `manifest.json` inside an archive, and its digest.
fn config_digest_in_archive(archive: &Path) -> String {
    let mut a = tar::Archive::new(fs::File::open(archive).unwrap());
    let mut files = std::collections::BTreeMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(p, data);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let config = manifest[0]["Config"].as_str().unwrap();
    assert!(files.contains_key("oci-layout") && files.contains_key("index.json"), "dual-format archive");
    format!("sha256:{}", hex::encode(Sha256::digest(&files[config])))
}

#[test]
fn two_independent_builds_are_byte_identical_and_check_passes() {
    let (a, b) = (Root::new(), Root::new());
    let ida = a.ok(&["image", "build", "postgres"]);
    let idb = b.ok(&["image", "build", "postgres"]);
    assert_eq!(ida, idb);
    let (ra, rb) = (list(&a), list(&b));
    let (pa, pb) = (row(&ra, "postgres"), row(&rb, "postgres"));
    let (fa, fb) = (Path::new(pa["archive"].as_str().unwrap()), Path::new(pb["archive"].as_str().unwrap()));
    assert_ne!(fa, fb, "separate stores");
    assert_eq!(sha256_file(fa), sha256_file(fb));
    a.ok(&["image", "build", "--check", "postgres"]);
}

#[test]
fn postgres_and_synapse_share_their_base_layer() {
    let root = Root::new();
    root.ok(&["image", "build", "base", "postgres", "synapse"]);
    let rows = list(&root);
    let layers = |name: &str| -> Vec<String> {
        let archive = Path::new(row(&rows, name)["archive"].as_str().unwrap());
        let meta: serde_json::Value =
            serde_json::from_slice(&fs::read(archive.with_file_name("image.json")).unwrap()).unwrap();
        meta["diff_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    };
    let (base, pg, syn) = (layers("base"), layers("postgres"), layers("synapse"));
    assert_eq!(base.len(), 1);
    assert_eq!(pg[0], base[0]);
    assert_eq!(syn[0], base[0]);
    assert_ne!(pg[1], syn[1]);
}

#[test]
fn a_tampered_cache_file_is_refused_and_nothing_reaches_the_store() {
    // Warm the shared cache, then work on a private copy of it.
    Root::new().ok(&["image", "build", "base"]);
    let cache = tempfile::tempdir().unwrap();
    for e in fs::read_dir(shared_cache()).unwrap() {
        let p = e.unwrap().path();
        if !p.file_name().unwrap().to_string_lossy().starts_with('.') {
            fs::copy(&p, cache.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    let lock = fs::read_to_string(common::fresh_images().join("base.lock")).unwrap();
    let lock: toml::Value = toml::from_str(&lock).unwrap();
    let dash = lock["deb"].as_array().unwrap().iter().find(|d| d["name"].as_str() == Some("dash")).unwrap();
    let victim = cache.path().join(dash["sha256"].as_str().unwrap());
    let mut bytes = fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&victim, bytes).unwrap();

    let root = Root::new();
    let out = root.masctl().env("MASCTL_CACHE", cache.path()).args(["image", "build", "base"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dash_") && err.contains("corrupt"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let store = root.path().join("store");
    let entries = fs::read_dir(&store).map(|rd| rd.count()).unwrap_or(0);
    assert_eq!(entries, 0, "nothing written to the store");
}

#[test]
fn load_verifies_the_id_and_is_idempotent() {
    let root = Root::new();
    let id = root.load("base");
    let rows = list(&root);
    let base = row(&rows, "base");
    assert_eq!(base["id"], id.as_str());
    assert_eq!(base["loaded"], true);
    assert!(base["size"].as_u64().unwrap() > 1_000_000);
    let archive = Path::new(base["archive"].as_str().unwrap());
    assert_eq!(config_digest_in_archive(archive), id);
    assert_eq!(docker_ok(&["image", "inspect", "-f", "{{.Id}}", &id]), id);
    // Loaded already: said so, and the same ID again.
    let again = root.masctl().args(["-v", "image", "load", "base"]).output().unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already loaded"));
    assert!(String::from_utf8_lossy(&again.stdout).contains(&id));
}

#[test]
fn list_reports_unbuilt_and_upstream_images() {
    let root = Root::new();
    let rows = list(&root);
    for r in &rows {
        for key in ["name", "id", "archive", "size", "loaded"] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
    }
    let pg = row(&rows, "postgres");
    assert!(pg["archive"].is_null() && pg["id"].is_null());
    let mas = row(&rows, "mas");
    assert_eq!(mas["kind"], "upstream");
    assert!(mas["reference"].as_str().unwrap().contains("@sha256:"));
}

#[test]
fn a_local_mas_cli_is_packed_on_the_base_and_runs_as_non_root() {
    let dist = tempfile::tempdir().unwrap();
    fs::create_dir_all(dist.path().join("share/templates")).unwrap();
    fs::write(dist.path().join("share/templates/x.html"), "<p>hi</p>").unwrap();
    let cli = dist.path().join("mas-cli");
    fs::write(&cli, "#!/bin/sh\necho \"stand-in mas-cli $* as $(echo ~)\"\n").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(&mut fs::metadata(&cli).unwrap().permissions(), 0o755);
    fs::set_permissions(&cli, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let root = Root::new();
    let input = format!("mas-dist={}", dist.path().display());
    let out = root.ok(&["image", "load", "mas-local", "--input", &input]);
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    let ran = docker_ok(&["run", "--rm", "--read-only", &id, "--version"]);
    assert_eq!(ran, "stand-in mas-cli --version as /nonexistent");
    // A changed input file is a different image.
    fs::write(dist.path().join("share/templates/x.html"), "<p>changed</p>").unwrap();
    let out2 = root.ok(&["image", "build", "mas-local", "--input", &input]);
    assert_ne!(out2.split_whitespace().nth(1).unwrap(), id);
    // Without the input, a clear error.
    let err = root.fails(&["image", "build", "mas-local", "--input", "mas-dist=/nonexistent"]);
    assert!(err.contains("mas-dist"), "{err}");
}

#[test]
fn bad_declarations_are_located_one_line_errors_that_change_nothing() {
    let images = tempfile::tempdir().unwrap();
    fs::write(images.path().join("base.toml"), "[debian]\nsuite = \"bookworm\"\npackages = \"libc6\"\n").unwrap();
    fs::write(images.path().join("other.toml"), "description = \"x\"\nbogus = 1\n").unwrap();
    let root = Root::new();
    let run = |name: &str| {
        let out = root.masctl().env("MASCTL_IMAGES", images.path()).args(["image", "build", name]).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).trim().to_string()
    };
    let e1 = run("base");
    assert!(e1.contains("base.toml:3:12:"), "{e1}");
    let e2 = run("other");
    assert!(e2.contains("other.toml:2:1:") && e2.contains("bogus"), "{e2}");
    let e3 = run("missing");
    assert!(e3.contains("no image named \"missing\""), "{e3}");
    for e in [e1, e2, e3] {
        assert_eq!(e.lines().count(), 1, "{e}");
    }
    assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0, "the state root is untouched");
}

#[test]
fn lock_resolves_with_the_hosts_apt_and_drops_excluded_packages() {
    let images = tempfile::tempdir().unwrap();
    fs::copy(common::repo().join("images/base.toml"), images.path().join("base.toml")).unwrap();
    let root = Root::new();
    let out = root.masctl().env("MASCTL_IMAGES", images.path()).args(["image", "lock", "base"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lock: toml::Value = toml::from_str(&fs::read_to_string(images.path().join("base.lock")).unwrap()).unwrap();
    let debs = lock["deb"].as_array().unwrap();
    let names: Vec<&str> = debs.iter().map(|d| d["name"].as_str().unwrap()).collect();
    for want in ["libc6", "dash", "ca-certificates", "tzdata"] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    for unwanted in ["perl-base", "debconf", "openssl", "dpkg"] {
        assert!(!names.contains(&unwanted), "{unwanted} must be excluded: {names:?}");
    }
    for d in debs {
        let path = d["path"].as_str().unwrap();
        assert!(path.starts_with("pool/") && !path.contains("://"), "{path}");
        assert_eq!(d["sha256"].as_str().unwrap().len(), 64);
    }
}

/// A static file server on loopback (Python's), logging every request it answers.
struct FileServer {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl FileServer {
    fn start(dir: &Path, log: std::path::PathBuf) -> FileServer {
        use std::io::BufRead;
        let mut child = std::process::Command::new("python3")
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .arg("0")
            .stdout(std::process::Stdio::piped())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("python3 runs");
        // Readiness: it prints its port once it listens.
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.split(" port ").nth(1).and_then(|r| r.split_whitespace().next()).unwrap().parse().unwrap();
        FileServer { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// `(method path status)` of every request, in order.
    fn requests(&self) -> Vec<(String, String, String)> {
        let text = fs::read_to_string(&self.log).unwrap();
        text.lines()
            .filter_map(|l| {
                let req = l.split('"').nth(1)?;
                let status = l.split('"').nth(2)?.split_whitespace().next()?.to_string();
                let mut w = req.split_whitespace();
                Some((w.next()?.to_string(), w.next()?.to_string(), status))
            })
            .collect()
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SNAPSHOT_TIME: &str = "20260101T000000Z";

/// A declarations directory with base only, its lock saying when it was resolved;
/// and a web root with a live mirror holding `live` of its pins and a snapshot
/// archive (laid out like Debian's: `archive/debian/<time>/pool/…`) holding all.
fn pins_and_mirrors(live: impl Fn(&str) -> bool) -> (tempfile::TempDir, tempfile::TempDir, Vec<(String, String)>) {
    let fresh = common::fresh_images();
    // Every pin in the shared cache first (fetched from the host's mirrors if not).
    let warm = Root::new();
    warm.masctl().env("MASCTL_IMAGES", fresh).args(["image", "build", "base"]).output().unwrap();
    let images = tempfile::tempdir().unwrap();
    fs::copy(fresh.join("base.toml"), images.path().join("base.toml")).unwrap();
    let lock = fs::read_to_string(fresh.join("base.lock")).unwrap();
    let lock: String = lock.lines().filter(|l| !l.starts_with("resolved = ")).map(|l| format!("{l}\n")).collect();
    let lock = lock.replacen("\ninputs = ", &format!("\nresolved = \"{SNAPSHOT_TIME}\"\ninputs = "), 1);
    fs::write(images.path().join("base.lock"), &lock).unwrap();
    let parsed: toml::Value = toml::from_str(&lock).unwrap();
    let pins: Vec<(String, String)> = parsed["deb"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["path"].as_str().unwrap().to_string(), d["sha256"].as_str().unwrap().to_string()))
        .collect();
    let web = tempfile::tempdir().unwrap();
    for (path, sha) in &pins {
        let from = shared_cache().join(sha);
        assert!(from.exists(), "{path} is not in the shared cache");
        let mut homes = vec![format!("archive/debian/{SNAPSHOT_TIME}/{path}")];
        if live(path) {
            homes.push(format!("live/{path}"));
        }
        for home in homes {
            let to = web.path().join(home);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(&from, &to).unwrap();
        }
    }
    fs::create_dir_all(web.path().join("live")).unwrap();
    (images, web, pins)
}

#[test]
fn gone_pins_come_from_a_snapshot_archive_after_the_live_mirrors() {
    let (images, web, pins) = pins_and_mirrors(|_| false);
    let server = FileServer::start(web.path(), web.path().join("requests.log"));
    let build = |snapshot: Option<&str>| {
        let cache = tempfile::tempdir().unwrap();
        let root = Root::new();
        let mut c = root.masctl();
        c.env("MASCTL_IMAGES", images.path())
            .env("MASCTL_CACHE", cache.path())
            .env("MASCTL_DEBIAN_MIRRORS", server.url("live"));
        if let Some(s) = snapshot {
            c.env("MASCTL_DEBIAN_SNAPSHOT", s);
        }
        c.args(["image", "build", "base"]).output().unwrap()
    };

    // Live mirrors only: the error says what happened and what to do.
    let out = build(None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for want in ["on none of the Debian mirrors", "image lock --update base", "MASCTL_DEBIAN_SNAPSHOT", SNAPSHOT_TIME] {
        assert!(err.contains(want), "{want}: {err}");
    }

    // With the snapshot archive: every pin from there, after the live mirror said no.
    let template = format!("{}/{{timestamp}}", server.url("archive/debian"));
    let out = build(Some(&template));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reqs = server.requests();
    for (path, _) in &pins {
        let live = reqs.iter().rposition(|(m, p, s)| m == "GET" && p == &format!("/live/{path}") && s == "404");
        let snap = reqs
            .iter()
            .rposition(|(m, p, s)| m == "GET" && p == &format!("/archive/debian/{SNAPSHOT_TIME}/{path}") && s == "200");
        assert!(matches!((live, snap), (Some(l), Some(s)) if l < s), "{path}: live then snapshot in {reqs:?}");
    }
}

#[test]
fn lock_update_re_resolves_only_what_the_mirrors_dropped() {
    // One pin gone from the "live" mirror; apt resolves with the host's lists.
    let (images, web, pins) = pins_and_mirrors(|p| !p.contains("/tzdata_"));
    let gone = pins.iter().find(|(p, _)| p.contains("/tzdata_")).expect("base pins tzdata").0.clone();
    let server = FileServer::start(web.path(), web.path().join("requests.log"));
    let lock_path = images.path().join("base.lock");
    let before: toml::Value = toml::from_str(&fs::read_to_string(&lock_path).unwrap()).unwrap();
    let root = Root::new();
    let update = || {
        root.masctl()
            .env("MASCTL_IMAGES", images.path())
            .env("MASCTL_DEBIAN_MIRRORS", server.url("live"))
            .args(["image", "lock", "--update", "base"])
            .output()
            .unwrap()
    };
    let out = update();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("{gone} is gone")), "{err}");
    let after: toml::Value = toml::from_str(&fs::read_to_string(&lock_path).unwrap()).unwrap();
    assert_ne!(after["resolved"].as_str(), Some(SNAPSHOT_TIME), "the lock records its new resolution");
    let by_name = |v: &toml::Value| -> std::collections::BTreeMap<String, toml::Value> {
        v["deb"].as_array().unwrap().iter().map(|d| (d["name"].as_str().unwrap().to_string(), d.clone())).collect()
    };
    let (b, a) = (by_name(&before), by_name(&after));
    assert!(a.contains_key("tzdata"), "tzdata is pinned again");
    for (name, pin) in &b {
        if name != "tzdata" && a.contains_key(name) {
            assert_eq!(&a[name], pin, "{name} was not gone and must be kept as it was");
        }
    }

    // Now nothing is gone from where the lock points: unchanged, byte for byte.
    let tz = &a["tzdata"];
    let live = web.path().join("live").join(tz["path"].as_str().unwrap());
    fs::create_dir_all(live.parent().unwrap()).unwrap();
    fs::write(&live, "present").unwrap();
    let text = fs::read(&lock_path).unwrap();
    let again = update();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(String::from_utf8_lossy(&again.stderr).contains("is unchanged"));
    assert_eq!(fs::read(&lock_path).unwrap(), text);
}
