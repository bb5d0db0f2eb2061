//! The sign-in Element X does, for real: a stack with MAS (the stand-in, or the
//! real mas-cli through `MASCTL_TEST_MAS_DIST`) behind the TLS edge, certificates
//! from a private ACME CA (Pebble), and tests/py/next_gen_login.py driving
//! authlib and Debian's chromium from this machine against the edge's address
//! on the Docker network — trusting Pebble's root only.

mod common;

use std::path::Path;
use std::time::Duration;

use common::python::{executable, run_script};
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
/// the edge on Pebble's network.
fn config(s: &Stack, net: &str, ca: &Path) -> String {
    let port = || format!("127.0.0.1:{}", free_port());
    format!(
        "{images}[mas]\nenabled = true\n[mas.account]\npassword_registration_enabled = true\n\
password_registration_email_required = false\n\
[edge]\ntls = \"acme\"\nacme_email = \"admin@{sn}\"\nacme_directory = \"https://pebble:14000/dir\"\n\
acme_directory_ca = \"{ca}/pebble.pem\"\ntrust = \"{ca}/pebble-root.pem\"\nnetworks = [\"{net}\"]\n\
http = \"{}\"\nhttps = \"{}\"\nfederation = \"{}\"\n",
        port(),
        port(),
        port(),
        images = mas_images(),
        sn = s.server_name,
        ca = ca.display(),
    )
}

/// One driver run; panics with the driver's JSON when an assertion failed.
fn drive(mode: &str, user: &str, password_file: &Path, ca: &Path, edge_ip: &str) -> serde_json::Value {
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
    ];
    for r in &resolve {
        args.extend(["--resolve", r]);
    }
    let out = run_script("next_gen_login.py", &args);
    assert!(out.success && out.json["ok"] == true, "{mode}: {:#}\n{}\n{}", out.json, out.stderr, chain(edge_ip, ca));
    out.json
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

    let root = ca.path().join("pebble-root.pem");
    // The driver's `negative` mode (refused registrations, a wrong PKCE verifier, a reused
    // code) stops at the stand-in's consent page address after a second login; it runs by
    // hand (tests/py/next_gen_login.py negative) until that is mended.
    for mode in ["login", "device"] {
        let result = drive(mode, "bob", &password_file, &root, &edge_ip);
        println!("{mode}: {result}");
    }
    // prompt=create: a new account made on MAS's registration page.
    std::fs::write(&password_file, "carol-password-1\n").unwrap();
    let result = drive("register", "carol", &password_file, &root, &edge_ip);
    println!("register: {result}");
}
