//! MAS's mail with a real SMTP server: aiosmtpd (tests/py/smtp_sink.py) in a
//! container on the stack's network, STARTTLS with a certificate from the test's
//! CA (which MAS trusts through `[edge] trust`), AUTH with the password from a
//! 0600 file. Debian's chromium (tests/py/sso_login.py) registers with an email,
//! reads the code from the delivered message and verifies it; recovers a password
//! by email; `masctl user add-email` for an operator whose mail does not work;
//! doctor's SMTP line, ✅ then ❌ with a wrong password, and MAS's start-up check
//! naming the server's 535. The SMTP password is looked for everywhere it must
//! not be. One stack for all of it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::python::{BrowserNet, executable};
use common::stack::{Stack, free_port, text};
use common::{Docker, HARDENED, Root, docker, docker_ok, grep_tree, images_with_standin, mas_images, repo, wait_for};

const SERVER_NAME: &str = "mail.test";
const SMTP_USER: &str = "mas";

fn write(p: &Path, data: &str, mode: u32) {
    std::fs::write(p, data).unwrap();
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// A 32-character password from the OS random source (hex).
fn random_password() -> String {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b)).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The test's CA and the leaf certificates signed by it, as PEM files in `dir`:
/// ca.pem, edge.{pem,key} (the public names), smtp.{pem,key} (the alias `smtp`).
fn certificates(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca.distinguished_name.push(rcgen::DnType::CommonName, "masctl email test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    write(&dir.join("ca.pem"), &ca_cert.pem(), 0o644);
    for (name, hosts) in
        [("edge", vec![SERVER_NAME.to_string(), format!("matrix.{SERVER_NAME}")]), ("smtp", vec!["smtp".to_string()])]
    {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(hosts).unwrap();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
        write(&dir.join(format!("{name}.pem")), &cert.pem(), 0o644);
        // The proxy reads edge.key as its own uid (as tests/federation writes it);
        // the sink runs as root.
        let mode = if name == "edge" { 0o644 } else { 0o600 };
        write(&dir.join(format!("{name}.key")), &key.serialize_pem(), mode);
    }
}

/// `pip install --target` of aiosmtpd (the version tests/py/requirements.txt pins)
/// under the target directory, for the sink's container (Synapse's image has Python).
fn sink_site() -> PathBuf {
    let dir = repo().join("target/test-smtp-sink");
    std::fs::create_dir_all(repo().join("target")).unwrap();
    let lock = std::fs::File::create(repo().join("target/test-smtp-sink.lock")).unwrap();
    lock.lock().unwrap();
    let reqs = std::fs::read_to_string(repo().join("tests/py/requirements.txt")).unwrap();
    let pin = reqs.lines().find(|l| l.starts_with("aiosmtpd==")).expect("aiosmtpd pinned").to_string();
    let stamp = dir.join("installed");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(pin.as_str()) {
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
            .arg(dir.join("site"))
            .arg(&pin)
            .output()
            .unwrap();
        assert!(out.status.success(), "pip install {pin}: {}", text(&out.stderr));
        std::fs::write(&stamp, &pin).unwrap();
    }
    dir.join("site")
}

/// The SMTP server on the stack's network as `smtp`, STARTTLS on 587, AUTH for
/// SMTP_USER against the password in `sink/password`, mail into `maildir`.
fn start_sink(d: &mut Docker, name: &str, net: &str, certs: &Path, sink: &Path, maildir: &Path) -> String {
    let image = Root::new().load("synapse");
    let mounts = [
        format!("{}:/opt/certs:ro", certs.display()),
        format!("{}:/opt/sink:ro", sink.display()),
        format!("{}:/opt/site:ro", sink_site().display()),
        format!("{}:/opt/py:ro", repo().join("tests/py").display()),
        format!("{}:/mail", maildir.display()),
    ];
    let mut args = vec!["--network", net, "--network-alias", "smtp", "--user", "0:0"];
    for m in &mounts {
        args.extend(["-v", m.as_str()]);
    }
    args.extend(["-e", "PYTHONPATH=/opt/site", "--entrypoint", "python3"]);
    args.extend(HARDENED);
    args.extend([
        image.as_str(),
        "/opt/py/smtp_sink.py",
        "--listen",
        "0.0.0.0:587",
        "--mode",
        "starttls",
        "--cert",
        "/opt/certs/smtp.pem",
        "--key",
        "/opt/certs/smtp.key",
        "--username",
        SMTP_USER,
        "--password-file",
        "/opt/sink/password",
        "--maildir",
        "/mail",
    ]);
    let c = d.run(name, &args);
    wait_for("the SMTP sink to listen", Duration::from_secs(60), || {
        text(&docker(&["logs", &c]).stdout).contains("smtp-sink ready").then_some(())
    });
    c
}

/// A password login's HTTP status through the edge (`tls = "files"` publishes no
/// plain port): curl resolves the public name to the proxy and trusts the test's CA.
/// The body goes in a 0600 file, not on the command line.
fn login_status(s: &Stack, files: &Path, edge_ip: &str, user: &str, password: &str) -> u16 {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("login.json");
    write(&body, &common::http::login_body(user, password).to_string(), 0o600);
    let host = format!("matrix.{SERVER_NAME}");
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30", "--cacert"])
        .arg(files.join("ca.pem"))
        .args(["--resolve", &format!("{host}:443:{edge_ip}"), "-H", "Content-Type: application/json", "--data-binary"])
        .arg(format!("@{}", body.display()))
        .arg(format!("https://{host}/_matrix/client/v3/login"))
        .output()
        .unwrap();
    let status = text(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("login of {user}: {}", text(&out.stderr)));
    if status >= 500 {
        println!("login of {user}: {status}\n{}", mas_journal_tail(s));
    }
    status
}

/// The last lines MAS logged, for a failure's message.
fn mas_journal_tail(s: &Stack) -> String {
    text(&docker(&["exec", &s.host(), "journalctl", "--no-pager", "-o", "cat", "-n", "25", "-u", "masctl-mas"]).stdout)
}

/// The stack: MAS with password registration and recovery, mail through `smtp`.
fn config(files: &Path) -> String {
    let port = || format!("127.0.0.1:{}", free_port());
    format!(
        "{images}[mas]\nenabled = true\n[mas.account]\npassword_registration_enabled = true\n\
password_recovery_enabled = true\n[mas.email]\ntransport = \"smtp\"\nhostname = \"smtp\"\nport = 587\n\
mode = \"starttls\"\nusername = \"{SMTP_USER}\"\npassword_file = \"{f}/smtp-password\"\n\
[edge]\ntls = \"files\"\ncertificate = \"{f}/edge.pem\"\nkey = \"{f}/edge.key\"\ntrust = \"{f}/ca.pem\"\n\
http = \"{}\"\nhttps = \"{}\"\nfederation = \"{}\"\n",
        port(),
        port(),
        port(),
        images = mas_images(),
        f = files.display(),
    )
}

/// Where `needle` is seen now: a command line on this machine or in the host
/// container, or a running container's inspect output.
fn scan_running(s: &Stack, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline"))
            && String::from_utf8_lossy(&c).contains(needle)
        {
            seen.push(format!("/proc/{}/cmdline", e.file_name().to_string_lossy()));
        }
    }
    let host_cmdlines =
        text(&docker(&["exec", &s.host(), "sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"]).stdout);
    if host_cmdlines.contains(needle) {
        seen.push("a command line in the host".into());
    }
    let ids = docker_ok(&["ps", "-q"]);
    let mut args = vec!["inspect"];
    args.extend(ids.lines());
    if text(&docker(&args).stdout).contains(needle) {
        seen.push("docker inspect".into());
    }
    seen
}

fn assert_password_nowhere(s: &Stack, password: &str) {
    let needle = vec![password.to_string()];
    assert!(grep_tree(&s.root.join("store"), &needle).is_empty(), "the SMTP password in the store");
    assert!(!s.unit_files().contains(password), "the SMTP password in a unit file");
    let journal = docker_ok(&["exec", &s.host(), "journalctl", "--no-pager", "-o", "cat"]);
    assert!(!journal.contains(password), "the SMTP password in the journal");
    let leaks = scan_running(s, password);
    assert!(leaks.is_empty(), "the SMTP password in {leaks:?}");
    // MAS's config names the file, never the password.
    let config = grep_tree(&s.root.join("store"), &["/run/secrets/mas-smtp-password".to_string()]);
    assert!(!config.is_empty(), "MAS's config.yaml names its password_file");
}

/// Runs tests/py/sso_login.py (`args` after the common ones); its JSON, scanning
/// for the SMTP password while it runs.
fn browser(s: &Stack, files: &Path, edge_ip: &str, password: &str, args: &[&str]) -> serde_json::Value {
    let ca = files.join("ca.pem");
    let mut all = vec!["--ca".to_string(), ca.display().to_string()];
    for h in [SERVER_NAME.to_string(), format!("matrix.{SERVER_NAME}")] {
        all.extend(["--resolve".to_string(), format!("{h}={edge_ip}")]);
    }
    all.extend(args.iter().map(|a| a.to_string()));
    let net = BrowserNet::join(&s.instance, &s.container("proxy"));
    let mut child = net
        .python()
        .arg(repo().join("tests/py/sso_login.py"))
        .args(&all)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        let leaks = scan_running(s, password);
        assert!(leaks.is_empty(), "{args:?}: the SMTP password in {leaks:?}");
    }
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{args:?}:\n{stdout}\n{}", text(&out.stderr));
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{args:?}: no JSON ({e}):\n{stdout}"))
}

/// doctor's SMTP finding (text line, JSON finding) and whether doctor succeeded.
fn doctor_smtp(s: &Stack) -> (String, serde_json::Value, bool) {
    let out = s.masctl(&["doctor"]);
    let stdout = text(&out.stdout);
    let line = stdout.lines().find(|l| l.contains("SMTP server")).unwrap_or_else(|| panic!("{stdout}")).to_string();
    let json = text(&s.masctl(&["doctor", "--json"]).stdout);
    let report = json.rfind("\n[\n").map_or(json.as_str(), |i| &json[i + 1..]);
    let findings: Vec<serde_json::Value> = serde_json::from_str(report).unwrap_or_else(|e| panic!("{e}: {report}"));
    let f = findings.into_iter().find(|f| f["message"].as_str().is_some_and(|m| m.starts_with("SMTP server")));
    (line, f.unwrap_or_else(|| panic!("no SMTP finding in {report}")), out.status.success())
}

/// The user's addresses in MAS. Since v1.22.0's migrations `user_emails` holds
/// only verified ones (no confirmed_at column; codes live in
/// user_email_authentications), so a row is a verified address.
fn mas_user_emails(s: &Stack, user: &str) -> String {
    s.sql(
        "mas",
        &format!(
            "SELECT e.email FROM user_emails e JOIN users u USING (user_id) WHERE u.username = '{user}' ORDER BY e.email"
        ),
    )
}

fn add_email(s: &Stack, user: &str, address: &str) -> (bool, String, serde_json::Value) {
    let out = s.masctl(&["user", "add-email", user, address, "--json"]);
    let stdout = text(&out.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
    (out.status.success(), format!("{stdout}{}", text(&out.stderr)), json)
}

fn operator_adds_emails(s: &Stack) {
    let out = s.masctl_stdin("bob-password-1\n", &["register-user", "bob"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let (ok, out, json) = add_email(s, "bob", "bob@mail.test");
    assert!(ok && json["added"] == true, "{out}");
    assert_eq!(json["email"]["email"], "bob@mail.test", "{out}");
    assert_eq!(mas_user_emails(s, "bob").trim(), "bob@mail.test", "verified in MAS");
    // Again, and as verify-email (the seed's name): the admin API lists it, nothing changes.
    let (ok, out, json) = add_email(s, "bob", "Bob@Mail.test");
    assert!(ok && json["added"] == false, "{out}");
    let out = s.masctl(&["user", "verify-email", "bob", "bob@mail.test"]);
    assert!(out.status.success() && text(&out.stderr).contains("nothing was changed"), "{}", text(&out.stderr));
    // Refusals: one line each, nothing changed.
    for (user, address, words) in [
        ("bob", "carol@mail.test", "already the address of another MAS user"),
        ("nobody", "n@mail.test", "MAS has no user \"nobody\""),
        ("bob", "not-an-address", "MAS refused \"not-an-address\""),
    ] {
        let (ok, out, _) = add_email(s, user, address);
        assert!(!ok, "{user} {address}: {out}");
        assert!(out.contains(words), "{words:?} in {out}");
        assert_eq!(out.trim().lines().filter(|l| l.contains("error")).count(), 1, "one line: {out}");
    }
    assert_eq!(mas_user_emails(s, "bob").trim(), "bob@mail.test");
    assert_eq!(mas_user_emails(s, "carol").trim(), "carol@mail.test");
}

/// The sink replaced by one expecting another password: doctor's ❌ and MAS's
/// start-up check name the server's 535; nothing on the host changes.
fn wrong_password(s: &Stack, d: &mut Docker, sink: (&str, &Path, &Path, &Path)) {
    let (old, certs, sink_dir, maildir) = sink;
    docker_ok(&["rm", "-f", old]);
    write(&sink_dir.join("password"), &format!("{}\n", random_password()), 0o600);
    start_sink(d, "smtp-b", &s.instance, certs, sink_dir, maildir);
    let generation = s.current();
    let (line, finding, ok) = doctor_smtp(s);
    println!("doctor, wrong SMTP password: {line}");
    assert!(!ok && line.starts_with('❌') && finding["level"] == "error", "{line}");
    for w in ["refused to authenticate mas", "535", "password_file"] {
        assert!(line.contains(w), "{w:?} in {line}");
    }
    assert_eq!(s.current(), generation, "doctor changed nothing");
    docker_ok(&["exec", &s.host(), "systemctl", "restart", "masctl-mas.service"]);
    let warned = wait_for("MAS's start-up SMTP check", Duration::from_secs(90), || {
        let logs = text(&s.masctl(&["logs", "mas", "-n", "400"]).stdout);
        logs.lines().find(|l| l.contains("Could not connect to the mail backend")).map(str::to_string)
    });
    println!("MAS: {warned}");
    assert!(warned.contains("WARN") && warned.contains("535"), "{warned}");
}

#[test]
fn mas_sends_mail_through_a_real_smtp_server() {
    assert!(executable(Path::new("/usr/bin/chromium")), "Debian's chromium is needed (apt-get install chromium)");
    let images = images_with_standin();
    let s = Stack::with_server_name("email", SERVER_NAME, images.path().to_path_buf());
    let files = s.root.join("test-ca");
    std::fs::create_dir_all(&files).unwrap();
    certificates(&files);
    let password = random_password();
    write(&files.join("smtp-password"), &format!("{password}\n"), 0o600);
    let sink_dir = tempfile::tempdir().unwrap();
    write(&sink_dir.path().join("password"), &format!("{password}\n"), 0o600);
    let maildir = tempfile::tempdir().unwrap();
    s.write_config(&config(&files));
    s.up();
    let mut d = Docker::new("email");
    let sink = start_sink(&mut d, "smtp", &s.instance, &files, sink_dir.path(), maildir.path());
    let edge_ip = docker_ok(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}", s.instance),
        &s.container("proxy"),
    ]);

    let (line, finding, ok) = doctor_smtp(&s);
    println!("doctor: {line}");
    assert!(ok && line.starts_with('✅') && finding["level"] == "ok", "{line}");
    assert!(line.contains("smtp:587 (starttls)") && line.contains("accepts mas's password"), "{line}");

    // Registration with an email: the code from the delivered message.
    let secrets = tempfile::tempdir().unwrap();
    let carol_pw = secrets.path().join("carol");
    write(&carol_pw, "carol-password-1\n", 0o600);
    let mas = format!("https://matrix.{SERVER_NAME}/auth");
    let (maildir_s, carol_s) = (maildir.path().display().to_string(), carol_pw.display().to_string());
    let reg = browser(
        &s,
        &files,
        &edge_ip,
        &password,
        &[
            "register-email",
            "--mas",
            &mas,
            "--username",
            "carol",
            "--email",
            "carol@mail.test",
            "--password-file",
            &carol_s,
            "--maildir",
            &maildir_s,
        ],
    );
    println!("register-email: {reg}");
    assert_eq!(reg["wrong_code_refused"], true);
    // MAS provisions the new user on Synapse in a job after the registration; a
    // login before that fails at Synapse (as with real MAS).
    wait_for("carol on Synapse", Duration::from_secs(60), || {
        (s.sql("synapse", &format!("SELECT count(*) FROM users WHERE name = '@carol:{SERVER_NAME}'")).trim() == "1")
            .then_some(())
    });
    assert_eq!(
        login_status(&s, &files, &edge_ip, "carol", "carol-password-1"),
        200,
        "carol signs in after registering"
    );
    assert_eq!(mas_user_emails(&s, "carol").trim(), "carol@mail.test", "verified by the code");
    let mail =
        std::fs::read_dir(maildir.path()).unwrap().flatten().find(|e| e.path().extension() == Some("json".as_ref()));
    let meta = std::fs::read_to_string(mail.unwrap().path()).unwrap();
    assert!(
        meta.contains("\"tls\": true") && meta.contains("\"auth\": true"),
        "delivered over STARTTLS with AUTH: {meta}"
    );

    // Recovery by email: the new password works, the old one no longer does.
    let new_pw = secrets.path().join("carol-new");
    write(&new_pw, "carol-password-2\n", 0o600);
    let rec = browser(
        &s,
        &files,
        &edge_ip,
        &password,
        &[
            "recover",
            "--mas",
            &mas,
            "--email",
            "carol@mail.test",
            "--new-password-file",
            &new_pw.display().to_string(),
            "--maildir",
            &maildir_s,
        ],
    );
    println!("recover: {rec}");
    assert_eq!(rec["link_host"], format!("matrix.{SERVER_NAME}"));
    assert_eq!(login_status(&s, &files, &edge_ip, "carol", "carol-password-2"), 200, "the recovered password signs in");
    assert_ne!(login_status(&s, &files, &edge_ip, "carol", "carol-password-1"), 200, "the old password no longer does");

    operator_adds_emails(&s);
    assert_password_nowhere(&s, &password);
    wrong_password(&s, &mut d, (&sink, &files, sink_dir.path(), maildir.path()));
    assert_password_nowhere(&s, &password);
}
