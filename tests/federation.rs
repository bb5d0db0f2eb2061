//! The public edge, for real: two stacks (`a.test` without MAS, `b.test` with the
//! MAS stand-in), each its own systemd host, whose edges get certificates from a
//! private ACME CA (Debian's Pebble, in an image masctl built) and reach each
//! other on a shared Docker network whose aliases resolve the names. Users on
//! each side talk in one room; everything a client does goes over TLS through the
//! edges, checked by a client that trusts only Pebble's root.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::stack::{Stack, free_port, text};
use common::{Docker, HARDENED, Root, docker, docker_ok, http, wait_for};
use serde_json::{Value, json};

/// The HTTPS client: Python's ssl with Pebble's root as the only trust anchor.
const CLIENT: &str = r#"
import json, ssl, sys, urllib.request, urllib.error
method, url, token, body, xff = sys.argv[1:6]
ctx = ssl.create_default_context(cafile="/w/pebble-root.pem")
req = urllib.request.Request(url, method=method, data=None if body == "-" else body.encode())
req.add_header("Content-Type", "application/json")
if token != "-":
    req.add_header("Authorization", "Bearer " + token)
if xff != "-":
    req.add_header("X-Forwarded-For", xff)
try:
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        status, data, headers = r.status, r.read(), dict(r.headers)
except urllib.error.HTTPError as e:
    status, data, headers = e.code, e.read(), dict(e.headers)
except Exception as e:
    status, data, headers = 0, str(e).encode(), {}
try:
    doc = json.loads(data)
except ValueError:
    doc = data.decode("utf-8", "replace")
print(json.dumps({"status": status, "body": doc, "headers": headers}))
"#;

/// The shared network, Pebble on it, and a client container that trusts Pebble.
struct Net {
    name: String,
    client: String,
    /// Holds Pebble's config and listener certificate, the client script, and
    /// (once fetched) Pebble's issuing root; mounted into Pebble and the client.
    dir: tempfile::TempDir,
    _docker: Docker,
}

impl Net {
    fn up() -> Net {
        let mut d = Docker::new("fed");
        let name = d.network();
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755);
        // Pebble's own HTTPS listener: a self-made certificate, trusted by the edges
        // for the ACME directory (`edge.acme_directory_ca`).
        let mut params = rcgen::CertificateParams::new(vec!["pebble".to_string()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        write(dir.path(), "pebble.pem", &cert.pem());
        write(dir.path(), "pebble.key", &key.serialize_pem());
        let conf = json!({"pebble": {
            "listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
            "certificate": "/etc/pebble/pebble.pem", "privateKey": "/etc/pebble/pebble.key",
            "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": false,
        }});
        write(dir.path(), "pebble.json", &conf.to_string());
        write(dir.path(), "client.py", CLIENT);

        let root = Root::new();
        let (pebble_image, synapse_image) = (root.load("pebble"), root.load("synapse"));
        let mount = format!("{}:/etc/pebble:ro", dir.path().display());
        let mut args = vec!["--network", &name, "--network-alias", "pebble", "-v", &mount];
        // Challenges always pass: the CA under test is the edge's ACME client, not
        // reachability of port 80/443 from Pebble; no nonces rejected at random.
        args.extend(["-e", "PEBBLE_VA_ALWAYS_VALID=1", "-e", "PEBBLE_WFE_NONCEREJECT=0"]);
        args.extend(HARDENED);
        args.push(&pebble_image);
        d.run("pebble", &args);
        let w = format!("{}:/w:ro", dir.path().display());
        let client = d.run(
            "client",
            &[
                "--network",
                &name,
                "-v",
                &w,
                "--entrypoint",
                "python3",
                &synapse_image,
                "-c",
                "import time; time.sleep(86400)",
            ],
        );
        // Pebble makes a new root each start; the client and both stacks trust it.
        let fetch = "import ssl, urllib.request; print(urllib.request.urlopen('https://pebble:15000/roots/0', \
context=ssl.create_default_context(cafile='/w/pebble.pem'), timeout=5).read().decode())";
        let pem = wait_for("Pebble to serve its root", Duration::from_secs(60), || {
            let out = docker(&["exec", &client, "python3", "-c", fetch]);
            out.status.success().then(|| text(&out.stdout))
        });
        assert!(pem.contains("BEGIN CERTIFICATE"), "{pem}");
        write(dir.path(), "pebble-root.pem", &pem);
        Net { name, client, dir, _docker: d }
    }

    /// `method url` over TLS from the client; (status, JSON body or text).
    fn call(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<&Value>,
        xff: Option<&str>,
    ) -> (u16, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_else(|| "-".into());
        let out = docker_ok(&[
            "exec",
            &self.client,
            "python3",
            "/w/client.py",
            method,
            url,
            token.unwrap_or("-"),
            &body,
            xff.unwrap_or("-"),
        ]);
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        (v["status"].as_u64().unwrap() as u16, v)
    }

    fn get(&self, url: &str) -> (u16, Value) {
        self.call("GET", url, None, None, None)
    }

    /// Copies Pebble's listener certificate and root into a stack's state root
    /// (mounted at the same path in its systemd host).
    fn give_trust(&self, s: &Stack) -> PathBuf {
        let dir = s.root.join("test-ca");
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["pebble.pem", "pebble-root.pem"] {
            std::fs::copy(self.dir.path().join(f), dir.join(f)).unwrap();
            set_mode(&dir.join(f), 0o644);
        }
        dir
    }

    /// The `[edge]` section of a stack on this network.
    fn edge_config(&self, s: &Stack, extra: &str) -> String {
        let ca = self.give_trust(s);
        let port = || format!("127.0.0.1:{}", free_port());
        format!(
            "[edge]\ntls = \"acme\"\nacme_email = \"admin@{sn}\"\nacme_directory = \"https://pebble:14000/dir\"\n\
acme_directory_ca = \"{ca}/pebble.pem\"\ntrust = \"{ca}/pebble-root.pem\"\nnetworks = [\"{net}\"]\n\
http = \"{}\"\nhttps = \"{}\"\nfederation = \"{}\"\n{extra}\
[synapse.extra]\nip_range_whitelist = [\"10.0.0.0/8\", \"172.16.0.0/12\", \"192.168.0.0/16\"]\n",
            port(),
            port(),
            port(),
            sn = s.server_name,
            ca = ca.display(),
            net = self.name,
        )
    }
}

fn write(dir: &Path, name: &str, data: &str) {
    std::fs::write(dir.join(name), data).unwrap();
    set_mode(&dir.join(name), 0o644);
}

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

fn login(net: &Net, host: &str, user: &str, password: &str) -> Option<String> {
    let body = http::login_body(user, password);
    let (status, v) = net.call("POST", &format!("https://{host}/_matrix/client/v3/login"), None, Some(&body), None);
    (status == 200).then(|| v["body"]["access_token"].as_str().unwrap().to_string())
}

/// The bodies of the room's text messages, as `host`'s client API serves them.
fn messages(net: &Net, host: &str, token: &str, room: &str) -> Vec<String> {
    let url = format!("https://{host}/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=50");
    let (status, v) = net.call("GET", &url, Some(token), None, None);
    assert_eq!(status, 200, "{v}");
    v["body"]["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["content"]["body"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn two_stacks_federate_over_tls_from_a_private_acme_ca() {
    let net = Net::up();
    let standin = common::images_with_standin();
    let a = Stack::with_server_name("fa", "a.test", common::repo().join("images"));
    let b = Stack::with_server_name("fb", "b.test", standin.path().to_path_buf());
    a.write_config(&net.edge_config(&a, ""));
    b.write_config(&format!("[images]\nmas = \"mas-standin\"\n[mas]\nenabled = true\n{}", net.edge_config(&b, "")));
    std::thread::scope(|t| {
        t.spawn(|| a.up());
        t.spawn(|| b.up());
    });

    // Every hostname presents a chain that verifies against Pebble's root only.
    for url in [
        "https://a.test/.well-known/matrix/server",
        "https://matrix.a.test/_matrix/client/versions",
        "https://matrix.a.test:8448/_matrix/key/v2/server",
        "https://b.test/.well-known/matrix/server",
        "https://matrix.b.test/_matrix/client/versions",
        "https://matrix.b.test:8448/_matrix/key/v2/server",
    ] {
        let (status, v) = net.get(url);
        assert_eq!(status, 200, "{url}: {v}");
    }
    let (_, wk) = net.get("https://a.test/.well-known/matrix/server");
    assert_eq!(wk["body"], json!({"m.server": "matrix.a.test:443"}));
    let (_, wk) = net.get("https://b.test/.well-known/matrix/client");
    assert_eq!(wk["headers"]["Access-Control-Allow-Origin"], "*", "{wk}");
    assert_eq!(wk["body"]["m.homeserver"]["base_url"], "https://matrix.b.test/");
    assert_eq!(wk["body"]["org.matrix.msc2965.authentication"]["issuer"], "https://matrix.b.test/auth/");
    let (_, keys) = net.get("https://matrix.a.test/_matrix/key/v2/server");
    assert_eq!(keys["body"]["server_name"], "a.test", "{keys}");
    // Plain HTTP redirects to HTTPS.
    let (status, v) = net.get("http://matrix.a.test/_matrix/client/versions");
    assert_eq!(status, 200, "{v}");

    // Only what should be public is: no admin APIs on the public listeners.
    for url in ["https://matrix.a.test/_synapse/admin/v1/server_version", "https://matrix.b.test/api/admin/v1/users"] {
        assert_eq!(net.get(url).0, 404, "{url}");
    }

    // Users on each side; B's logins go through MAS (compatibility routes).
    a.register("alice", "alice-password-1");
    let out = b.masctl_stdin("bob-password-1\n", &["register-user", "bob"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let alice = login(&net, "matrix.a.test", "alice", "alice-password-1").expect("alice logs in");
    let bob = wait_for("bob to log in through MAS", Duration::from_secs(60), || {
        login(&net, "matrix.b.test", "bob", "bob-password-1")
    });

    // The X-Forwarded-For Synapse sees is the edge's peer, not what a client claims.
    let (status, _) = net.call(
        "GET",
        "https://matrix.a.test/_matrix/client/v3/account/whoami",
        Some(&alice),
        None,
        Some("203.0.113.9"),
    );
    assert_eq!(status, 200);
    let ips = wait_for("Synapse to record alice's address", Duration::from_secs(60), || {
        let ips = a.sql("synapse", "SELECT DISTINCT ip FROM user_ips WHERE user_id = '@alice:a.test'");
        (!ips.is_empty()).then_some(ips)
    });
    assert!(!ips.contains("203.0.113.9"), "Synapse believed the client's header: {ips}");
    let client_ip = docker_ok(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}", net.name),
        &net.client,
    ]);
    assert!(ips.lines().all(|ip| ip == client_ip), "{ips} (the client is {client_ip})");

    // A room on A, B invited over federation, B joins, messages both ways.
    let invite = json!({"preset": "private_chat", "invite": ["@bob:b.test"]});
    let (status, v) =
        net.call("POST", "https://matrix.a.test/_matrix/client/v3/createRoom", Some(&alice), Some(&invite), None);
    assert_eq!(status, 200, "{v}");
    let room = v["body"]["room_id"].as_str().unwrap().to_string();
    let join = format!("https://matrix.b.test/_matrix/client/v3/join/{room}?server_name=a.test");
    wait_for("bob to join over federation", Duration::from_secs(90), || {
        (net.call("POST", &join, Some(&bob), Some(&json!({})), None).0 == 200).then_some(())
    });
    for (host, token, msg) in [("matrix.a.test", &alice, "hello from a"), ("matrix.b.test", &bob, "hello from b")] {
        let url =
            format!("https://{host}/_matrix/client/v3/rooms/{room}/send/m.room.message/{}", msg.replace(' ', "-"));
        let (status, v) = net.call("PUT", &url, Some(token), Some(&json!({"msgtype": "m.text", "body": msg})), None);
        assert_eq!(status, 200, "{v}");
    }
    for (host, token) in [("matrix.a.test", &alice), ("matrix.b.test", &bob)] {
        wait_for(&format!("both messages on {host}"), Duration::from_secs(60), || {
            let m = messages(&net, host, token, &room);
            (m.iter().any(|x| x == "hello from a") && m.iter().any(|x| x == "hello from b")).then_some(())
        });
    }

    // MAS's own doctor finds the well-known document over TLS.
    let out = b.masctl_ok(&["doctor", "--json"]);
    // The job's own output comes first on stdout; the JSON report is last.
    let report = out.rfind("\n[\n").map_or(out.as_str(), |i| &out[i + 1..]);
    let findings: Vec<Value> = serde_json::from_str(report).unwrap_or_else(|e| panic!("{e}: {out}"));
    let wk = findings.iter().find(|f| f["message"].as_str().unwrap().contains("Matrix client well-known"));
    let wk = wk.unwrap_or_else(|| panic!("no well-known finding in {out}"));
    assert_eq!(wk["level"], "ok", "{wk}");
    assert!(wk["message"].as_str().unwrap().contains("https://b.test/.well-known/matrix/client\" is valid"));

    bad_input_leaves_a_serving(&net, &a);
}

/// A certificate that does not match its key, one that misses a hostname, and an
/// ACME directory nobody answers: each a clear error, and A still serves.
fn bad_input_leaves_a_serving(net: &Net, a: &Stack) {
    let dir = a.root.join("test-ca");
    let pair = |names: &[&str]| {
        let k = rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        (k.cert.pem(), k.key_pair.serialize_pem())
    };
    let (cert, _) = pair(&["matrix.a.test", "a.test"]);
    let (_, other_key) = pair(&["matrix.a.test", "a.test"]);
    let (narrow, narrow_key) = pair(&["matrix.a.test"]);
    for (c, k, why) in [(&cert, &other_key, "does not match edge.key"), (&narrow, &narrow_key, "does not cover a.test")]
    {
        write(&dir, "cert.pem", c);
        write(&dir, "key.pem", k);
        let files =
            format!("[edge]\ntls = \"files\"\ncertificate = \"{0}/cert.pem\"\nkey = \"{0}/key.pem\"\n", dir.display());
        a.write_config(&files);
        let out = a.masctl(&["switch"]);
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("masctl.toml:8:15:") && err.contains(why), "{err}");
        assert_eq!(a.current(), 1);
    }

    let unreachable = net.edge_config(a, "").replace("https://pebble:14000/dir", "https://nowhere.invalid/dir");
    a.write_config(&unreachable);
    let out = a.masctl(&["switch", "--timeout", "45"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("rolled back to generation 1") && err.contains("masctl-proxy.service"), "{err}");
    assert_eq!(a.current(), 1);
    let (status, v) = net.get("https://a.test/.well-known/matrix/server");
    assert_eq!(status, 200, "generation 1 serves again: {v}");
    assert!(a.root.join("data/edge/certificates").is_dir(), "certificates survive");
}
