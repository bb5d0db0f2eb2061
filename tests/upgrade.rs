//! Upgrades that migrate data, on a real systemd host with real Postgres and two
//! real Synapse releases: 1.67 (`images/synapse-old.toml`, schema 72) and the
//! current one, which migrates the database forward to a schema 1.67 refuses.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::stack::{Stack, text};
use common::{docker_ok, wait_for};

/// Row count and checksum of each table: what must come back unchanged.
pub fn table_digests(s: &Stack, db: &str, tables: &[&str]) -> BTreeMap<String, String> {
    tables
        .iter()
        .map(|t| {
            let q = format!(
                "SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM {t} x"
            );
            (t.to_string(), s.sql(db, &q).trim().to_string())
        })
        .collect()
}

/// Every table of a database's public schema.
pub fn all_tables(s: &Stack, db: &str) -> Vec<String> {
    s.sql(db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        .lines()
        .map(String::from)
        .collect()
}

fn synapse_schema(s: &Stack) -> u32 {
    s.sql("synapse", "SELECT version FROM schema_version").trim().parse().unwrap()
}

/// Registers a user on either Synapse: 1.67's script has no `--password-file`, so
/// the (test) password goes on its command line.
fn register(s: &Stack, user: &str, password: &str) {
    let c = s.container("synapse");
    let script = "synapse._scripts.register_new_matrix_user";
    let conf = "/etc/synapse/homeserver.yaml";
    docker_ok(&[
        "exec",
        &c,
        "python3",
        "-m",
        script,
        "-c",
        conf,
        "-u",
        user,
        "-p",
        password,
        "--no-admin",
        "http://localhost:8008",
    ]);
}

/// What users wrote: rows no background job of Synapse touches.
const USER_DATA: [&str; 2] = ["users", "profiles"];

#[test]
fn failed_upgrade_restores_the_old_schema_and_rollback_restore_data() {
    let s = Stack::new("upgrade");
    // Background updates without pauses between batches: they must be done before
    // the upgrade (below).
    s.write_config("[images]\nsynapse = \"synapse-old\"\n[synapse.extra.background_updates]\nsleep_duration_ms = 10\n");
    s.up();
    s.wait_serving();
    assert_eq!(synapse_schema(&s), 72, "the old Synapse writes schema 72");
    for u in ["alice", "bob", "carol"] {
        register(&s, u, "pw-before-upgrade");
    }
    assert!(all_tables(&s, "synapse").len() > 100);
    // Synapse's own rule: an upgrade needs the old version's background updates
    // done (the new schema's constraints build on them). Without this the new
    // Synapse fails half-way through its migration (the automatic rollback then
    // restores the backup all the same).
    wait_for("1.67's background updates", Duration::from_secs(300), || {
        (s.sql("synapse", "SELECT count(*) FROM background_updates").trim() == "0").then_some(())
    });
    let before = table_digests(&s, "synapse", &USER_DATA);
    assert!(before["users"].starts_with("3 "), "{before:?}");

    // The upgrade: held just before the health gate, when the new Synapse has
    // migrated the schema and become healthy; then made unhealthy for real.
    s.write_config("");
    let mut child = s
        .masctl_command(&["MASCTL_FAILPOINT=hold-before-gate"], &["switch", "--timeout", "600"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let held = s.root.join("failpoint-held");
    wait_for("the switch to reach the health gate", Duration::from_secs(600), || {
        if let Some(code) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the switch ended ({code}) before its health gate:\n{err}");
        }
        held.exists().then_some(())
    });
    assert!(synapse_schema(&s) > 72, "the new Synapse migrated the schema");
    let compat = s.sql("synapse", "SELECT max(compat_version) FROM schema_compat_version");
    assert!(compat.trim().parse::<u32>().unwrap() > 72, "1.67 cannot serve it: {compat}");
    docker_ok(&["pause", &s.container("synapse")]);
    std::fs::remove_file(&held).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success(), "the switch must fail:\n{err}");
    assert!(err.contains("rolled back to generation 1, which is running"), "{err}");
    assert!(err.contains("restored backup") && err.contains("pre-switch"), "{err}");

    // The old version serves again, on its schema, with every row from before.
    assert_eq!(s.current(), 1);
    s.wait_serving();
    assert_eq!(synapse_schema(&s), 72);
    assert_eq!(table_digests(&s, "synapse", &USER_DATA), before);
    assert_eq!(s.login_status("alice", "pw-before-upgrade"), 200);
    let gens = s.generations();
    assert!(gens[1]["backup_before"]["set"].as_str().unwrap().ends_with("-pre-switch"), "{gens:?}");

    // Upgrade for real; a plain rollback refuses what 1.67 cannot start on, and
    // --restore-data brings the backup from before the switch back.
    let up = s.masctl(&["switch", "--timeout", "600"]);
    assert!(up.status.success(), "{}", text(&up.stderr));
    assert_eq!(s.current(), 2);
    // systemd gives up on a start when the switch does: the units take its --timeout.
    let show = docker_ok(&["exec", &s.host(), "systemctl", "show", "-p", "TimeoutStartUSec", "masctl-synapse.service"]);
    assert_eq!(show, "TimeoutStartUSec=10min");
    s.wait_serving();
    assert!(synapse_schema(&s) > 72);
    register(&s, "dave", "pw-after-upgrade");
    let plain = s.masctl(&["rollback"]);
    let err = text(&plain.stderr);
    assert!(!plain.status.success() && err.contains("--restore-data"), "{err}");
    assert_eq!(s.current(), 2, "a refused rollback changes nothing");

    let set = s.generations()[1]["backup_before"]["set"].as_str().unwrap().to_string();
    let out = s.masctl_ok(&["rollback", "--restore-data", "--json"]);
    let done: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(done["generation"], 1);
    assert_eq!(done["restored"]["set"], set.as_str());
    let kept = done["restored"]["backup_before"].as_str().unwrap();
    assert!(s.root.join("backups").join(format!("synapse-{kept}.dump")).exists(), "{done}");
    s.wait_serving();
    assert_eq!(synapse_schema(&s), 72);
    assert_eq!(table_digests(&s, "synapse", &USER_DATA), before, "dave came after the backup");
    assert_eq!(s.login_status("bob", "pw-before-upgrade"), 200);
}
