//! Single sign-on with a real OpenID provider: panva's oidc-provider (tests/idp,
//! the `idp` image on trixie's Node.js) in a container on the stack's network as
//! `idp`, serving HTTPS with a certificate from the test's CA, which MAS and
//! Synapse trust through `[edge] extra_ca` (added to their image's roots). Debian's
//! chromium (tests/py/sso_login.py) signs people in.
//!
//! - `mas_signs_in_through_a_real_openid_provider`: MAS's login page → "Continue
//!   with Test IdP" → the IdP's login → MAS creates the account from the claims
//!   (localpart, display name, email) → the Matrix session works; doctor's provider
//!   line ✅, then ❌ with the IdP stopped.
//! - `synapse_sso_users_keep_their_matrix_id_through_syn2mas`: Synapse's own OIDC
//!   signs alice in and she makes a room; MAS with `migration_in_progress`, a
//!   provider whose `synapse_idp_id` lacks the `oidc-` prefix is refused by
//!   `syn2mas check` naming both; fixed → migrate → MAS takes over → alice signs in
//!   through MAS and the IdP as the same Matrix ID, still in her room.
//!
//! Both look for the client secrets everywhere they must not be.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::python::{BrowserNet, executable};
use common::stack::{Stack, free_port, text};
use common::{Docker, HARDENED, Root, docker, docker_ok, grep_tree, images_with_standin, mas_images, repo, wait_for};
use serde_json::json;

const SERVER_NAME: &str = "sso.test";
const ISSUER: &str = "https://idp:8443/";
const PROVIDER_ID: &str = "01JSHPZHAXC50QBKH67MH33TNF";
const ALICE_SUB: &str = "c2b6e1a0-alice";

fn write(p: &Path, data: &str, mode: u32) {
    std::fs::write(p, data).unwrap();
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// A 32-character secret from the OS random source (hex).
fn random_secret() -> String {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b)).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The test's CA and leaf certificates signed by it, as PEM files in `dir`:
/// ca.pem, edge.{pem,key} (the public names), idp.{pem,key} (the alias `idp`).
fn certificates(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca.distinguished_name.push(rcgen::DnType::CommonName, "masctl sso test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    write(&dir.join("ca.pem"), &ca_cert.pem(), 0o644);
    for (name, hosts) in
        [("edge", vec![SERVER_NAME.to_string(), format!("matrix.{SERVER_NAME}")]), ("idp", vec!["idp".to_string()])]
    {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(hosts).unwrap();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
        write(&dir.join(format!("{name}.pem")), &cert.pem(), 0o644);
        // The proxy reads edge.key as its own uid (as tests/email writes it); the
        // IdP's copy goes to its own directory.
        write(&dir.join(format!("{name}.key")), &key.serialize_pem(), 0o644);
    }
}

/// tests/idp with `npm ci` done, under the target directory (node_modules is not
/// in the checkout); redone when package-lock.json changes.
fn idp_site() -> PathBuf {
    let dir = repo().join("target/test-idp");
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::File::create(repo().join("target/test-idp.lock")).unwrap();
    lock.lock().unwrap();
    for f in ["idp.mjs", "package.json", "package-lock.json"] {
        std::fs::copy(repo().join("tests/idp").join(f), dir.join(f)).unwrap();
    }
    let wanted = std::fs::read_to_string(dir.join("package-lock.json")).unwrap();
    let stamp = dir.join("installed");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let _ = std::fs::remove_dir_all(dir.join("node_modules"));
        let out = Command::new("npm")
            .args(["ci", "--omit=dev", "--no-audit", "--no-fund", "--ignore-scripts"])
            .current_dir(&dir)
            .output()
            .expect("npm is installed (apt-get install npm)");
        assert!(out.status.success(), "npm ci in {}: {}{}", dir.display(), text(&out.stdout), text(&out.stderr));
        std::fs::write(&stamp, &wanted).unwrap();
    }
    dir
}

/// The `idp` image (images/idp.toml) built from `idp_site()`; its ID.
fn idp_image() -> String {
    let site = idp_site();
    let root = Root::new();
    let input = format!("idp={}", site.display());
    let out = root.ok(&["image", "load", "idp", "--input", &input]);
    let line = out.lines().find(|l| l.starts_with("idp ")).unwrap_or_else(|| panic!("no ID in {out}"));
    line.split_whitespace().nth(1).unwrap().to_string()
}

/// What the IdP knows: its TLS files, both clients' secrets and alice's password,
/// in a directory its uid (65534) reads and nobody else.
struct Idp {
    dir: tempfile::TempDir,
    container: String,
}

fn public(path: &str) -> String {
    format!("https://matrix.{SERVER_NAME}/{path}")
}

fn chown_nobody(p: &Path) {
    std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
}

/// The IdP on `net` as `idp`, clients `mas` and `synapse` with `mas_secret` and
/// `synapse_secret`, account alice (password in `alice_pw`); waits for its
/// discovery document over HTTPS, verified against the test CA.
fn start_idp(d: &mut Docker, net: &str, certs: &Path, secrets: (&str, &str), alice_pw: &str) -> Idp {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let files = [
        ("idp.pem", std::fs::read_to_string(certs.join("idp.pem")).unwrap(), 0o644),
        ("idp.key", std::fs::read_to_string(certs.join("idp.key")).unwrap(), 0o600),
        ("mas-secret", format!("{}\n", secrets.0), 0o600),
        ("synapse-secret", format!("{}\n", secrets.1), 0o600),
        ("alice-password", format!("{alice_pw}\n"), 0o600),
    ];
    for (name, data, mode) in &files {
        let p = dir.path().join(name);
        write(&p, data, *mode);
        chown_nobody(&p);
    }
    let config = json!({
        "issuer": ISSUER,
        "listen": {"host": "0.0.0.0", "port": 8443},
        "tls": {"key": "/etc/idp/idp.key", "cert": "/etc/idp/idp.pem"},
        "clients": [
            {"client_id": "mas", "client_secret_file": "/etc/idp/mas-secret",
             "redirect_uris": [public(&format!("auth/upstream/callback/{PROVIDER_ID}"))]},
            {"client_id": "synapse", "client_secret_file": "/etc/idp/synapse-secret",
             "redirect_uris": [public("_synapse/client/oidc/callback")]},
        ],
        "accounts": [{"sub": ALICE_SUB, "password_file": "/etc/idp/alice-password", "preferred_username": "alice",
                      "name": "Alice Liddell", "email": "alice@sso.test", "email_verified": true}],
    });
    write(&dir.path().join("config.json"), &config.to_string(), 0o644);
    let image = idp_image();
    let mount = format!("{}:/etc/idp:ro", dir.path().display());
    let mut args = vec!["--network", net, "--network-alias", "idp", "-v", &mount];
    args.extend(HARDENED);
    args.push(&image);
    let container = d.run("idp", &args);
    let idp = Idp { dir, container };
    idp_ready(&idp, certs);
    idp
}

fn ip_on(container: &str, net: &str) -> String {
    docker_ok(&["inspect", "-f", &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"), container])
}

/// The IdP's discovery document, fetched from this machine as MAS would (the CA
/// only, the name `idp`); waits until it answers and checks its issuer.
fn idp_ready(idp: &Idp, certs: &Path) {
    let net =
        docker_ok(&["inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}", &idp.container]);
    let doc = wait_for("the IdP's discovery over HTTPS", Duration::from_secs(60), || {
        let ip = ip_on(&idp.container, &net);
        if ip.is_empty() {
            return None;
        }
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "5", "--cacert"])
            .arg(certs.join("ca.pem"))
            .args(["--resolve", &format!("idp:8443:{ip}"), "https://idp:8443/.well-known/openid-configuration"])
            .output()
            .unwrap();
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice::<serde_json::Value>(&out.stdout).ok()
    });
    assert_eq!(doc["issuer"], ISSUER, "the IdP publishes its issuer as configured: {doc}");
    let _ = &idp.dir;
}

/// `[edge]`: TLS from files for the public names, the test CA added to MAS's and
/// Synapse's roots.
fn edge(files: &Path) -> String {
    let port = || format!("127.0.0.1:{}", free_port());
    format!(
        "[edge]\ntls = \"files\"\ncertificate = \"{f}/edge.pem\"\nkey = \"{f}/edge.key\"\nextra_ca = [\"{f}/ca.pem\"]\n\
http = \"{}\"\nhttps = \"{}\"\nfederation = \"{}\"\n",
        port(),
        port(),
        port(),
        f = files.display(),
    )
}

/// MAS's provider for the IdP, mapping Synapse's users of `synapse_idp_id`.
fn mas_provider(files: &Path, synapse_idp_id: &str) -> String {
    format!(
        "[[mas.upstream_oauth2.providers]]\nid = \"{PROVIDER_ID}\"\nhuman_name = \"Test IdP\"\nissuer = \"{ISSUER}\"\n\
client_id = \"mas\"\nclient_secret_file = \"{f}/mas-client-secret\"\ntoken_endpoint_auth_method = \"client_secret_post\"\n\
scope = \"openid profile email\"\nsynapse_idp_id = \"{synapse_idp_id}\"\n\
[mas.upstream_oauth2.providers.claims_imports]\n\
localpart = {{ action = \"require\", template = \"{{{{ user.preferred_username }}}}\" }}\n\
displayname = {{ action = \"suggest\", template = \"{{{{ user.name }}}}\" }}\n\
email = {{ action = \"suggest\", template = \"{{{{ user.email }}}}\" }}\n",
        f = files.display(),
    )
}

/// Synapse's own OIDC with the IdP (as a host has it before MAS).
fn synapse_oidc(files: &Path) -> String {
    format!(
        "[[synapse.oidc_providers]]\nidp_id = \"idp\"\nidp_name = \"Test IdP\"\nissuer = \"{ISSUER}\"\n\
client_id = \"synapse\"\nclient_secret_file = \"{f}/synapse-client-secret\"\nscopes = [\"openid\", \"profile\", \"email\"]\n\
localpart_template = \"{{{{ user.preferred_username }}}}\"\ndisplay_name_template = \"{{{{ user.name }}}}\"\n",
        f = files.display(),
    )
}

/// A stack's test files: certificates, the client secrets as 0600 files (masctl's
/// inputs), alice's IdP password; returns (files dir, MAS secret, Synapse secret).
fn test_files(s: &Stack) -> (PathBuf, String, String) {
    let files = s.root.join("sso-files");
    std::fs::create_dir_all(&files).unwrap();
    certificates(&files);
    let (mas_secret, synapse_secret) = (random_secret(), random_secret());
    write(&files.join("mas-client-secret"), &format!("{mas_secret}\n"), 0o600);
    write(&files.join("synapse-client-secret"), &format!("{synapse_secret}\n"), 0o600);
    write(&files.join("alice-password"), "alice-idp-password-1\n", 0o600);
    (files, mas_secret, synapse_secret)
}

/// Where any of `needles` is seen now: a command line or environment on this
/// machine or in the host container, any container's inspect output.
fn scan_running(s: &Stack, needles: &[String]) -> Vec<String> {
    let mut seen = Vec::new();
    let hit = |data: &[u8]| {
        let t = String::from_utf8_lossy(data);
        needles.iter().any(|n| t.contains(n.as_str()))
    };
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        for f in ["cmdline", "environ"] {
            if let Ok(c) = std::fs::read(e.path().join(f))
                && hit(&c)
            {
                seen.push(format!("/proc/{}/{f}", e.file_name().to_string_lossy()));
            }
        }
    }
    let script = "for f in /proc/[0-9]*/cmdline /proc/[0-9]*/environ; do cat \"$f\" 2>/dev/null; echo; done";
    if hit(&docker(&["exec", &s.host(), "sh", "-c", script]).stdout) {
        seen.push("a command line or environment in the host".into());
    }
    let ids = docker_ok(&["ps", "-aq"]);
    let mut args = vec!["inspect"];
    args.extend(ids.lines());
    if hit(&docker(&args).stdout) {
        seen.push("docker inspect".into());
    }
    seen
}

/// No client secret in the store, a unit file, the journal, a command line, an
/// environment or `docker inspect`; each of `kept` (those the current generation
/// uses) is in masctl's secrets, unreadable to others.
fn assert_secrets_nowhere(s: &Stack, secrets: &[&str], kept: &[&str]) {
    let needles: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
    let store = grep_tree(&s.root.join("store"), &needles);
    assert!(store.is_empty(), "a client secret in the store: {store:?}");
    let units = s.unit_files();
    assert!(!needles.iter().any(|n| units.contains(n.as_str())), "a client secret in a unit file");
    let journal = docker_ok(&["exec", &s.host(), "journalctl", "--no-pager", "-o", "cat"]);
    assert!(!needles.iter().any(|n| journal.contains(n.as_str())), "a client secret in the journal");
    let leaks = scan_running(s, &needles);
    assert!(leaks.is_empty(), "a client secret in {leaks:?}");
    for n in kept.iter().map(|k| k.to_string()) {
        let held = grep_tree(&s.root.join("secrets"), std::slice::from_ref(&n));
        assert!(!held.is_empty(), "masctl keeps its copy of each client secret under secrets/");
        for f in held {
            let m = std::fs::metadata(&f).unwrap();
            let mode = std::os::unix::fs::PermissionsExt::mode(&m.permissions());
            println!("client secret copy {f}: mode {mode:o}, uid {}", std::os::unix::fs::MetadataExt::uid(&m));
            assert_eq!(mode & 0o077, 0, "{f} is readable by others: {mode:o}");
        }
    }
}

/// Runs tests/py/sso_login.py (`args` after the common ones) with the public names
/// and `idp` mapped; its JSON, scanning for the client secrets while it runs.
fn browser(s: &Stack, files: &Path, idp: &Idp, secrets: &[&str], args: &[&str]) -> serde_json::Value {
    let edge_ip = ip_on(&s.container("proxy"), &s.instance);
    let idp_ip = ip_on(&idp.container, &s.instance);
    assert!(!edge_ip.is_empty() && !idp_ip.is_empty(), "addresses on {}: {edge_ip:?} {idp_ip:?}", s.instance);
    let mut all = vec!["--ca".to_string(), files.join("ca.pem").display().to_string()];
    for h in [SERVER_NAME.to_string(), format!("matrix.{SERVER_NAME}")] {
        all.extend(["--resolve".to_string(), format!("{h}={edge_ip}")]);
    }
    all.extend(["--resolve".to_string(), format!("idp={idp_ip}")]);
    all.extend(["--screenshots".to_string(), s.root.join("screenshots").display().to_string()]);
    all.extend(args.iter().map(|a| a.to_string()));
    let needles: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
    let net = BrowserNet::join(&s.instance, &s.container("proxy"));
    let mut child = net
        .python()
        .arg(repo().join("tests/py/sso_login.py"))
        .args(&all)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut scans = 0;
    while child.try_wait().unwrap().is_none() {
        let leaks = scan_running(s, &needles);
        assert!(leaks.is_empty(), "{args:?}: a client secret in {leaks:?}");
        scans += 1;
    }
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{args:?}:\n{stdout}\n{}\nMAS:\n{}", text(&out.stderr), mas_journal_tail(s));
    assert!(scans > 0, "no scan ran while the browser did");
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{args:?}: no JSON ({e}):\n{stdout}"))
}

/// The last lines MAS logged, for a failure's message.
fn mas_journal_tail(s: &Stack) -> String {
    text(&docker(&["exec", &s.host(), "journalctl", "--no-pager", "-o", "cat", "-n", "25", "-u", "masctl-mas"]).stdout)
}

/// Alice through MAS's login page, the provider's button and the IdP, as a
/// Matrix client: the access token and device sso_login.py got, and its JSON.
fn mas_session(s: &Stack, files: &Path, idp: &Idp, secrets: &[&str]) -> (String, String, serde_json::Value) {
    let mas = public("auth/");
    let pw = files.join("alice-password").display().to_string();
    let args =
        ["mas-session", "--mas", &mas, "--provider", "Test IdP", "--user", "alice", "--password-file", pw.as_str()];
    let got = browser(s, files, idp, secrets, &args);
    let token = got["access_token"].as_str().unwrap_or_else(|| panic!("no access token: {got}")).to_string();
    let device = got["device_id"].as_str().unwrap().to_string();
    (token, device, got)
}

/// doctor's ❌ lines, for a failure's message.
fn doctor_errors(s: &Stack) -> String {
    let out = text(&s.masctl(&["doctor"]).stdout);
    out.lines().filter(|l| l.starts_with('❌')).collect::<Vec<_>>().join("\n")
}

/// doctor's line for the provider (text, JSON finding) and whether doctor succeeded.
fn doctor_provider(s: &Stack) -> (String, serde_json::Value, bool) {
    let out = s.masctl(&["doctor"]);
    let stdout = text(&out.stdout);
    // doctor's own lines (the probe's output is shown above them).
    let finding_line = |l: &&str| l.contains("idp:8443") && (l.starts_with('✅') || l.starts_with('❌'));
    let line = stdout.lines().find(finding_line).unwrap_or_else(|| panic!("no provider line:\n{stdout}"));
    let json = text(&s.masctl(&["doctor", "--json"]).stdout);
    let report = json.rfind("\n[\n").map_or(json.as_str(), |i| &json[i + 1..]);
    let findings: Vec<serde_json::Value> = serde_json::from_str(report).unwrap_or_else(|e| panic!("{e}: {report}"));
    let f = findings.into_iter().find(|f| f["message"].as_str().is_some_and(|m| m.contains("idp:8443")));
    (line.to_string(), f.unwrap_or_else(|| panic!("no provider finding in {report}")), out.status.success())
}

/// Alice's Matrix session with `token`: whoami names her (and the device from the
/// scope), /sync answers.
/// The client-server API through the edge (`tls = "files"` publishes no plain
/// port): curl resolves the public name to the proxy and trusts the test's CA; the
/// token and bodies go in 0600 files, never on a command line.
struct EdgeClient {
    edge_ip: String,
    ca: PathBuf,
    dir: tempfile::TempDir,
}

impl EdgeClient {
    fn new(s: &Stack, files: &Path, token: Option<&str>) -> EdgeClient {
        let dir = tempfile::tempdir().unwrap();
        let auth = token.map(|t| format!("Authorization: Bearer {t}\n")).unwrap_or_default();
        write_private(&dir.path().join("headers"), &format!("Content-Type: application/json\n{auth}"));
        EdgeClient { edge_ip: ip_on(&s.container("proxy"), &s.instance), ca: files.join("ca.pem"), dir }
    }

    /// The HTTP status and body of one call.
    fn call(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> (u16, String) {
        let host = format!("matrix.{SERVER_NAME}");
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "--max-time", "30", "-w", "\n%{http_code}", "-X", method, "--cacert"]).arg(&self.ca);
        cmd.args(["--resolve", &format!("{host}:443:{}", self.edge_ip), "-H"]);
        cmd.arg(format!("@{}", self.dir.path().join("headers").display()));
        if let Some(b) = body {
            let f = self.dir.path().join("body.json");
            write_private(&f, &b.to_string());
            cmd.arg("--data-binary").arg(format!("@{}", f.display()));
        }
        let out = cmd.arg(format!("https://{host}{path}")).output().unwrap();
        let all = text(&out.stdout);
        let (body, status) = all.rsplit_once('\n').unwrap_or(("", &all));
        (status.trim().parse().unwrap_or(0), body.to_string())
    }

    fn json(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> serde_json::Value {
        let (status, text) = self.call(method, path, body);
        assert_eq!(status, 200, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
    }

    fn get(&self, path: &str) -> serde_json::Value {
        self.json("GET", path, None)
    }

    fn post(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        self.json("POST", path, Some(body))
    }
}

fn write_private(p: &Path, data: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(p).unwrap();
    std::io::Write::write_all(&mut f, data.as_bytes()).unwrap();
}

/// Synapse answers `/versions` through the edge.
fn wait_serving(s: &Stack, files: &Path) {
    wait_for("Synapse to answer /versions through the edge", Duration::from_secs(120), || {
        (EdgeClient::new(s, files, None).call("GET", "/_matrix/client/versions", None).0 == 200).then_some(())
    });
}

fn session_works(s: &Stack, files: &Path, token: &str, device: Option<&str>) -> EdgeClient {
    let c = EdgeClient::new(s, files, Some(token));
    let me = c.get("/_matrix/client/v3/account/whoami");
    assert_eq!(me["user_id"], format!("@alice:{SERVER_NAME}"), "{me}");
    if let Some(d) = device {
        assert_eq!(me["device_id"], d, "{me}");
    }
    let sync = c.get("/_matrix/client/v3/sync?timeout=0");
    assert!(sync["next_batch"].is_string(), "{sync}");
    c
}

fn synapse_displayname(s: &Stack) -> String {
    s.sql("synapse", &format!("SELECT displayname FROM profiles WHERE full_user_id = '@alice:{SERVER_NAME}'"))
}

/// MAS's link for alice's subject at the provider: the MAS username it points at.
fn mas_link(s: &Stack) -> String {
    s.sql(
        "mas",
        &format!(
            "SELECT u.username FROM upstream_oauth_links l JOIN users u USING (user_id) WHERE l.subject = '{ALICE_SUB}'"
        ),
    )
}

fn preflight() {
    assert!(executable(Path::new("/usr/bin/chromium")), "Debian's chromium is needed (apt-get install chromium)");
}

#[test]
fn mas_signs_in_through_a_real_openid_provider() {
    preflight();
    let images = images_with_standin();
    let s = Stack::with_server_name("sso-mas", SERVER_NAME, images.path().to_path_buf());
    let (files, mas_secret, synapse_secret) = test_files(&s);
    s.write_config(&format!(
        "{}[mas]\nenabled = true\n{}{}",
        mas_images(),
        mas_provider(&files, "oidc-idp"),
        edge(&files)
    ));
    s.up();
    let mut d = Docker::new("sso-mas");
    let idp = start_idp(&mut d, &s.instance, &files, (&mas_secret, &synapse_secret), "alice-idp-password-1");
    let secrets = [mas_secret.as_str()];

    let (line, finding, ok) = doctor_provider(&s);
    println!("doctor: {line}");
    assert!(ok && line.starts_with('✅') && finding["level"] == "ok", "{line}\n{finding}\n{}", doctor_errors(&s));

    // A new account from the claims, then a working Matrix session.
    let (token, device, got) = mas_session(&s, &files, &idp, &secrets);
    println!("mas-session: imported {}", got["imported"]);
    assert_eq!(got["landed_on_link_page"], true, "a first sign-in creates the account: {got}");
    // `require`: MAS shows the Matrix ID it will create, read-only, and no username field.
    assert_eq!(
        got["imported"]["mxid"],
        format!("@alice:{SERVER_NAME}"),
        "the localpart from preferred_username: {got}"
    );
    assert!(got["imported"].get("username").is_none(), "a required localpart is not editable: {got}");
    assert_eq!(got["imported"]["display_name"], "Alice Liddell", "{got}");
    assert_eq!(got["imported"]["email"], "alice@sso.test", "{got}");
    assert_eq!(mas_link(&s).trim(), "alice", "MAS links the IdP's subject to alice");
    let emails = s.sql(
        "mas",
        "SELECT e.email FROM user_emails e JOIN users u USING (user_id) WHERE u.username = 'alice' ORDER BY e.email",
    );
    assert_eq!(emails.trim(), "alice@sso.test", "the email from the claims");
    wait_for("alice on Synapse with her display name", Duration::from_secs(60), || {
        (synapse_displayname(&s).trim() == "Alice Liddell").then_some(())
    });
    session_works(&s, &files, &token, Some(&device));

    // The IdP stopped: doctor's ❌ names the provider; started again: ✅.
    let generation = s.current();
    docker_ok(&["stop", &idp.container]);
    let (line, finding, ok) = doctor_provider(&s);
    println!("doctor, IdP stopped: {line}");
    assert!(!ok && line.starts_with('❌') && finding["level"] == "error", "{line}\n{finding}");
    assert!(line.contains(ISSUER.trim_end_matches('/')), "{line}");
    assert_eq!(s.current(), generation, "doctor changed nothing");
    docker_ok(&["start", &idp.container]);
    idp_ready(&idp, &files);
    let (line, _, ok) = doctor_provider(&s);
    assert!(ok && line.starts_with('✅'), "{line}");

    assert_secrets_nowhere(&s, &secrets, &secrets);
}

#[test]
fn synapse_sso_users_keep_their_matrix_id_through_syn2mas() {
    preflight();
    let images = images_with_standin();
    let s = Stack::with_server_name("sso-syn2mas", SERVER_NAME, images.path().to_path_buf());
    let (files, mas_secret, synapse_secret) = test_files(&s);
    // MAS's image named from the start (MAS still off), as tests/mas does. The IdP
    // needs the stack's network, and Synapse fetches its discovery when it starts:
    // the host first, then the IdP, then Synapse's SSO.
    let before_mas = |sso: &str| format!("{}{sso}{}", mas_images(), edge(&files));
    s.write_config(&before_mas(""));
    s.up();
    let mut d = Docker::new("sso-syn2mas");
    let idp = start_idp(&mut d, &s.instance, &files, (&mas_secret, &synapse_secret), "alice-idp-password-1");
    s.write_config(&before_mas(&synapse_oidc(&files)));
    s.masctl_ok(&["switch"]);
    wait_serving(&s, &files);
    let served = s.served_config();
    assert_eq!(served["oidc_providers"][0]["idp_id"], "idp", "{}", served["oidc_providers"]);
    assert_eq!(served["oidc_providers"][0]["issuer"], ISSUER, "{}", served["oidc_providers"]);

    // Alice signs in through Synapse's SSO and makes a room.
    let pw = files.join("alice-password").display().to_string();
    let synapse_url = format!("https://matrix.{SERVER_NAME}");
    let both = [mas_secret.as_str(), synapse_secret.as_str()];
    let args = ["synapse", "--synapse", &synapse_url, "--idp-id", "idp", "--user", "alice", "--password-file", &pw];
    let got = browser(&s, &files, &idp, &both, &args);
    assert_eq!(got["user_id"], format!("@alice:{SERVER_NAME}"), "{got}");
    let recorded =
        s.sql("synapse", "SELECT auth_provider || ' ' || external_id || ' ' || user_id FROM user_external_ids");
    assert_eq!(recorded.trim(), format!("oidc-idp {ALICE_SUB} @alice:{SERVER_NAME}"));
    let before = session_works(&s, &files, got["access_token"].as_str().unwrap(), None);
    let room = before.post("/_matrix/client/v3/createRoom", &json!({"name": "before MAS"}));
    let room_id = room["room_id"].as_str().unwrap_or_else(|| panic!("{room}")).to_string();
    assert_secrets_nowhere(&s, &both, &[synapse_secret.as_str()]);

    // MAS with the migration flag. A synapse_idp_id without Synapse's prefix is
    // refused where the config says it; one for another provider passes the
    // switch, and syn2mas check refuses naming both ids; nothing migrates.
    let migrating = |idp_id: &str| {
        format!(
            "{}[mas]\nenabled = true\nmigration_in_progress = true\n{}{}{}",
            mas_images(),
            mas_provider(&files, idp_id),
            synapse_oidc(&files),
            edge(&files)
        )
    };
    let generation = s.current();
    s.write_config(&migrating("idp"));
    let refused = s.masctl(&["switch"]);
    let why = text(&refused.stderr);
    println!("switch, synapse_idp_id = \"idp\": {why}");
    assert!(!refused.status.success() && why.contains("masctl.toml:") && why.contains("oidc-<idp_id>"), "{why}");
    assert_eq!(s.current(), generation, "a refused config changes nothing");
    s.write_config(&migrating("oidc-other"));
    s.masctl_ok(&["switch"]);
    wait_serving(&s, &files);
    let check = s.masctl(&["syn2mas", "check"]);
    let why = format!("{}{}", text(&check.stdout), text(&check.stderr));
    println!("syn2mas check, synapse_idp_id = \"oidc-other\":\n{why}");
    assert!(!check.status.success(), "{why}");
    for w in ["\"oidc-idp\"", "they map \"oidc-other\"", "1 user(s)"] {
        assert!(why.contains(w), "{w:?} in {why}");
    }
    assert_eq!(s.sql("mas", "SELECT count(*) FROM users"), "0", "nothing migrated");
    assert!(!s.root.join("mas-migrated").exists());

    // Fixed: check, migrate, flag off (Synapse's own SSO goes with it), switch.
    s.write_config(&migrating("oidc-idp"));
    s.masctl_ok(&["switch"]);
    wait_serving(&s, &files);
    let check = s.masctl(&["syn2mas", "check"]);
    assert!(check.status.success(), "{}{}", text(&check.stdout), text(&check.stderr));
    let migrate = s.masctl(&["syn2mas", "migrate"]);
    assert!(migrate.status.success(), "{}{}", text(&migrate.stdout), text(&migrate.stderr));
    assert_eq!(mas_link(&s).trim(), "alice", "syn2mas links Synapse's external id to alice");
    s.write_config(&format!(
        "{}[mas]\nenabled = true\n{}{}",
        mas_images(),
        mas_provider(&files, "oidc-idp"),
        edge(&files)
    ));
    s.masctl_ok(&["switch"]);
    wait_serving(&s, &files);

    // Through MAS and the IdP: the same Matrix ID, still in her room.
    let (token, device, got) = mas_session(&s, &files, &idp, &both);
    assert_eq!(got["landed_on_link_page"], false, "the migrated link signs alice in, no new account: {got}");
    let after = session_works(&s, &files, &token, Some(&device));
    let joined = after.get("/_matrix/client/v3/joined_rooms");
    assert!(joined["joined_rooms"].as_array().is_some_and(|r| r.iter().any(|x| x == &json!(room_id))), "{joined}");
    assert_eq!(s.sql("mas", "SELECT count(*) FROM users"), "1", "one MAS user, the migrated alice");
    let (line, _, ok) = doctor_provider(&s);
    println!("doctor: {line}");
    assert!(ok && line.starts_with('✅'), "{line}");

    assert_secrets_nowhere(&s, &both, &[mas_secret.as_str()]);
}
