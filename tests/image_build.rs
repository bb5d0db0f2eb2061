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
    let lock = fs::read_to_string(common::repo().join("images/base.lock")).unwrap();
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
