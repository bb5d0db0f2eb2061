//! A real appservice against a real stack: tests/py/bridge_bot.py (the `mautrix`
//! library) in a container on its own Docker network, which Synapse joins through
//! the appservice's `network` setting. With MAS off: Synapse loads the registration,
//! pushes a user's message to the bridge, and a puppet answers in the room; the
//! bridge acts as the user with the double-puppet token. Then MAS takes over logins
//! (the syn2mas path, as tests/mas.rs walks it): the same again, a changed
//! registration restarts Synapse only, and the bot creates its device through
//! MSC4190 and uploads keys made by libolm. No token reaches the store, a unit, a
//! command line, a stack container's `docker inspect` or the journal.
//!
//! MAS is the stand-in (tests/mas-standin) unless `MASCTL_TEST_MAS_DIST` names a
//! MAS release directory (then the real mas-cli, through the `mas-local` recipe).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::stack::{Stack, text};
use common::{Docker, docker, docker_ok, images_with_standin, mas_images, repo, wait_for};

const BOT_PORT: u16 = 29333;
/// The bot's packages, installed once per checkout for the Synapse image's Python
/// (3.11, like the machine's: the wheels are the same).
const BOT_PACKAGES: &[&str] = &[
    "mautrix==0.21.1",
    "aiohttp==3.14.5",
    "yarl==1.25.1",
    "attrs==26.1.0",
    "python-olm==3.2.16",
    "unpaddedbase64==2.1.0",
    "pycryptodome==4.5.0",
    "base58==2.1.1",
];

/// `pip install --target` of BOT_PACKAGES under the target directory, plus the
/// machine's libstdc++ (libolm is C++; the Synapse image has no C++ runtime, and
/// the machine is the same Debian release as the image). Reused while the list is
/// unchanged; a file lock keeps concurrent tests from building it twice.
fn bot_site() -> PathBuf {
    let dir = repo().join("target/test-bridge-bot");
    std::fs::create_dir_all(repo().join("target")).unwrap();
    let lock = std::fs::File::create(repo().join("target/test-bridge-bot.lock")).unwrap();
    lock.lock().unwrap();
    let wanted = BOT_PACKAGES.join("\n");
    let stamp = dir.join("installed");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
            .arg(dir.join("site"))
            .args(BOT_PACKAGES)
            .output()
            .unwrap();
        assert!(out.status.success(), "pip install: {}", text(&out.stderr));
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        let libstdcpp = Path::new("/usr/lib/x86_64-linux-gnu/libstdc++.so.6");
        std::fs::copy(std::fs::canonicalize(libstdcpp).unwrap(), dir.join("lib/libstdc++.so.6")).unwrap();
        std::fs::write(&stamp, &wanted).unwrap();
    }
    dir
}

/// The bridge: its registration (a file the stack's config names), its container
/// and the directory the container mounts (config, registration, token file).
struct Bridge {
    /// The bot's container (its host name on the bridge network).
    name: String,
    /// Synapse's container, as the bot reaches it.
    synapse: String,
    dir: PathBuf,
    registration: PathBuf,
    reg: serde_json::Value,
    dp_token: String,
}

fn token() -> String {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

impl Bridge {
    /// Writes the registration and the bot's files; `reg_dir` is a directory the
    /// host sees at the same path (the stack's state root is one).
    fn new(name: String, synapse: String, reg_dir: &Path, dir: PathBuf) -> Bridge {
        let reg = serde_json::json!({
            "id": "testbridge",
            "url": format!("http://{name}:{BOT_PORT}"),
            "as_token": token(),
            "hs_token": token(),
            "sender_localpart": "bridgebot",
            "rate_limited": false,
            "de.sorunome.msc2409.push_ephemeral": true,
            "receive_ephemeral": true,
            "org.matrix.msc3202": true,
            "namespaces": {
                "users": [{"exclusive": true, "regex": "@puppet_.*:test\\.local$"},
                          {"exclusive": true, "regex": "@bridgebot:test\\.local$"}],
                "aliases": [], "rooms": [],
            },
        });
        std::fs::create_dir_all(reg_dir).unwrap();
        let b =
            Bridge { name, synapse, dir, registration: reg_dir.join("testbridge.yaml"), reg, dp_token: String::new() };
        b.write_registration();
        b
    }

    fn write_registration(&self) {
        let body = serde_json::to_string_pretty(&self.reg).unwrap();
        std::fs::write(&self.registration, &body).unwrap();
        std::fs::write(self.dir.join("registration.json"), &body).unwrap();
        std::fs::set_permissions(self.dir.join("registration.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    /// The bot's config; `msc4190`: make a device and upload its keys at start.
    fn write_config(&self, msc4190: bool, device: &str) {
        let cfg = serde_json::json!({
            "homeserver": format!("http://{}:8008", self.synapse),
            "domain": "test.local",
            "registration": "/opt/bot/registration.json",
            "listen": format!("0.0.0.0:{BOT_PORT}"),
            "puppet_prefix": "puppet_",
            "msc4190": msc4190,
            "device_id": device,
            "double_puppet_token_file": if self.dp_token.is_empty() { None } else { Some("/opt/bot/dp-token") },
            // The first switch builds and boots the stack: the bot waits for it.
            "homeserver_timeout": 1200,
        });
        std::fs::write(self.dir.join("config.json"), cfg.to_string()).unwrap();
        if !self.dp_token.is_empty() {
            std::fs::write(self.dir.join("dp-token"), &self.dp_token).unwrap();
            std::fs::set_permissions(self.dir.join("dp-token"), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }

    fn state_url(&self) -> String {
        let ip = docker_ok(&["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", &self.name]);
        format!("http://{}:{BOT_PORT}/_bot/state", ip.split_whitespace().next().unwrap())
    }

    fn state(&self) -> Option<serde_json::Value> {
        let out = Command::new("curl").args(["-sf", "--max-time", "5", &self.state_url()]).output().ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Waits until the bot registered its bot user and Synapse reached it (ping),
    /// and, with `device`, made its MSC4190 device.
    fn wait_ready(&self, what: &str, device: bool) -> serde_json::Value {
        wait_for(what, Duration::from_secs(1500), || {
            let st = self.state()?;
            assert!(
                st["errors"].as_array().is_none_or(|e| e.is_empty()),
                "the bot failed: {st}\n{}",
                bot_logs(&self.name)
            );
            let made = !device || st["device"].is_object();
            (st["registered"] == true && st["ping"].is_u64() && made).then_some(st)
        })
    }

    fn tokens(&self) -> Vec<String> {
        vec![
            self.reg["as_token"].as_str().unwrap().to_string(),
            self.reg["hs_token"].as_str().unwrap().to_string(),
            self.dp_token.clone(),
        ]
    }
}

fn bot_logs(name: &str) -> String {
    let out = docker(&["logs", "--tail", "60", name]);
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// Starts the bot in the Synapse image with its packages bind-mounted.
fn start_bot(d: &mut Docker, image: &str, network: &str, b: &Bridge, site: &Path) {
    let bot_dir = format!("{}:/opt/bot:ro", b.dir.display());
    let site = format!("{}:/opt/bot-site:ro", site.display());
    let script = format!("{}:/opt/bot-py:ro", repo().join("tests/py").display());
    let name = b.name.strip_prefix(&format!("{}-", d.prefix)).unwrap().to_string();
    d.run(
        &name,
        &[
            "--network",
            network,
            "-v",
            &bot_dir,
            "-v",
            &site,
            "-v",
            &script,
            "-e",
            "PYTHONPATH=/opt/bot-site/site",
            "-e",
            "LD_LIBRARY_PATH=/opt/bot-site/lib",
            "--read-only",
            "--tmpfs=/tmp",
            "--workdir",
            "/tmp",
            "--entrypoint",
            "python3",
            image,
            "/opt/bot-py/bridge_bot.py",
            "--config",
            "/opt/bot/config.json",
        ],
    );
}

/// tests/py/drive_bridge_bot.py as `user` (its token in a file): a room with the
/// bot, a message, the puppet's reply, then the double puppet and the device.
fn drive(s: &Stack, b: &Bridge, user_token: &str, extra: &[&str]) -> String {
    let tok = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tok.path(), user_token).unwrap();
    let out = Command::new("python3")
        .arg(repo().join("tests/py/drive_bridge_bot.py"))
        .args(["--homeserver", &s.base_url(), "--token-file"])
        .arg(tok.path())
        .args(["--user", "@alice:test.local", "--bot", "@bridgebot:test.local", "--bot-state", &b.state_url()])
        .args(["--double-puppet"])
        .args(extra)
        .output()
        .unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "the bridge flow failed:\n{all}\nbot:\n{}", bot_logs(&b.name));
    assert!(text(&out.stdout).contains("OK"), "{all}");
    println!("{all}");
    all
}

fn config(b: &Bridge, network: &str, mas: &str) -> String {
    format!(
        "{}[synapse]\nencrypted_bridges = true\n[synapse.double_puppet]\nenabled = true\n\
[[synapse.appservices]]\npath = \"{}\"\nnetwork = \"{network}\"\n{mas}",
        mas_images(),
        b.registration.display()
    )
}

#[test]
fn a_mautrix_bridge_with_mas_off_and_on() {
    let images = images_with_standin();
    println!("MAS: {}", mas_images().lines().nth(1).unwrap_or(""));
    // Declared first, dropped last: the stack goes down before its bridge network.
    let mut d = Docker::new("as");
    let network = d.network();
    let s = Stack::with_images("as", images.path().to_path_buf());
    let bot_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bot_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The registration lives where the host sees it at the same path: the state root.
    let name = format!("{}-bridge", d.prefix);
    let mut b = Bridge::new(name, s.container("synapse"), &s.root.join("bridges"), bot_dir.path().into());
    let site = bot_site();
    let image = common::Root::new().load("synapse");

    // MAS off. The bot listens before Synapse starts (Synapse marks an appservice
    // it cannot reach down, and backs off), and waits for Synapse to answer.
    b.write_config(false, "BRIDGEBOT");
    start_bot(&mut d, &image, &network, &b, &site);
    s.write_config(&config(&b, &network, ""));
    s.up();
    s.wait_serving();
    let files = s.served_config()["app_service_config_files"].clone();
    assert_eq!(files.as_array().map(Vec::len), Some(2), "the bridge's and the double puppet's: {files}");
    b.dp_token = std::fs::read_to_string(s.root.join("secrets/double-puppet-as-token")).unwrap().trim().into();
    // The bot learns the double-puppet token now: restarted before anything is sent.
    b.write_config(false, "BRIDGEBOT");
    docker_ok(&["restart", &b.name]);
    let st = b.wait_ready("the bot to register and Synapse to ping it", false);
    println!("bot ready, ping: {}", st["ping"]);
    s.register("alice", "alice-password-1");
    let token = s.access_token("alice", "alice-password-1").expect("alice logs in to Synapse");
    drive(&s, &b, &token, &[]);

    mas_phase(&s, &mut b, &network);
    leaks(&s, &b);
}

/// MAS through syn2mas, the bridge again, a changed registration, MSC4190.
fn mas_phase(s: &Stack, b: &mut Bridge, net: &str) {
    s.write_config(&config(b, net, "[mas]\nenabled = true\nmigration_in_progress = true\n"));
    s.masctl_ok(&["switch"]);
    s.wait_serving();
    let out = s.masctl(&["syn2mas", "migrate"]);
    assert!(out.status.success(), "syn2mas with an appservice: {}{}", text(&out.stdout), text(&out.stderr));
    s.write_config(&config(b, net, "[mas]\nenabled = true\n"));
    s.masctl_ok(&["switch"]);
    s.wait_serving();
    assert_eq!(s.served_config()["matrix_authentication_service"]["enabled"], true);
    let token = wait_for("alice's compatibility login through MAS", Duration::from_secs(60), || {
        s.access_token("alice", "alice-password-1")
    });
    b.wait_ready("the bridge under MAS", false);
    drive(s, b, &token, &[]);

    // A changed registration: Synapse restarts, nothing else does.
    let others = ["postgres", "mas", "proxy"];
    let before: Vec<String> = others.iter().map(|u| s.started_at(u)).collect();
    let synapse_before = s.started_at("synapse");
    b.reg["io.element.msc4190"] = true.into();
    b.write_registration();
    let out = s.masctl_ok(&["switch"]);
    s.wait_serving();
    assert_ne!(s.started_at("synapse"), synapse_before, "Synapse restarted for its new registration:\n{out}");
    let after: Vec<String> = others.iter().map(|u| s.started_at(u)).collect();
    assert_eq!(before, after, "only Synapse restarts ({others:?}):\n{out}");

    // MSC4190: the bot makes a device and uploads its keys, without /login.
    b.write_config(true, "BRIDGEBOT2");
    docker_ok(&["restart", &b.name]);
    let st = b.wait_ready("the bot's MSC4190 device", true);
    assert_eq!(st["device"]["device_id"], "BRIDGEBOT2", "{st}");
    drive(s, b, &token, &["--msc4190"]);
}

/// No token in the store, the unit files, any command line, the stack's
/// containers' `docker inspect`, or the journal.
fn leaks(s: &Stack, b: &Bridge) {
    let journal = docker_ok(&["exec", &s.host(), "journalctl", "--no-pager", "-o", "cat"]);
    let units = s.unit_files();
    let mut cmdlines = String::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            cmdlines.push_str(&String::from_utf8_lossy(&c));
        }
    }
    let stack: Vec<String> = docker_ok(&["ps", "-a", "--format", "{{.Names}}"])
        .lines()
        .filter(|n| n.starts_with(&s.instance))
        .map(String::from)
        .collect();
    assert!(stack.iter().any(|n| n.ends_with("-synapse")), "{stack:?}");
    let mut args = vec!["inspect".to_string()];
    args.extend(stack);
    let inspect = text(&docker(&args.iter().map(String::as_str).collect::<Vec<_>>()).stdout);
    let store = common::grep_tree(&s.root.join("store"), &b.tokens());
    assert!(store.is_empty(), "a token in the store: {store:?}");
    for (i, t) in b.tokens().iter().enumerate() {
        assert!(t.len() >= 32, "token {i}");
        for (place, hay) in
            [("journal", &journal), ("unit files", &units), ("command lines", &cmdlines), ("docker inspect", &inspect)]
        {
            assert!(!hay.contains(t.as_str()), "token {i} (as, hs, double puppet) in the {place}");
        }
    }
}
