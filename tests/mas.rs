//! The MAS migration end to end, the way the seed guide walks a person through it,
//! on a real systemd host with real Postgres and Synapse. MAS itself is the test
//! double in tests/mas-standin (the real binary cannot be had here), packed with the
//! same copy-a-local-mas-cli recipe mechanism as `images/mas-local.toml`.

mod common;

use std::time::Duration;

use common::stack::{Stack, text};
use common::standin::images_with_standin;
use common::{docker_ok, wait_for};

const MAS_MIGRATING: &str = "[images]\nmas = \"mas-standin\"\n[mas]\nenabled = true\nmigration_in_progress = true\n";
const MAS_ON: &str = "[images]\nmas = \"mas-standin\"\n[mas]\nenabled = true\n";

fn register(s: &Stack, user: &str, password: &str, admin: bool) -> std::process::Output {
    let mut args = vec!["register-user", user];
    if admin {
        args.push("--admin");
    }
    s.masctl_stdin(&format!("{password}\n"), &args)
}

fn access_token(s: &Stack, user: &str, password: &str) -> Option<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(10))).build().into();
    let body = serde_json::json!({"type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user}, "password": password});
    let mut r = agent.post(&format!("{}/_matrix/client/v3/login", s.base_url())).send_json(&body).ok()?;
    let v: serde_json::Value = r.body_mut().read_json().ok()?;
    v["access_token"].as_str().map(String::from)
}

fn whoami(s: &Stack, token: &str) -> Option<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(10))).build().into();
    let mut r = agent
        .get(&format!("{}/_matrix/client/v3/account/whoami", s.base_url()))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .ok()?;
    let v: serde_json::Value = r.body_mut().read_json().ok()?;
    v["user_id"].as_str().map(String::from)
}

#[test]
fn migration_to_mas_end_to_end_and_back() {
    let images = images_with_standin();
    let s = Stack::with_images("mas", images.path().to_path_buf());
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
    let root_token = access_token(&s, "root", "root-password-1").expect("root logs in");
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(10))).build().into();
    agent
        .post(&format!("{}/_synapse/admin/v1/deactivate/@gone:test.local", s.base_url()))
        .header("Authorization", &format!("Bearer {root_token}"))
        .send_json(serde_json::json!({"erase": false}))
        .expect("deactivate gone");

    // Refusal: no MAS yet.
    let out = s.masctl(&["syn2mas", "check"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("migration_in_progress"), "{}", text(&out.stderr));

    // MAS with the migration flag: MAS runs, Synapse keeps its own logins.
    s.write_config(MAS_MIGRATING);
    s.masctl_ok(&["switch"]);
    s.wait_serving();
    let st = s.status();
    let units: Vec<&str> = st["units"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert!(units.contains(&"masctl-mas.service") && units.contains(&"masctl-proxy.service"), "{units:?}");
    assert_eq!(st["matches_current"], true, "{st}");
    assert!(access_token(&s, "alice", "alice-password-1").is_some(), "Synapse still logs users in");
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

    // The real run: a verified backup first, Synapse stopped, users in MAS.
    let migrate = s.masctl(&["syn2mas", "migrate"]);
    assert!(migrate.status.success(), "{}{}", text(&migrate.stdout), text(&migrate.stderr));
    assert!(text(&migrate.stdout).contains("migration_in_progress = false"));
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
    s.write_config(MAS_ON);
    s.masctl_ok(&["switch"]);
    s.wait_serving();
    let token = wait_for("a compatibility login through MAS", Duration::from_secs(60), || {
        access_token(&s, "alice", "alice-password-1")
    });
    assert_eq!(whoami(&s, &token).as_deref(), Some("@alice:test.local"), "Synapse accepts MAS's token");
    assert_eq!(s.served_config()["matrix_authentication_service"]["enabled"], true);

    // register-user through MAS.
    let carol = register(&s, "carol", "carol-password-1", false);
    assert!(carol.status.success(), "{}{}", text(&carol.stdout), text(&carol.stderr));
    assert_eq!(s.sql("mas", "SELECT count(*) FROM users WHERE username = 'carol'"), "1");
    let carol_token =
        wait_for("carol to log in", Duration::from_secs(60), || access_token(&s, "carol", "carol-password-1"));
    assert_eq!(whoami(&s, &carol_token).as_deref(), Some("@carol:test.local"));

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
    let units = docker_ok(&["exec", &s.host(), "sh", "-c", "cat /etc/systemd/system/masctl*"]);
    for secret in ["alice-password-1", "carol-password-1", "root-password-1"] {
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
    assert!(access_token(&s, "alice", "alice-password-1").is_some());
}
