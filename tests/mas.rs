//! The MAS migration end to end, the way the seed guide walks a person through it,
//! on a real systemd host with real Postgres and Synapse. MAS itself is the test
//! double in tests/mas-standin — or, when `MASCTL_TEST_MAS_DIST` names a MAS release
//! directory (`mas-cli` + `share/` with `policy.wasm`, `templates/`,
//! `translations/`, `manifest.json`), the real mas-cli, through the `mas-local`
//! recipe and `[images.inputs]` as a user would run it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::http;
use common::images_with_standin;
use common::stack::{Stack, text};
use common::{docker, docker_ok, mas_images, wait_for};

fn mas_migrating() -> String {
    format!("{}[mas]\nenabled = true\nmigration_in_progress = true\n", mas_images())
}

fn mas_on() -> String {
    format!("{}[mas]\nenabled = true\n", mas_images())
}

fn register(s: &Stack, user: &str, password: &str, admin: bool) -> std::process::Output {
    let mut args = vec!["register-user", user];
    if admin {
        args.push("--admin");
    }
    s.masctl_stdin(&format!("{password}\n"), &args)
}

fn whoami(s: &Stack, token: &str) -> Option<String> {
    let url = format!("{}/_matrix/client/v3/account/whoami", s.base_url());
    http::get_json(&url, Some(token))["user_id"].as_str().map(String::from)
}

#[test]
fn migration_to_mas_end_to_end_and_back() {
    let images = images_with_standin();
    match std::env::var("MASCTL_TEST_MAS_DIST") {
        Ok(dist) if !dist.is_empty() => {
            let out = std::process::Command::new(Path::new(&dist).join("mas-cli")).arg("--version").output().unwrap();
            println!("real {}", text(&out.stdout).trim());
        }
        _ => println!("mas-cli stand-in (tests/mas-standin); set MASCTL_TEST_MAS_DIST for the real one"),
    }
    let s = Stack::with_images("mas", images.path().to_path_buf());
    // MAS's image named from the start (MAS still off): `try` mounts a MAS release
    // directory into its host only when it makes the host.
    s.write_config(&mas_images());
    s.up();
    s.wait_serving();

    // Users in Synapse before MAS: one admin, one with a password, one deactivated.
    for (user, pw, admin) in
        [("root", "root-password-1", true), ("alice", "alice-password-1", false), ("gone", "gone-password-1", false)]
    {
        let out = register(&s, user, pw, admin);
        assert!(out.status.success(), "register {user}: {}{}", text(&out.stdout), text(&out.stderr));
    }
    let again = register(&s, "alice", "whatever-123", false);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("already exists"), "{}", text(&again.stderr));
    let root = s.client("root", "root-password-1");
    root.post("/_synapse/admin/v1/deactivate/@gone:test.local", &serde_json::json!({"erase": false}));

    // Refusal: no MAS yet.
    let out = s.masctl(&["syn2mas", "check"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("migration_in_progress"), "{}", text(&out.stderr));

    // MAS with the migration flag: MAS runs, Synapse keeps its own logins.
    s.write_config(&mas_migrating());
    s.masctl_ok(&["switch"]);
    s.wait_serving();
    let st = s.status();
    let units: Vec<&str> = st["units"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert!(units.contains(&"masctl-mas.service") && units.contains(&"masctl-proxy.service"), "{units:?}");
    assert_eq!(st["matches_current"], true, "{st}");
    // The edge restarted with its new routes: the login waits for it to take them.
    wait_for("Synapse still logs users in", Duration::from_secs(60), || s.access_token("alice", "alice-password-1"));
    let pre_mas_generation = 1;

    let check = s.masctl(&["syn2mas", "check"]);
    assert!(check.status.success(), "{}{}", text(&check.stdout), text(&check.stderr));

    // Dry run: Synapse stays up, MAS ends empty.
    let dry = s.masctl(&["syn2mas", "migrate", "--dry-run"]);
    assert!(dry.status.success(), "{}{}", text(&dry.stdout), text(&dry.stderr));
    assert_eq!(s.unit_active_state("masctl-synapse.service"), "active");
    assert_eq!(s.sql("mas", "SELECT count(*) FROM users"), "0");

    // No backup, no migration: with backups/ unusable the real run refuses and
    // leaves Synapse running and MAS empty.
    let backups_dir = s.root.join("backups");
    let _ = std::fs::remove_dir_all(&backups_dir);
    std::fs::write(&backups_dir, "not a directory").unwrap();
    let refused = s.masctl(&["syn2mas", "migrate"]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("no backup, no migration"), "{}", text(&refused.stderr));
    assert_eq!(s.unit_active_state("masctl-synapse.service"), "active");
    assert_eq!(s.sql("mas", "SELECT count(*) FROM users"), "0");
    std::fs::remove_file(&backups_dir).unwrap();

    // No lock-out by a flag: handing logins to MAS before a migration completed is
    // refused, naming the next command, and the host stays as it was.
    let generations_before = s.generations().len();
    s.write_config(&mas_on());
    let early = s.masctl(&["switch"]);
    assert!(!early.status.success());
    let why = text(&early.stderr);
    assert!(why.contains("refusing to hand logins to MAS") && why.contains("masctl syn2mas migrate"), "{why}");
    assert_eq!(text(&early.stderr).trim().lines().count(), 1, "one line: {why}");
    assert_eq!(s.generations().len(), generations_before);
    assert!(s.served_config().get("matrix_authentication_service").is_none());
    assert!(s.access_token("alice", "alice-password-1").is_some(), "Synapse still logs users in");
    s.write_config(&mas_migrating());

    // The real run: a verified backup first, Synapse stopped, users in MAS.
    let migrate = s.masctl(&["syn2mas", "migrate"]);
    assert!(migrate.status.success(), "{}{}", text(&migrate.stdout), text(&migrate.stderr));
    assert!(text(&migrate.stdout).contains("migration_in_progress = false"));
    assert!(s.root.join("mas-migrated").exists(), "a completed migration is recorded");
    let backups = s.masctl_ok(&["backups", "--json"]);
    let backups: serde_json::Value = serde_json::from_str(&backups).unwrap();
    assert!(
        backups
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["file"].as_str().unwrap().starts_with("synapse-") && b["size"].as_u64().unwrap() > 0),
        "{backups}"
    );
    assert_ne!(s.unit_active_state("masctl-synapse.service"), "active");
    let users = s.sql("mas", "SELECT username || ':' || can_request_admin || ':' || (deactivated_at IS NOT NULL) FROM users ORDER BY username");
    assert_eq!(users.lines().collect::<Vec<_>>(), ["alice:false:false", "gone:false:true", "root:true:false"]);

    // Flag off: Synapse delegates, the compatibility routes go to MAS.
    s.write_config(&mas_on());
    s.masctl_ok(&["switch"]);
    s.wait_serving();
    let token = wait_for("a compatibility login through MAS", Duration::from_secs(60), || {
        s.access_token("alice", "alice-password-1")
    });
    assert_eq!(whoami(&s, &token).as_deref(), Some("@alice:test.local"), "Synapse accepts MAS's token");
    assert_eq!(s.served_config()["matrix_authentication_service"]["enabled"], true);

    // register-user through MAS.
    // register-user through MAS's admin API: while it runs, the password is in no
    // process's command line and in no container's command or environment.
    check_admin_api_config(&s);
    let (carol, leaks) = register_watching(&s, "carol", "carol-password-1");
    assert!(carol.status.success(), "{}{}", text(&carol.stdout), text(&carol.stderr));
    assert!(leaks.is_empty(), "the password leaked: {leaks:?}");
    assert_eq!(s.sql("mas", "SELECT count(*) FROM users WHERE username = 'carol'"), "1");
    let carol_token =
        wait_for("carol to log in", Duration::from_secs(60), || s.access_token("carol", "carol-password-1"));
    assert_eq!(whoami(&s, &carol_token).as_deref(), Some("@carol:test.local"));

    // MAS's users through masctl: list, lock, unlock, set a password, the admin flag.
    let names = |s: &Stack| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&s.masctl_ok(&["user", "list", "--json"])).unwrap();
        v.as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap().to_string()).collect()
    };
    let all = names(&s);
    for u in ["alice", "carol", "gone", "root"] {
        assert!(all.iter().any(|n| n == u), "{u} in {all:?}");
    }
    s.masctl_ok(&["user", "lock", "carol"]);
    assert!(s.access_token("carol", "carol-password-1").is_none(), "a locked user cannot log in");
    s.masctl_ok(&["user", "unlock", "@carol:test.local"]);
    let set = s.masctl_stdin("carol-password-2\n", &["user", "set-password", "carol"]);
    assert!(set.status.success(), "{}", text(&set.stderr));
    wait_for("carol's new password", Duration::from_secs(30), || s.access_token("carol", "carol-password-2"));
    assert!(s.access_token("carol", "carol-password-1").is_none(), "the old password no longer works");
    let admin: serde_json::Value =
        serde_json::from_str(&s.masctl_ok(&["user", "set-admin", "carol", "--json"])).unwrap();
    assert_eq!(admin["admin"], true, "{admin}");
    assert_eq!(s.sql("mas", "SELECT can_request_admin FROM users WHERE username = 'carol'"), "t");
    // A password MAS finds too weak: refused, and the way on is named.
    let weak = register(&s, "erin", "abc", false);
    assert!(!weak.status.success());
    assert!(text(&weak.stderr).contains("too weak"), "{}", text(&weak.stderr));
    let missing = s.masctl(&["user", "lock", "nobody-here"]);
    assert!(!missing.status.success() && text(&missing.stderr).contains("no user"), "{}", text(&missing.stderr));

    // Refusals once MAS has taken over: syn2mas without the flag, and
    // register-user while Synapse is down (nothing is created).
    let late = s.masctl(&["syn2mas", "check"]);
    assert!(!late.status.success() && text(&late.stderr).contains("migration_in_progress"));
    docker_ok(&["exec", &s.host(), "systemctl", "stop", "masctl-synapse.service"]);
    let down = register(&s, "dave", "dave-password-1", false);
    assert!(!down.status.success());
    assert!(text(&down.stderr).contains("masctl-synapse.service is inactive"), "{}", text(&down.stderr));
    assert_eq!(s.sql("mas", "SELECT count(*) FROM users WHERE username = 'dave'"), "0");
    docker_ok(&["exec", &s.host(), "systemctl", "start", "masctl-synapse.service"]);
    s.wait_serving();

    let doctor = s.masctl(&["doctor"]);
    assert!(doctor.status.success(), "{}{}", text(&doctor.stdout), text(&doctor.stderr));
    assert!(!text(&doctor.stdout).contains('❌'), "{}", text(&doctor.stdout));

    // No password or secret reached a unit file, the store or the journal.
    let journal = docker_ok(&["exec", &s.host(), "journalctl", "--no-pager", "-o", "cat"]);
    let units = s.unit_files();
    for secret in ["alice-password-1", "carol-password-1", "carol-password-2", "root-password-1"] {
        assert!(!journal.contains(secret), "{secret} in the journal");
        assert!(!units.contains(secret), "{secret} in a unit");
    }
    let mut cmdlines = String::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            cmdlines.push_str(&String::from_utf8_lossy(&c));
        }
    }
    for name in ["mas-synapse-secret", "mas-encryption", "postgres-mas", "postgres-synapse"] {
        let v = std::fs::read_to_string(s.root.join("secrets").join(name)).unwrap();
        assert!(!journal.contains(v.trim()), "{name} in the journal");
        assert!(!cmdlines.contains(v.trim()), "{name} in /proc/*/cmdline");
        assert!(!units.contains(v.trim()), "{name} in a unit");
    }
    let store_hits: Vec<String> = ["mas-synapse-secret", "mas-encryption"]
        .iter()
        .map(|n| std::fs::read_to_string(s.root.join("secrets").join(n)).unwrap().trim().to_string())
        .filter(|v| {
            let out = std::process::Command::new("grep").args(["-rl", v]).arg(s.root.join("store")).output().unwrap();
            !out.stdout.is_empty()
        })
        .collect();
    assert!(store_hits.is_empty(), "secrets in the store");

    // Back to the pre-MAS generation: Synapse's own login serves alice again.
    s.masctl_ok(&["rollback", "--to", &pre_mas_generation.to_string()]);
    s.wait_serving();
    assert!(s.served_config().get("matrix_authentication_service").is_none());
    assert!(s.access_token("alice", "alice-password-1").is_some());
}

/// `register-user` with its password on stdin; while it runs, every process's
/// command line on this machine and every container's command and environment are
/// searched for the password. Returns its output and where the password was seen.
fn register_watching(s: &Stack, user: &str, password: &str) -> (std::process::Output, Vec<String>) {
    let mut child = s.masctl_spawn(&format!("{password}\n"), &["register-user", user]);
    let mut leaks = Vec::new();
    let mut scans_while_running = 0;
    while child.try_wait().unwrap().is_none() {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(c) = std::fs::read(e.path().join("cmdline"))
                && String::from_utf8_lossy(&c).contains(password)
            {
                leaks.push(format!("/proc/{}/cmdline", e.file_name().to_string_lossy()));
            }
        }
        let ids = docker_ok(&["ps", "-q"]);
        let mut args = vec!["inspect"];
        args.extend(ids.lines());
        let inspect = docker(&args);
        if text(&inspect.stdout).contains(password) {
            leaks.push("docker inspect".into());
        }
        scans_while_running += 1;
    }
    assert!(scans_while_running > 0, "no scan ran while register-user did");
    (child.wait_with_output().unwrap(), leaks)
}

/// The admin API is served only on MAS's internal listener and only masctl's own
/// client may use it. The permissive policy module the tests run with would allow a
/// config that forgot `admin_clients`; the real policy would not: check the config.
fn check_admin_api_config(s: &Stack) {
    let mut seen = 0;
    for e in std::fs::read_dir(s.root.join("store")).unwrap().flatten() {
        if !e.file_name().to_string_lossy().ends_with("-mas-config") {
            continue;
        }
        let text = std::fs::read_to_string(e.path().join("config.yaml")).unwrap();
        let json = &text[text.find('{').unwrap()..];
        let cfg: serde_json::Value = serde_json::from_str(json).unwrap();
        let client = cfg["clients"][0]["client_id"].as_str().unwrap().to_string();
        assert_eq!(cfg["policy"]["data"]["admin_clients"], serde_json::json!([client]));
        for l in cfg["http"]["listeners"].as_array().unwrap() {
            let names: Vec<&str> =
                l["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
            assert_eq!(names.contains(&"adminapi"), l["name"] == "internal", "{l}");
        }
        seen += 1;
    }
    assert!(seen > 0, "no MAS config in the store");
    // The public port does not reach the admin API.
    for path in ["/api/admin/v1/users", "/auth/api/admin/v1/users"] {
        let status = http::get_status(&http::agent(), &format!("{}{path}", s.base_url()))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        // 400/401 would mean the admin API answered (asking for a token).
        assert_eq!(status, 404, "{path} through the public port");
    }
}
