//! Upgrades that migrate data, on a real systemd host with real Postgres and two
//! real Synapse releases: 1.67 (`images/synapse-old.toml`, schema 72) and the
//! current one, which migrates the database forward to a schema 1.67 refuses; and
//! (the `pg_` section) a Postgres 15 → 17 major upgrade and back.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::stack::{Stack, text};
use common::{TableLock, docker_ok, wait_for};

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

/// Two background updates that each wait for the other: Synapse never runs them.
const PENDING_PAIR: &str = "INSERT INTO background_updates (update_name, progress_json, depends_on) VALUES \
('masctl_test_a', '{}', 'masctl_test_b'), ('masctl_test_b', '{}', 'masctl_test_a')";

fn pending_updates(s: &Stack) -> Vec<String> {
    s.sql("synapse", "SELECT update_name FROM background_updates ORDER BY 1").lines().map(String::from).collect()
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
    // done (the new schema's constraints build on them), so the switch waits for
    // them. Two updates that wait on each other stay pending for as long as the test
    // wants (1.67 runs every other update and then gives up on them).
    s.sql("synapse", PENDING_PAIR);
    wait_for("1.67's own background updates", Duration::from_secs(300), || {
        (pending_updates(&s) == ["masctl_test_a", "masctl_test_b"]).then_some(())
    });
    let before = table_digests(&s, "synapse", &USER_DATA);
    assert!(before["users"].starts_with("3 "), "{before:?}");

    // Pending updates that outlast --timeout: refused with their count and names,
    // before anything changes.
    s.write_config("");
    let out = s.masctl(&["switch", "--timeout", "3"]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("2 background update(s) pending (masctl_test_a, masctl_test_b)"), "{err}");
    assert_eq!((s.current(), s.generations().len(), synapse_schema(&s)), (1, 1, 72));

    // The upgrade: it waits for the updates (they finish while it waits), then is
    // held just before the health gate, when the new Synapse has migrated the schema
    // and become healthy; then made unhealthy for real.
    let log = s.root.join("switch.stderr");
    let mut child = s
        .masctl_command(&["MASCTL_FAILPOINT=hold-before-gate"], &["switch", "--timeout", "600"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let switch_log = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the switch to wait for the background updates", Duration::from_secs(300), || {
        switch_log().contains("waiting for Synapse's background updates: 2 pending").then_some(())
    });
    assert_eq!(s.generations().len(), 1, "nothing switched while waiting");
    s.sql("synapse", "DELETE FROM background_updates WHERE update_name LIKE 'masctl_test_%'");
    let held = s.root.join("failpoint-held");
    wait_for("the switch to reach the health gate", Duration::from_secs(600), || {
        if let Some(code) = child.try_wait().unwrap() {
            panic!("the switch ended ({code}) before its health gate:\n{}", switch_log());
        }
        held.exists().then_some(())
    });
    assert!(synapse_schema(&s) > 72, "the new Synapse migrated the schema");
    let compat = s.sql("synapse", "SELECT max(compat_version) FROM schema_compat_version");
    assert!(compat.trim().parse::<u32>().unwrap() > 72, "1.67 cannot serve it: {compat}");
    docker_ok(&["pause", &s.container("synapse")]);
    std::fs::remove_file(&held).unwrap();
    let status = child.wait().unwrap();
    let err = switch_log();
    assert!(!status.success(), "the switch must fail:\n{err}");
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
    // Written after the rollback by the unit that backs up what it replaced.
    let file = s.root.join("backups").join(format!("synapse-{kept}.dump"));
    wait_for("the replaced database's backup", Duration::from_secs(300), || file.exists().then_some(()));
    s.wait_serving();
    assert_eq!(synapse_schema(&s), 72);
    assert_eq!(table_digests(&s, "synapse", &USER_DATA), before, "dave came after the backup");
    assert_eq!(s.login_status("bob", "pw-before-upgrade"), 200);
}

// ---- Postgres major upgrades (15 → 17, and back to the 15 generation) ----

/// Per database, per table: rows and a checksum of every row's text (the same
/// query masctl checks an upgrade with is not reused here: this is the test's own).
fn pg_sums(s: &Stack) -> BTreeMap<String, String> {
    let dbs = s.sql("postgres", "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1");
    let per_table = "SELECT string_agg(t.name || ' ' || t.n, E'\\n' ORDER BY t.name) FROM ( \
SELECT n.nspname || '.' || c.relname AS name, \
(xpath('/row/n/text()', query_to_xml(format('SELECT count(*) || '' '' || coalesce(md5(string_agg(md5(x::text), '''' \
ORDER BY md5(x::text))), ''-'') AS n FROM %I.%I x', n.nspname, c.relname), false, true, '')))[1]::text AS n \
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'";
    // In Synapse's database only the compared tables: the rest change as it runs,
    // and its background updates drop tables of their own (one can vanish between
    // the listing and its read).
    let compared = PG_SYNAPSE_COMPARED.map(|t| format!("'{t}'")).join(", ");
    let query = |db: &str| match db {
        "synapse" => format!("{per_table} AND n.nspname || '.' || c.relname IN ({compared})) t"),
        _ => format!("{per_table}) t"),
    };
    dbs.lines().map(|db| (db.to_string(), s.sql(db, &query(db)))).collect()
}

/// Synapse keeps writing its own database while it runs (stream positions, its
/// user directory, background updates), so after any restart most of its tables
/// differ from a snapshot, upgrade or not; masctl compares every table at the copy,
/// while Synapse is stopped. What the test compares itself, exactly: every table of
/// every other database, and in Synapse's the test's own table and the user tables.
const PG_SYNAPSE_COMPARED: [&str; 3] = ["public.pg_probe", "public.users", "public.profiles"];

fn pg_major(s: &Stack) -> u32 {
    s.sql("postgres", "SHOW server_version_num").parse::<u32>().unwrap() / 10000
}

fn pg_rows(sums: &BTreeMap<String, String>, db: &str, table: &str) -> u64 {
    let line = sums[db].lines().find(|l| l.starts_with(&format!("{table} "))).unwrap_or_else(|| panic!("{table}"));
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn pg_upgrade_15_to_17_with_data_intact_and_back_to_15() {
    let s = Stack::new("pgup");
    s.up();
    s.wait_serving();
    assert_eq!(pg_major(&s), 15);
    s.register("alice", "alice-password-1");
    // Data of varied types beside Synapse's own tables.
    s.sql(
        "synapse",
        "CREATE TABLE pg_probe (id bigint PRIMARY KEY, t text, j jsonb, ts timestamptz, f float8, b bytea, a int[]); \
INSERT INTO pg_probe SELECT i, repeat(md5(i::text), i % 7), jsonb_build_object('i', i, 's', i::text), \
'2020-01-01'::timestamptz + i * interval '37 seconds', i / 7.0, decode(md5(i::text), 'hex'), ARRAY[i, -i] \
FROM generate_series(1, 20000) i",
    );
    // A database of the test's own, which nothing else writes: compared whole.
    s.sql("postgres", "CREATE DATABASE pg_probe_db");
    s.sql(
        "pg_probe_db",
        "CREATE TABLE a (id serial PRIMARY KEY, n numeric, d date, u uuid, x xml); \
INSERT INTO a (n, d, u, x) SELECT i * 1.5, '2000-01-01'::date + i, md5(i::text)::uuid, ('<i>' || i || '</i>')::xml \
FROM generate_series(1, 5000) i; CREATE SCHEMA s; CREATE TABLE s.b (k text PRIMARY KEY, v jsonb); \
INSERT INTO s.b SELECT 'k' || i, jsonb_build_array(i, i::text, i % 2 = 0) FROM generate_series(1, 3000) i; \
CREATE TABLE empty (x int)",
    );
    let before = pg_sums(&s);
    assert_eq!(pg_rows(&before, "pg_probe_db", "s.b"), 3000);
    assert_eq!(pg_rows(&before, "synapse", "public.pg_probe"), 20000);
    assert!(pg_rows(&before, "synapse", "public.users") >= 1, "{before:?}");
    let gen15 = s.current();

    s.write_config("[images]\npostgres = \"postgres17\"\n");
    let dry = s.masctl(&["switch", "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(text(&dry.stderr).contains("Postgres 15 → 17"), "{}", text(&dry.stderr));
    assert!(!s.root.join("data/postgres-17").exists(), "a dry run creates no cluster");

    let out = s.masctl(&["switch"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "switch to Postgres 17 failed:\n{err}");
    assert!(err.contains("verified backup") && err.contains("tables") && err.contains("rows checked"), "{err}");
    s.wait_serving();
    assert_eq!(pg_major(&s), 17);
    assert_eq!(pg_sums(&s), before, "every table of every database came over unchanged");
    assert_eq!(s.login_status("alice", "alice-password-1"), 200);
    let version = |dir: &str| std::fs::read_to_string(s.root.join(dir).join("PG_VERSION")).unwrap().trim().to_string();
    assert_eq!((version("data/postgres"), version("data/postgres-17")), ("15".into(), "17".into()));
    assert!(!s.root.join("data/postgres-17.partial").exists());
    let backups: Vec<String> = std::fs::read_dir(s.root.join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(backups.iter().any(|b| b.starts_with("synapse-") && b.ends_with("-pg15-upgrade.dump")), "{backups:?}");
    // Written under 17 only.
    s.sql("synapse", "INSERT INTO pg_probe (id, t) VALUES (-1, 'written under 17')");

    // Back to the 15 generation: its cluster, as it was before the upgrade.
    s.masctl_ok(&["rollback", "--to", &gen15.to_string()]);
    s.wait_serving();
    assert_eq!(s.current(), gen15);
    assert_eq!(pg_major(&s), 15);
    assert_eq!(pg_sums(&s), before, "the 15 cluster is untouched");
    assert_eq!(s.login_status("alice", "alice-password-1"), 200);
    // The 17 cluster is kept too.
    assert_eq!(version("data/postgres-17"), "17");
    let back = pg_sums(&s);

    // Upgrading again starts from 15's data; the older 17 cluster is set aside, not
    // deleted. This time `masctl switch` is killed (SIGKILL) while the copy's unit is
    // dumping: the test holds a lock on a Synapse table, so the dump waits on it for
    // as long as the test wants. Released, the unit carries on to the end, and the
    // next switch takes its result instead of copying again.
    s.write_config("[images]\npostgres = \"postgres17\"\n");
    let unit = format!("masctl-job-pg-upgrade-{}.service", s.instance);
    let unit_log = || docker_ok(&["exec", &s.host(), "journalctl", "-q", "--no-pager", "-o", "cat", "-u", &unit]);
    let upgrade_dumps = || {
        std::fs::read_dir(s.root.join("backups"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("synapse-") && n.ends_with("-pg15-upgrade.dump"))
            .count()
    };
    let dumps_before = upgrade_dumps();
    // The unit's journal keeps the first upgrade's lines: only new ones count.
    let copies_done = || unit_log().matches("the upgrade's copy is done").count();
    let done_before = copies_done();
    let lock = TableLock::take(&s.container("postgres"), "synapse", "pg_probe");
    let mut first = s.masctl_spawn("", &["switch"]);
    wait_for("the copy's dump to wait on the held lock", Duration::from_secs(300), || {
        let waiting = s.sql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'synapse' \
AND application_name = 'pg_dump' AND wait_event_type = 'Lock'",
        );
        (waiting.trim() == "1").then_some(())
    });
    let killed = docker_ok(&[
        "exec",
        &s.host(),
        "sh",
        "-c",
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q 'bin/masctl .* switch $' \
&& kill -9 ${p#/proc/} && echo ${p#/proc/}; done; true",
    ]);
    assert_eq!(killed.lines().count(), 1, "exactly the switch is killed: {killed:?}");
    let _ = first.wait();
    assert_eq!(s.unit_active_state(&unit), "activating", "the copy outlives the switch");
    lock.release();
    wait_for("the copy's unit to finish on its own", Duration::from_secs(600), || {
        (s.unit_active_state(&unit) != "activating").then_some(())
    });
    assert_eq!(s.unit_active_state(&unit), "active", "the copy ran to completion:\n{}", unit_log());
    assert_eq!(copies_done(), done_before + 1, "{}", unit_log());
    let out = s.masctl(&["switch"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "second upgrade failed:\n{err}");
    assert!(err.contains("taking its result instead of copying again"), "{err}");
    assert!(!err.contains("backing up"), "the copy was not started over:\n{err}");
    assert_eq!(upgrade_dumps(), dumps_before + 1, "one backup set for the one copy");
    s.wait_serving();
    assert_eq!(pg_major(&s), 17);
    assert_eq!(pg_sums(&s), back);
    let aside: Vec<String> = std::fs::read_dir(s.root.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("postgres-17.replaced-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");

    // gc: the 15 cluster is used by no generation left and the upgrade's verified
    // dump holds it, so it goes (and gc says so); the set-aside one has no dump and stays.
    let out = s.masctl(&["gc"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("removed Postgres cluster") && err.contains("pg15-upgrade.dump"), "{err}");
    assert!(err.contains("kept Postgres cluster") && err.contains(&aside[0]), "{err}");
    assert!(!s.root.join("data/postgres").exists());
    assert!(s.root.join("data").join(&aside[0]).join("PG_VERSION").exists());

    // Now a downgrade has no kept 15 cluster: refused at the config line, nothing changes.
    let current = s.current();
    s.write_config("[images]\npostgres = \"postgres\"\n");
    let out = s.masctl(&["switch"]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "a downgrade without a kept cluster must fail");
    assert!(err.contains("masctl.toml:7:12: images.postgres: Postgres 17 → 15 is a downgrade"), "{err}");
    assert_eq!(s.current(), current);
    assert_eq!(pg_major(&s), 17);
    assert!(!s.root.join("data/postgres").exists(), "the refused switch made no cluster");
}
