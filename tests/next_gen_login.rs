//! The sign-in Element X does, for real: a stack with MAS (the stand-in, or the
//! real mas-cli through `MASCTL_TEST_MAS_DIST`) behind the TLS edge, certificates
//! from a private ACME CA (Pebble), and tests/py/next_gen_login.py driving
//! authlib and Debian's chromium from this machine against the edge's address
//! on the Docker network — trusting Pebble's root only.

mod common;

use std::path::Path;
use std::time::Duration;

use common::python::{BrowserNet, executable};
use common::stack::{Stack, free_port, text};
use common::{Docker, HARDENED, Root, docker, docker_ok, images_with_standin, mas_images, wait_for};
use serde_json::json;

const SERVER_NAME: &str = "b.test";
const ISSUER: &str = "https://matrix.b.test/auth/";

/// Pebble on its own network; returns (network, directory holding pebble.pem and
/// pebble-root.pem). Pebble makes a new root at each start, fetched by a client
/// container on the network (only Docker resolves `pebble`).
fn pebble(d: &mut Docker, dir: &Path) -> String {
    let net = d.network();
    let mut params = rcgen::CertificateParams::new(vec!["pebble".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    write(dir, "pebble.pem", &cert.pem());
    write(dir, "pebble.key", &key.serialize_pem());
    let conf = json!({"pebble": {
        "listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
        "certificate": "/etc/pebble/pebble.pem", "privateKey": "/etc/pebble/pebble.key",
        "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": false,
    }});
    write(dir, "pebble.json", &conf.to_string());
    let root = Root::new();
    let (pebble_image, synapse_image) = (root.load("pebble"), root.load("synapse"));
    let mount = format!("{}:/etc/pebble:ro", dir.display());
    let mut args = vec!["--network", &net, "--network-alias", "pebble", "-v", &mount];
    args.extend(["-e", "PEBBLE_VA_ALWAYS_VALID=1", "-e", "PEBBLE_WFE_NONCEREJECT=0"]);
    args.extend(HARDENED);
    args.push(&pebble_image);
    d.run("pebble", &args);
    let w = format!("{}:/w:ro", dir.display());
    let client = d.run(
        "client",
        &[
            "--network",
            &net,
            "-v",
            &w,
            "--entrypoint",
            "python3",
            &synapse_image,
            "-c",
            "import time; time.sleep(3600)",
        ],
    );
    let fetch = "import ssl, urllib.request; print(urllib.request.urlopen('https://pebble:15000/roots/0', \
context=ssl.create_default_context(cafile='/w/pebble.pem'), timeout=5).read().decode())";
    let pem = wait_for("Pebble to serve its root", Duration::from_secs(60), || {
        let out = docker(&["exec", &client, "python3", "-c", fetch]);
        out.status.success().then(|| text(&out.stdout))
    });
    assert!(pem.contains("BEGIN CERTIFICATE"), "{pem}");
    write(dir, "pebble-root.pem", &pem);
    net
}

fn write(dir: &Path, name: &str, data: &str) {
    std::fs::write(dir.join(name), data).unwrap();
    set_mode(&dir.join(name), 0o644);
}

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// The stack's config: MAS on, password registration open (for `prompt=create`),
/// the edge on Pebble's network, its certificates from Pebble.
fn config(s: &Stack, net: &str, ca: &Path) -> String {
    let acme = format!(
        "tls = \"acme\"\nacme_email = \"admin@{}\"\nacme_directory = \"https://pebble:14000/dir\"\n\
acme_directory_ca = \"{}/pebble.pem\"\n",
        s.server_name,
        ca.display()
    );
    config_with_tls(net, ca, &acme)
}

/// The same stack with the edge's TLS settings `tls` (the `[edge]` lines).
fn config_with_tls(net: &str, ca: &Path, tls: &str) -> String {
    let port = || format!("127.0.0.1:{}", free_port());
    format!(
        "{images}[mas]\nenabled = true\n[mas.account]\npassword_registration_enabled = true\n\
password_registration_email_required = false\n\
[edge]\n{tls}trust = \"{ca}/pebble-root.pem\"\nnetworks = [\"{net}\"]\n\
http = \"{}\"\nhttps = \"{}\"\nfederation = \"{}\"\n",
        port(),
        port(),
        port(),
        images = mas_images(),
        ca = ca.display(),
    )
}

/// The walk's lines of `masctl doctor` (text) and of `doctor --json`, and whether
/// doctor succeeded.
fn doctor_walk(s: &Stack) -> (Vec<String>, Vec<serde_json::Value>, bool) {
    let out = s.masctl(&["doctor"]);
    let stdout = text(&out.stdout);
    let lines = stdout.lines().filter(|l| l.contains("client path: ")).map(str::to_string).collect();
    let json = s.masctl(&["doctor", "--json"]);
    let out_json = text(&json.stdout);
    // Should a job's own output come first on stdout, the JSON report is last.
    let report = out_json.rfind("\n[\n").map_or(out_json.as_str(), |i| &out_json[i + 1..]);
    let findings: Vec<serde_json::Value> = serde_json::from_str(report).unwrap_or_else(|e| panic!("{e}: {report}"));
    let walk = findings
        .into_iter()
        .filter(|f| f["message"].as_str().is_some_and(|m| m.starts_with("client path: ")))
        .collect();
    assert_eq!(out.status.success(), json.status.success(), "{stdout}\n{report}");
    (lines, walk, out.status.success())
}

/// `masctl doctor` walks the client's path over the public names (which the host
/// resolves to the edge, as DNS would): every step ✅; then, with the edge serving
/// a self-signed certificate, the chain's ❌ line for each hostname.
fn doctor_walks_the_client_path(s: &Stack, net: &str, trust: &Path) {
    let ip = docker_ok(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}", s.instance),
        &s.container("proxy"),
    ]);
    let hosts = format!("{ip} {SERVER_NAME} matrix.{SERVER_NAME}");
    docker_ok(&["exec", &s.host(), "sh", "-c", &format!("echo '{hosts}' >> /etc/hosts")]);
    let (lines, walk, ok) = doctor_walk(s);
    let joined = lines.join("\n");
    println!("doctor:\n{joined}");
    assert!(ok, "{joined}");
    // well-known, auth_metadata (stable, unstable), discovery, login, logout, refresh,
    // trusted proxies, rendezvous, TLS.
    assert_eq!(lines.len(), 10, "{joined}");
    assert!(lines.iter().all(|l| l.starts_with('✅')), "{joined}");
    assert_eq!(walk.len(), lines.len(), "{walk:?}");
    assert!(walk.iter().all(|f| f["level"] == "ok"), "{walk:?}");
    for step in
        [&format!("issuer {ISSUER} = mas.public_base"), "v3/login is answered by MAS", "QR-code login can start"]
    {
        assert!(joined.contains(step), "{step:?} in {joined}");
    }

    let k = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string(), format!("matrix.{SERVER_NAME}")]).unwrap();
    write(trust, "self-signed.pem", &k.cert.pem());
    write(trust, "self-signed.key", &k.key_pair.serialize_pem());
    let files = format!(
        "tls = \"files\"\ncertificate = \"{0}/self-signed.pem\"\nkey = \"{0}/self-signed.key\"\n",
        trust.display()
    );
    s.write_config(&config_with_tls(net, trust, &files));
    let out = s.masctl(&["switch"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let (lines, walk, ok) = doctor_walk(s);
    let joined = lines.join("\n");
    println!("doctor, self-signed edge:\n{joined}");
    assert!(!ok, "{joined}");
    let bad: Vec<&String> = lines.iter().filter(|l| l.starts_with('❌')).collect();
    assert_eq!(bad.len(), 2, "one line per hostname: {joined}");
    for host in [SERVER_NAME.to_string(), format!("matrix.{SERVER_NAME}")] {
        let line = bad.iter().find(|l| l.contains(&format!("https://{host}/"))).unwrap_or_else(|| panic!("{joined}"));
        assert!(line.contains("certificate chain") && line.contains("pebble-root.pem"), "{line}");
    }
    assert_eq!(walk.iter().filter(|f| f["level"] == "error").count(), 2, "{walk:?}");
}

/// The files one driver run reads and writes: the user's password (read) and
/// the tokens it obtained (written), both 0600.
struct Run<'a> {
    user: &'a str,
    password_file: &'a Path,
    tokens_file: &'a Path,
    ca: &'a Path,
    edge_ip: &'a str,
    /// The network the edge and the browser share, and the edge's container.
    net: &'a str,
    proxy: &'a str,
}

/// One driver run; panics with the driver's JSON when an assertion failed, or when
/// the password or a token it has obtained so far shows up in a command line or a
/// container's inspect output while it runs.
fn drive(mode: &str, r: &Run) -> serde_json::Value {
    let (user, password_file, ca, edge_ip) = (r.user, r.password_file, r.ca, r.edge_ip);
    let resolve: Vec<String> = ["b.test", "matrix.b.test"].iter().map(|h| format!("{h}={edge_ip}")).collect();
    let mut args = vec![
        "--mode",
        mode,
        "--server-name",
        SERVER_NAME,
        "--expected-issuer",
        ISSUER,
        "--ca-file",
        ca.to_str().unwrap(),
        "--user",
        user,
        "--password-file",
        password_file.to_str().unwrap(),
        "--tokens-file",
        r.tokens_file.to_str().unwrap(),
    ];
    for r in &resolve {
        args.extend(["--resolve", r]);
    }
    // A real mas-cli built here runs the permissive policy stub (MAS's real policy
    // needs opa): the refusals only that policy makes are the stand-in's to show.
    if std::env::var_os("MASCTL_TEST_MAS_DIST").is_some() {
        args.push("--policy-stub");
    }
    let script = common::repo().join("tests/py/next_gen_login.py");
    let net = BrowserNet::join(r.net, r.proxy);
    let mut child = net
        .python()
        .arg(script)
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut scans = 0;
    while child.try_wait().unwrap().is_none() {
        let leaks = scan_running(&secrets(r));
        assert!(leaks.is_empty(), "{mode}: a secret in {leaks:?}");
        scans += 1;
    }
    assert!(scans > 0, "{mode}: no scan ran while the driver did");
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let json: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{mode}: no JSON result ({e}):\n{stdout}"));
    let stderr = text(&out.stderr);
    assert!(out.status.success() && json["ok"] == true, "{mode}: {json:#}\n{stderr}\n{}", chain(edge_ip, ca));
    json
}

/// The password and every token the driver has written so far.
fn secrets(r: &Run) -> Vec<String> {
    let mut all = vec![std::fs::read_to_string(r.password_file).unwrap().trim().to_string()];
    let tokens = std::fs::read_to_string(r.tokens_file).unwrap_or_default();
    all.extend(tokens.lines().filter(|l| !l.is_empty()).map(str::to_string));
    all
}

/// Where any of `needles` is seen now: a process's command line on this machine,
/// or a running container's inspect output (command, environment, labels).
fn scan_running(needles: &[String]) -> Vec<String> {
    let mut seen = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c);
            if needles.iter().any(|n| c.contains(n.as_str())) {
                seen.push(format!("/proc/{}/cmdline", e.file_name().to_string_lossy()));
            }
        }
    }
    let ids = docker_ok(&["ps", "-q"]);
    let mut args = vec!["inspect"];
    args.extend(ids.lines());
    let inspect = text(&docker(&args).stdout);
    seen.extend(needles.iter().filter(|n| inspect.contains(n.as_str())).map(|_| "docker inspect".to_string()));
    seen
}

/// After the runs: no token or password in a unit file, the journal or any
/// container's inspect output.
fn assert_no_leaks(s: &Stack, r: &Run) {
    let needles = secrets(r);
    assert!(needles.len() > 10, "the driver recorded its tokens: {} secrets", needles.len());
    let units = s.unit_files();
    let journal = docker_ok(&["exec", &s.host(), "journalctl", "--no-pager", "-o", "cat"]);
    for (i, n) in needles.iter().enumerate() {
        assert!(!units.contains(n.as_str()), "secret #{i} in a unit file");
        assert!(!journal.contains(n.as_str()), "secret #{i} in the journal");
    }
    let leaks = scan_running(&needles);
    assert!(leaks.is_empty(), "a secret in {leaks:?}");
}

/// What the edge presents for the server name, verified against `ca` (for a
/// failure's message).
fn chain(edge_ip: &str, ca: &Path) -> String {
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("{edge_ip}:443"), "-servername", SERVER_NAME, "-showcerts"])
        .arg("-CAfile")
        .arg(ca)
        .stdin(std::process::Stdio::null())
        .output();
    out.map(|o| {
        let t = text(&o.stdout);
        t.lines()
            .filter(|l| l.contains("s:") || l.contains("i:") || l.contains("Verify return"))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

#[test]
fn element_x_signs_in_through_mas_over_tls() {
    assert!(executable(Path::new("/usr/bin/chromium")), "Debian's chromium is needed (apt-get install chromium)");
    let mut d = Docker::new("ngl");
    let ca = tempfile::tempdir().unwrap();
    set_mode(ca.path(), 0o755);
    let net = pebble(&mut d, ca.path());
    let images = images_with_standin();
    let s = Stack::with_server_name("ngl", SERVER_NAME, images.path().to_path_buf());
    let trust = s.root.join("test-ca");
    std::fs::create_dir_all(&trust).unwrap();
    for f in ["pebble.pem", "pebble-root.pem"] {
        std::fs::copy(ca.path().join(f), trust.join(f)).unwrap();
        set_mode(&trust.join(f), 0o644);
    }
    s.write_config(&config(&s, &net, &trust));
    s.up();
    let edge_ip = docker_ok(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
        &s.container("proxy"),
    ]);
    assert!(!edge_ip.is_empty(), "the edge has no address on {net}");

    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("password");
    std::fs::write(&password_file, "bob-password-1\n").unwrap();
    set_mode(&password_file, 0o600);
    let out = s.masctl_stdin("bob-password-1\n", &["register-user", "bob"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));

    let proxy = s.container("proxy");
    let root = ca.path().join("pebble-root.pem");
    let tokens_file = secrets.path().join("tokens");
    let bob = Run {
        user: "bob",
        password_file: &password_file,
        tokens_file: &tokens_file,
        ca: &root,
        edge_ip: &edge_ip,
        net: &net,
        proxy: &proxy,
    };
    for mode in ["login", "negative", "device"] {
        let result = drive(mode, &bob);
        println!("{mode}: {result}");
    }
    assert_no_leaks(&s, &bob);
    // prompt=create: a new account made on MAS's registration page.
    let carol_password = secrets.path().join("carol-password");
    std::fs::write(&carol_password, "carol-password-1\n").unwrap();
    set_mode(&carol_password, 0o600);
    let carol = Run { user: "carol", password_file: &carol_password, ..bob };
    let result = drive("register", &carol);
    println!("register: {result}");
    // The display name given on MAS's registration step reached Synapse's profile.
    let pg = s.container("postgres");
    wait_for("carol's display name in Synapse", Duration::from_secs(60), || {
        let q = format!("SELECT displayname FROM profiles WHERE full_user_id = '@carol:{SERVER_NAME}'");
        (common::psql(&pg, "synapse", &q).trim() == "Display carol").then_some(())
    });
    assert_no_leaks(&s, &carol);
    assert_no_leaks(&s, &bob);
    doctor_walks_the_client_path(&s, &net, &trust);
}
