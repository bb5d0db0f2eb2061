//! `masctl export ess` of running stacks: (a) the default stack, (b) MAS with
//! workers, an upstream provider and SMTP, a bridge's registration on its Docker
//! network, double puppeting, encrypted bridges and a declared user, (c) an
//! external Postgres. Each export
//! is checked offline by tests/py/ess_validate.py (the chart's values schema,
//! kubernetes-validate on every Secret, every Secret reference, Element's
//! ess-migration-tool on masctl's generated configs); (a) and (b) also load their
//! dumps into a fresh Postgres 17 under the chart's names and compare every
//! table, and (a) runs Synapse on the loaded database with the exported signing
//! key: same key id, an existing user logs in with the old password, and the
//! media archive holds the media store's files. (a) also exports with `--chart`
//! (the fixture chart in tests/fixtures/ess-chart): it passes the chart's schema,
//! and a schema that requires more refuses it with nothing written.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use common::stack::{Stack, text};
use common::{
    Docker, Root, docker, docker_ok, external_pg, http, images_with_standin, mas_images, psql, python, repo, wait_for,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

const ULID: &str = "01JSHPZHAXC50QBKH67MH33TNF";

/// The chart's values schema, from the shared references beside the clone.
fn schema() -> PathBuf {
    let p = repo().join("../shared/reference/ess-values.schema.json");
    assert!(p.exists(), "{} is missing (the shared references beside the clone)", p.display());
    p
}

/// The fixture chart (tests/fixtures/ess-chart: a Chart.yaml and the chart's
/// values.schema.json) copied under the stack's root, where masctl in the host sees
/// it; with `require`, its schema also requires that top-level key.
fn fixture_chart(s: &Stack, name: &str, require: Option<&str>) -> PathBuf {
    let (from, to) = (repo().join("tests/fixtures/ess-chart"), s.root.join(name));
    std::fs::create_dir_all(&to).unwrap();
    std::fs::copy(from.join("Chart.yaml"), to.join("Chart.yaml")).unwrap();
    let mut schema: Value =
        serde_json::from_str(&std::fs::read_to_string(from.join("values.schema.json")).unwrap()).unwrap();
    if let Some(key) = require {
        schema["required"] = serde_json::json!([key]);
    }
    std::fs::write(to.join("values.schema.json"), schema.to_string()).unwrap();
    to
}

/// `masctl export ess` inside the host; its output (the export must succeed).
fn export(s: &Stack, name: &str, extra: &[&str]) -> (PathBuf, String) {
    let out = s.root.join(name);
    let dir = out.display().to_string();
    let mut args = vec!["export", "ess", "--out", &dir];
    args.extend_from_slice(extra);
    let o = s.masctl(&args);
    let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "masctl export ess failed:\n{all}");
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(out.join("secrets.yaml")).unwrap().permissions().mode() & 0o777, 0o600);
    (out, all)
}

/// A file of a running service's container, copied out (the config masctl generated).
fn container_file(container: &str, path: &str, to: &Path) -> PathBuf {
    docker_ok(&["cp", &format!("{container}:{path}"), &to.display().to_string()]);
    to.to_path_buf()
}

/// ess_validate.py on an export, with the generated configs for the comparison;
/// `given` maps a /run/secrets/ name to the user's own file it is mounted from. The
/// settings whose values were compared with ess-migration-tool's.
fn validate(s: &Stack, out: &Path, mas: bool, given: &[(&str, &Path)]) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let hs = container_file(&s.container("synapse"), "/etc/synapse/homeserver.yaml", &tmp.path().join("hs.yaml"));
    let (schema, secrets) = (schema().display().to_string(), s.root.join("secrets").display().to_string());
    let (out_s, hs_s) = (out.display().to_string(), hs.display().to_string());
    let mut args: Vec<String> =
        [out_s.as_str(), "--schema", &schema, "--synapse-config", &hs_s, "--secrets-dir", &secrets]
            .map(String::from)
            .to_vec();
    if mas {
        let m = container_file(&s.container("mas"), "/etc/mas/config.yaml", &tmp.path().join("mas.yaml"));
        args.extend(["--mas-config".to_string(), m.display().to_string()]);
    }
    for (name, file) in given {
        args.extend(["--secret-file".to_string(), format!("{name}={}", file.display())]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = python::run_script("ess_validate.py", &args);
    assert!(r.success && r.json["ok"] == true, "ess_validate: {}\n{}", r.json, r.stderr);
    for check in ["schema", "kubernetes", "references", "ess-migration-tool"] {
        assert_eq!(r.json["checks"][check], "ok", "{check}: {}", r.json);
    }
    r.json["compared"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

/// Secret name → key → value, decoded from secrets.yaml (JSON documents after `---`).
fn exported_secrets(out: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let text = std::fs::read_to_string(out.join("secrets.yaml")).unwrap();
    let mut all = BTreeMap::new();
    for doc in text.split("\n---\n").skip(1).chain(text.strip_prefix("---\n")) {
        let Ok(v) = serde_json::from_str::<Value>(doc.trim()) else { continue };
        let mut data = BTreeMap::new();
        for (k, b) in v["data"].as_object().into_iter().flatten() {
            let raw = base64::engine::general_purpose::STANDARD.decode(b.as_str().unwrap()).unwrap();
            data.insert(k.clone(), String::from_utf8(raw).unwrap());
        }
        all.insert(v["metadata"]["name"].as_str().unwrap().to_string(), data);
    }
    all
}

fn values(out: &Path) -> Value {
    let t = std::fs::read_to_string(out.join("values.yaml")).unwrap();
    serde_json::from_str(t.split_once('\n').unwrap().1).unwrap()
}

/// The value a `{secret, secretKey}` reference in values.yaml names.
fn referenced(out: &Path, pointer: &str) -> String {
    let v = values(out);
    let r = v.pointer(pointer).unwrap_or_else(|| panic!("values.yaml has no {pointer}"));
    let (name, key) = (r["secret"].as_str().unwrap(), r["secretKey"].as_str().unwrap());
    exported_secrets(out)[name][key].clone()
}

/// Per table: row count and an md5 over the rows in a fixed order.
fn table_sums(container: &str, db: &str) -> BTreeMap<String, String> {
    let tables = psql(container, db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
    let mut out = BTreeMap::new();
    for t in tables.lines().filter(|l| !l.is_empty()) {
        let q = format!(
            "SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, E'\\n' ORDER BY x::text)), '-') FROM \"{t}\" x"
        );
        out.insert(t.to_string(), psql(container, db, &q).trim().to_string());
    }
    out
}

/// A fresh Postgres 17 of masctl's with the chart's roles and databases.
fn chart_postgres(d: &mut Docker, net: &str) -> String {
    let image = Root::new().load("postgres17");
    let pg = d.run("pg17", &["--network", net, &image]);
    wait_for("the Postgres 17 to accept connections", Duration::from_secs(60), || {
        docker(&["exec", &pg, "pg_isready", "-q", "-h", "/run/postgresql", "-U", "postgres"])
            .status
            .success()
            .then_some(())
    });
    for (db, owner) in
        [("synapse", "synapse_user"), ("matrixauthenticationservice", "matrixauthenticationservice_user")]
    {
        psql(&pg, "postgres", &format!("CREATE ROLE {owner} LOGIN PASSWORD 'chart-{owner}'"));
        psql(
            &pg,
            "postgres",
            &format!(
                "CREATE DATABASE {db} OWNER {owner} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            ),
        );
    }
    pg
}

/// RUNBOOK.md's restore: the dump as the chart's owner role, then every table equal.
fn load_and_compare(s: &Stack, pg: &str, out: &Path, ours: &str, db: &str, owner: &str) {
    let dump = out.join("data").join(format!("{ours}.dump"));
    docker_ok(&["cp", &dump.display().to_string(), &format!("{pg}:/tmp/{ours}.dump")]);
    docker_ok(&[
        "exec",
        pg,
        "pg_restore",
        "-h",
        "/run/postgresql",
        "-U",
        "postgres",
        "--no-owner",
        "--no-acl",
        &format!("--role={owner}"),
        "--exit-on-error",
        "-d",
        db,
        &format!("/tmp/{ours}.dump"),
    ]);
    let (source, loaded) = (table_sums(&s.container("postgres"), ours), table_sums(pg, db));
    assert!(source.len() > 10, "{ours}: only {} tables", source.len());
    assert_eq!(source, loaded, "{ours}: the loaded database differs from the source");
    let owned = psql(
        pg,
        db,
        &format!("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner <> '{owner}'"),
    );
    assert_eq!(owned.trim(), "0", "{db}: every table is owned by {owner}");
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The media archive unpacked: relative path → sha256; checked against media.sha256.
fn archived_media(out: &Path) -> BTreeMap<String, String> {
    let mut ar = tar::Archive::new(std::fs::File::open(out.join("data/media.tar")).unwrap());
    let mut got = BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut buf).unwrap();
        got.insert(e.path().unwrap().display().to_string(), sha256(&buf));
    }
    let listed: BTreeMap<String, String> = std::fs::read_to_string(out.join("data/media.sha256"))
        .unwrap()
        .lines()
        .map(|l| {
            let (h, p) = l.split_once("  ").unwrap();
            (p.to_string(), h.to_string())
        })
        .collect();
    assert_eq!(got, listed, "media.sha256 lists the archive");
    got
}

fn media_store(s: &Stack) -> BTreeMap<String, String> {
    let root = s.root.join("data/synapse/media");
    let mut out = BTreeMap::new();
    let mut todo = vec![root.clone()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(&root).unwrap().display().to_string();
                out.insert(rel, sha256(&std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// Synapse from masctl's image on the loaded database with the exported signing key.
fn chart_synapse(d: &mut Docker, net: &str, pg: &str, out: &Path, server_name: &str) -> (String, tempfile::TempDir) {
    let conf_dir = tempfile::Builder::new().prefix("masctl-ess-synapse-").tempdir_in("/var/tmp").unwrap();
    let dir = conf_dir.path().to_path_buf();
    let key = referenced(out, "/synapse/signingKey");
    let macaroon = referenced(out, "/synapse/macaroon");
    std::fs::write(dir.join("signing.key"), key).unwrap();
    let hs = serde_json::json!({
        "server_name": server_name, "report_stats": false, "public_baseurl": "http://127.0.0.1/",
        "listeners": [{"port": 8008, "type": "http", "bind_addresses": ["0.0.0.0"], "resources": [{"names": ["client", "federation"]}]}],
        "database": {"name": "psycopg2", "args": {"host": pg, "user": "synapse_user", "password": "chart-synapse_user", "dbname": "synapse"}},
        "media_store_path": "/tmp/media", "signing_key_path": "/conf/signing.key",
        "macaroon_secret_key": macaroon, "suppress_key_server_warning": true,
        "rc_login": {"address": {"per_second": 100, "burst_count": 100}, "account": {"per_second": 100, "burst_count": 100}},
    });
    std::fs::write(dir.join("homeserver.yaml"), hs.to_string()).unwrap();
    for f in ["signing.key", "homeserver.yaml"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let image = Root::new().load("synapse");
    let port = common::stack::free_port();
    let publish = format!("127.0.0.1:{port}:8008");
    let conf = format!("{}:/conf:ro", dir.display());
    let c = d.run(
        "synapse",
        &[
            "--network",
            net,
            "-p",
            &publish,
            "-v",
            &conf,
            "--tmpfs",
            "/tmp:uid=991",
            &image,
            "--config-path",
            "/conf/homeserver.yaml",
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_for("the chart-side Synapse to answer /versions", Duration::from_secs(120), || {
        (http::get_status(&http::probe_agent(), &format!("{base}/_matrix/client/versions")).ok() == Some(200))
            .then_some(())
    });
    assert!(!c.is_empty());
    (base, conf_dir)
}

fn key_ids(base: &str) -> Vec<String> {
    let v = http::get_json(&format!("{base}/_matrix/key/v2/server"), None);
    v["verify_keys"].as_object().unwrap().keys().cloned().collect()
}

#[test]
fn default_stack_exports_and_the_handoff_serves() {
    let s = Stack::new("essa");
    s.up();
    s.wait_serving();
    s.register("alice", "alice-old-password");
    let client = s.client("alice", "alice-old-password");
    let media_id = client.upload("hello.txt", "text/plain", b"hello from masctl");
    assert!(!media_id.is_empty());

    // The non-empty --out is refused, nothing written.
    let busy = s.root.join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep"), "x").unwrap();
    let o = s.masctl(&["export", "ess", "--out", &busy.display().to_string()]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("not empty"), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);

    // --chart: not a chart, and a chart whose schema refuses the values: refused,
    // the path and the rule named, nothing written.
    let refused_out = s.root.join("ess-refused");
    let not_chart = s.root.join("no-chart");
    std::fs::create_dir(&not_chart).unwrap();
    let strict = fixture_chart(&s, "chart-strict", Some("masctlFixtureRequired"));
    for (chart, says) in [
        (&not_chart, vec!["no Chart.yaml"]),
        (&strict, vec!["values.yaml at $:", "`required`", "masctlFixtureRequired", "nothing written"]),
    ] {
        let o = s.masctl(&[
            "export",
            "ess",
            "--out",
            &refused_out.display().to_string(),
            "--chart",
            &chart.display().to_string(),
        ]);
        let err = text(&o.stderr);
        assert!(!o.status.success(), "--chart {}: exported", chart.display());
        assert!(says.iter().all(|w| err.contains(w)), "--chart {}: {err}", chart.display());
        assert!(!refused_out.exists(), "--chart {}: wrote {}", chart.display(), refused_out.display());
    }

    // Quiet source: what the dumps hold is what the tables hold afterwards. The
    // export passes the chart's own schema (--chart).
    docker_ok(&["exec", &s.host(), "systemctl", "stop", "masctl-synapse.service"]);
    let chart = fixture_chart(&s, "chart", None).display().to_string();
    let (out, printed) = export(&s, "ess-a", &["--chart", &chart]);
    for f in ["values.yaml", "secrets.yaml", "RUNBOOK.md", "report.txt", "report.json", "data/synapse.dump"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    assert!(std::fs::read_to_string(out.join("report.txt")).unwrap().contains("ReadWriteOnce"));
    validate_without_mas(&s, &out);

    // No secret on the terminal or in the journal.
    let journal = docker_ok(&["exec", &s.host(), "journalctl", "--no-pager", "-o", "cat"]);
    for (name, keys) in exported_secrets(&out) {
        for (k, v) in keys {
            let v = v.trim();
            assert!(!printed.contains(v), "{name}/{k} printed by the export");
            assert!(!journal.contains(v), "{name}/{k} in the journal");
        }
    }

    let mut d = Docker::new("essa");
    let net = d.network();
    let pg = chart_postgres(&mut d, &net);
    load_and_compare(&s, &pg, &out, "synapse", "synapse", "synapse_user");

    let source_key = std::fs::read_to_string(s.root.join("secrets/synapse-signing.key")).unwrap();
    let mut w = source_key.split_whitespace();
    let key_id = format!("{}:{}", w.next().unwrap(), w.next().unwrap());
    let (base, _conf) = chart_synapse(&mut d, &net, &pg, &out, &s.server_name);
    assert_eq!(key_ids(&base), vec![key_id], "the chart-side Synapse serves masctl's key");
    assert_eq!(http::login(&base, "alice", "alice-old-password").0, 200, "alice logs in with her old password");
    assert_ne!(http::login(&base, "alice", "wrong").0, 200);

    let media = archived_media(&out);
    assert!(!media.is_empty());
    assert_eq!(media, media_store(&s), "the archive holds the media store, byte for byte");
    assert!(media.values().any(|h| *h == sha256(b"hello from masctl")));
}

/// The default stack has no MAS container: validate with Synapse's config alone.
fn validate_without_mas(s: &Stack, out: &Path) {
    // Synapse is stopped for the quiet dump; its config is in the store.
    let store = s.root.join("store");
    let hs = std::fs::read_dir(&store)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("homeserver.yaml"))
        .find(|p| p.exists())
        .expect("a homeserver.yaml in the store");
    let (schema, secrets) = (schema().display().to_string(), s.root.join("secrets").display().to_string());
    let (out_s, hs_s) = (out.display().to_string(), hs.display().to_string());
    let r = python::run_script(
        "ess_validate.py",
        &[&out_s, "--schema", &schema, "--synapse-config", &hs_s, "--secrets-dir", &secrets],
    );
    assert!(r.success && r.json["ok"] == true, "ess_validate: {}\n{}", r.json, r.stderr);
}

/// A bridge's registration as its generator writes it (tokens random), in `dir`
/// (under the state root: the host sees it at the same path).
fn bridge_registration(dir: &Path, url: &str) -> (PathBuf, [String; 2]) {
    let token = || {
        let mut b = [0u8; 24];
        getrandom::fill(&mut b).unwrap();
        hex::encode(b)
    };
    let tokens = [token(), token()];
    let reg = serde_json::json!({
        "id": "testbridge", "url": url, "as_token": tokens[0], "hs_token": tokens[1],
        "sender_localpart": "bridgebot", "rate_limited": false, "org.matrix.msc3202": true,
        "namespaces": {"users": [{"exclusive": true, "regex": "@puppet_.*:test\\.local$"}], "aliases": [], "rooms": []},
    });
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("testbridge.yaml");
    std::fs::write(&path, serde_json::to_string_pretty(&reg).unwrap()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    (path, tokens)
}

/// The JSON after a generated YAML file's comment lines.
fn json_body(text: &str) -> &str {
    let start = text.lines().take_while(|l| l.starts_with('#')).map(|l| l.len() + 1).sum::<usize>();
    &text[start..]
}

/// values.yaml's `synapse.appservices` against the registrations Synapse loads (its
/// homeserver.yaml's `app_service_config_files`, read in its container): the same
/// files, byte for byte, in the same order.
fn registrations_match_synapse(s: &Stack, out: &Path) {
    let synapse = s.container("synapse");
    // Synapse's image has no shell tools: files are copied out.
    let tmp = tempfile::tempdir().unwrap();
    let read = |path: &str| {
        let to = tmp.path().join("f");
        std::fs::read_to_string(container_file(&synapse, path, &to)).unwrap()
    };
    // masctl writes its YAML as JSON after comment lines, as values.yaml.
    let hs: Value = serde_json::from_str(json_body(&read("/etc/synapse/homeserver.yaml"))).unwrap();
    let files: Vec<&str> =
        hs["app_service_config_files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    let listed = values(out)["synapse"]["appservices"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), files.len(), "{listed:?} vs {files:?}");
    let secrets = exported_secrets(out);
    for (r, file) in listed.iter().zip(&files) {
        let got = read(file);
        let (name, key) = (r["secret"].as_str().unwrap(), r["secretKey"].as_str().unwrap());
        assert_eq!(secrets[name][key], got, "{name}/{key} is not {file} as Synapse has it");
    }
}

#[test]
fn mas_with_workers_provider_and_smtp_exports() {
    let images = images_with_standin();
    // Declared first, dropped last: the stack goes down before the bridge's network.
    let mut d = Docker::new("essb");
    let net = d.network();
    let s = Stack::with_images("essb", images.path().to_path_buf());
    let bridge_url = "http://essb-bridge:29317";
    let (registration, bridge_tokens) = bridge_registration(&s.root.join("bridges"), bridge_url);
    let files = s.root.join("given");
    std::fs::create_dir(&files).unwrap();
    for (f, v) in [("dex", "dex-client-secret-1"), ("smtp", "smtp-password-1")] {
        std::fs::write(files.join(f), format!("{v}\n")).unwrap();
        std::fs::set_permissions(files.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
        // MAS reads them as its own user (distroless `nonroot`).
        std::os::unix::fs::chown(files.join(f), Some(65532), Some(65532)).unwrap();
    }
    s.write_config(&format!(
        "{}[synapse]\nencrypted_bridges = true\n[synapse.double_puppet]\nenabled = true\n\
[[synapse.appservices]]\npath = \"{}\"\nnetwork = \"{net}\"\n\
[synapse.workers.counts]\ngeneric = 1\n[mas]\nenabled = true\n\
[mas.email]\ntransport = \"smtp\"\nfrom = \"Matrix <matrix@test.local>\"\nhostname = \"mail.test.local\"\nport = 587\n\
mode = \"starttls\"\nusername = \"matrix\"\npassword_file = \"{g}/smtp\"\n\
[[mas.upstream_oauth2.providers]]\nid = \"{ULID}\"\nissuer = \"https://dex.test.local/\"\nclient_id = \"mas\"\n\
client_secret_file = \"{g}/dex\"\ntoken_endpoint_auth_method = \"client_secret_basic\"\nscope = \"openid email\"\n\
[[users]]\nlocalpart = \"carol\"\n",
        mas_images(),
        registration.display(),
        g = files.display()
    ));
    s.up();
    s.wait_serving();
    let out = s.masctl_stdin("bob-password-1\n", &["register-user", "bob"]);
    assert!(out.status.success(), "register-user: {}{}", text(&out.stdout), text(&out.stderr));

    let (out, printed) = export(&s, "ess-b", &["--mas-host", "auth.test.local"]);
    let compared =
        validate(&s, &out, true, &[("mas-smtp-password", &files.join("smtp")), ("mas-provider-0", &files.join("dex"))]);
    for c in [
        "/synapse/signingKey",
        "/matrixAuthenticationService/encryptionSecret",
        "/matrixAuthenticationService/synapseSharedSecret",
        "/matrixAuthenticationService/privateKeys/rsa",
        "matrixAuthenticationService.additional:email.password",
        "matrixAuthenticationService.additional:upstream_oauth2.providers.0.client_secret",
    ] {
        assert!(compared.iter().any(|x| x == c), "{c} not compared with ess-migration-tool: {compared:?}");
    }
    let v = values(&out);
    // The chart has no generic worker: its request groups go to the chart's types.
    for t in ["synchrotron", "client-reader", "event-creator", "federation-reader", "federation-inbound"] {
        assert_eq!(v.pointer(&format!("/synapse/workers/{t}/replicas")), Some(&Value::from(1)), "{t}: {v}");
    }
    assert_eq!(v.pointer("/matrixAuthenticationService/ingress/host").and_then(Value::as_str), Some("auth.test.local"));
    let secrets = exported_secrets(&out);
    let all: String = secrets.values().flat_map(|m| m.values().cloned()).collect();
    assert!(
        all.contains("dex-client-secret-1") && all.contains("smtp-password-1"),
        "the provider and SMTP credentials are in Secrets"
    );
    let values_text = std::fs::read_to_string(out.join("values.yaml")).unwrap();
    assert!(
        !values_text.contains("dex-client-secret-1") && !values_text.contains("smtp-password-1"),
        "no credential inline"
    );
    bridges_carried(&s, &out, &printed, &bridge_tokens, &net, bridge_url);

    let pg = chart_postgres(&mut d, &net);
    // Synapse and MAS stopped: the sources stay as the dumps saw them.
    docker_ok(&["exec", &s.host(), "systemctl", "stop", "masctl.target"]);
    docker_ok(&["exec", &s.host(), "systemctl", "start", "masctl-postgres.service"]);
    wait_for("Postgres back", Duration::from_secs(60), || {
        docker(&["exec", &s.container("postgres"), "pg_isready", "-q", "-h", "/run/postgresql"])
            .status
            .success()
            .then_some(())
    });
    let (quiet, _) = export(&s, "ess-b2", &["--mas-host", "auth.test.local"]);
    load_and_compare(&s, &pg, &quiet, "synapse", "synapse", "synapse_user");
    load_and_compare(&s, &pg, &quiet, "mas", "matrixauthenticationservice", "matrixauthenticationservice_user");
    // The declared user is a row of the dump: it exists in the cluster's database.
    let carol = psql(&pg, "matrixauthenticationservice", "SELECT count(*) FROM users WHERE username = 'carol'");
    assert_eq!(carol.trim(), "1", "the declared user carol is in the loaded MAS database");
}

/// (b)'s bridge, double puppet and declared user in the export: the registrations
/// are Secrets equal to Synapse's files, no token outside secrets.yaml, encrypted
/// bridges' features in `additional`, the bridge's Docker URL and the declared user
/// named in the report, the runbook's steps for both.
fn bridges_carried(s: &Stack, out: &Path, printed: &str, tokens: &[String], net: &str, url: &str) {
    registrations_match_synapse(s, out);
    let v = values(out);
    assert_eq!(v.pointer("/synapse/appservices").and_then(Value::as_array).map(Vec::len), Some(2), "{v}");
    let dp = std::fs::read_to_string(s.root.join("secrets/double-puppet-as-token")).unwrap();
    let values_text = std::fs::read_to_string(out.join("values.yaml")).unwrap();
    let journal = docker_ok(&["exec", &s.host(), "journalctl", "--no-pager", "-o", "cat"]);
    for t in tokens.iter().map(String::as_str).chain([dp.trim()]) {
        assert!(!values_text.contains(t) && !printed.contains(t), "a registration token outside secrets.yaml");
        assert!(!journal.contains(t), "a registration token in the journal");
    }
    let inline = v.pointer("/synapse/additional/masctl/config").and_then(Value::as_str).unwrap();
    let inline: Value = serde_json::from_str(inline).unwrap();
    for f in ["msc3202_transaction_extensions", "msc2409_to_device_messages_enabled"] {
        assert_eq!(inline["experimental_features"][f], true, "{f}: {inline}");
    }
    assert!(inline.get("app_service_config_files").is_none(), "masctl's registration paths are not the chart's");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let detail = |setting: &str| {
        let f = report.as_array().unwrap().iter().find(|f| f["setting"] == setting);
        f.unwrap_or_else(|| panic!("the report does not name {setting}: {report}"))["detail"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let d = detail("[[synapse.appservices]] \"testbridge\" url");
    assert!(d.contains(url) && d.contains(net) && d.contains("deploy the bridge in the cluster"), "{d}");
    assert!(detail("[[users]] localpart = \"carol\"").contains("exists already"));
    assert!(printed.contains("testbridge") && printed.contains("carol"), "the report is printed:\n{printed}");
    let runbook = std::fs::read_to_string(out.join("RUNBOOK.md")).unwrap();
    for says in ["## Bridges", "--from-file=testbridge.yaml", "mas-cli manage register-user", "@carol:"] {
        assert!(runbook.contains(says), "RUNBOOK.md lacks {says}");
    }
}

#[test]
fn an_external_postgres_exports_only_the_media() {
    let images = images_with_standin();
    let mut d = Docker::new("essc");
    let pg = external_pg::start(&mut d);
    let (syn_pw, mas_pw) = (pg.synapse_password.clone(), pg.mas_password.clone());
    let s = Stack::with_images("essc", images.path().to_path_buf());
    let external = pg.config(&s.root.join("db-passwords"));
    s.write_config(&format!("{}[mas]\nenabled = true\n{external}", mas_images()));
    s.up();
    s.wait_serving();

    // Without --postgres external the export refuses: the chart would not reuse the server.
    let refused = s.masctl(&["export", "ess", "--out", &s.root.join("ess-x").display().to_string()]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("--postgres external"), "{}", text(&refused.stderr));
    assert!(!s.root.join("ess-x").exists(), "nothing written");

    let (out, printed) = export(&s, "ess-c", &["--postgres", "external"]);
    // The services' copies of the external passwords, mounted at the names the configs use.
    let secrets = s.root.join("secrets");
    let given = [
        ("synapse-pgpass", secrets.join("external-synapse-pgpass")),
        ("mas-db-password", secrets.join("external-mas-db-password")),
    ];
    let compared = validate(&s, &out, true, &given.iter().map(|(n, p)| (*n, p.as_path())).collect::<Vec<_>>());
    for c in ["/synapse/postgres/password", "/matrixAuthenticationService/postgres/password"] {
        assert!(compared.iter().any(|x| x == c), "{c} not compared with ess-migration-tool: {compared:?}");
    }
    let names: Vec<String> = std::fs::read_dir(out.join("data"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, ["media.sha256", "media.tar"], "only the media");
    let v = values(&out);
    assert_eq!(v.pointer("/postgres/enabled"), Some(&Value::Bool(false)), "{v}");
    assert_eq!(v.pointer("/synapse/postgres/database").and_then(Value::as_str), Some("synapse_db"));
    assert_eq!(referenced(&out, "/synapse/postgres/password").trim(), syn_pw);
    assert_eq!(referenced(&out, "/matrixAuthenticationService/postgres/password").trim(), mas_pw);
    assert!(!printed.contains(&syn_pw) && !printed.contains(&mas_pw), "a password printed");
    assert_eq!(archived_media(&out), media_store(&s));
}
