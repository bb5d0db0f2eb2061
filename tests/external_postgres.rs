//! A stack on a Postgres server masctl did not make (tests/common/external_pg.rs:
//! masctl's Postgres image on a network the test made, with the roles and
//! databases its administrator would create). Switch, register a user, log in,
//! doctor, back up — on a real systemd host with real Synapse (and MAS: the
//! stand-in, or the real mas-cli with `MASCTL_TEST_MAS_DIST`).

mod common;

use std::os::unix::fs::PermissionsExt;

use common::stack::{Stack, text};
use common::{Docker, docker, docker_ok, external_pg, grep_tree, images_with_standin, mas_images, psql};

#[test]
fn a_stack_on_an_external_postgres() {
    let images = images_with_standin();
    // Dropped last: the stack leaves the network before it and the server go.
    let mut d = Docker::new("extpg");
    let pg = external_pg::start(&mut d);
    let (db, syn_pw, mas_pw) = (pg.container.clone(), pg.synapse_password.clone(), pg.mas_password.clone());

    let s = Stack::with_images("extpg", images.path().to_path_buf());
    let external = pg.config(&s.root.join("db-passwords"));
    s.write_config(&format!("{}[mas]\nenabled = true\n{external}", mas_images()));
    let up = s.try_up();
    assert!(up.status.success(), "masctl try:\n{}{}", text(&up.stdout), text(&up.stderr));
    s.wait_serving();

    // No Postgres of masctl's: no unit, no container; the databases are the external ones.
    let st = s.status();
    let units: Vec<&str> = st["units"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert!(!units.contains(&"masctl-postgres.service"), "{units:?}");
    assert!(units.contains(&"masctl-mas.service"), "{units:?}");
    assert!(!docker(&["inspect", &s.container("postgres")]).status.success(), "no bundled Postgres container");
    let mas_tables =
        psql(&db, "auth_db", "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'");
    assert!(mas_tables.trim().parse::<u32>().unwrap() > 0, "MAS migrated its external database");

    // register-user → login, through MAS, into the external databases.
    let out = s.masctl_stdin("alice-password-1\n", &["register-user", "alice"]);
    assert!(out.status.success(), "register-user: {}{}", text(&out.stdout), text(&out.stderr));
    let token = s.access_token("alice", "alice-password-1").expect("alice logs in");
    assert!(!token.is_empty());
    assert_eq!(s.access_token("alice", "wrong-password"), None);
    let in_synapse = psql(&db, "synapse_db", "SELECT count(*) FROM users WHERE name = '@alice:test.local'");
    assert_eq!(in_synapse.trim(), "1", "Synapse's user row is on the external server");

    // doctor: the external server's version, encoding and locale, as Synapse checks them.
    let doctor = s.masctl(&["doctor", "--json"]);
    let report = text(&doctor.stdout);
    assert!(doctor.status.success(), "{report}{}", text(&doctor.stderr));
    assert!(report.contains("UTF8 with C collation and ctype"), "{report}");
    assert!(report.contains(&format!("on {db}:5432 is one Synapse supports")), "{report}");

    // backup: every database dumped with its own role and verified.
    let backup = s.masctl(&["backup"]);
    assert!(backup.status.success(), "backup: {}{}", text(&backup.stdout), text(&backup.stderr));
    let names: Vec<String> = std::fs::read_dir(s.root.join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for db_name in ["synapse", "mas"] {
        let dump = names.iter().find(|n| n.starts_with(&format!("{db_name}-")) && n.ends_with("-manual.dump"));
        let dump = dump.unwrap_or_else(|| panic!("no {db_name} dump in {names:?}"));
        assert!(std::fs::metadata(s.root.join("backups").join(dump)).unwrap().len() > 0);
    }
    assert!(names.iter().all(|n| n.ends_with(".dump")), "nothing left besides the dumps: {names:?}");
    let listed = s.masctl_ok(&["backups"]);
    assert!(listed.contains("synapse-") && listed.contains("mas-"), "{listed}");

    // restore refuses clearly: masctl does not own the external server.
    let restore = s.masctl(&["restore"]);
    assert!(!restore.status.success());
    assert!(text(&restore.stderr).contains("external server"), "{}", text(&restore.stderr));

    // The passwords are in the files named and the services' 0600 copies, nowhere else.
    let needles = [syn_pw.clone(), mas_pw.clone()];
    for e in std::fs::read_dir(s.root.join("secrets")).unwrap().flatten() {
        let mode = e.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", e.path().display());
    }
    let store = grep_tree(&s.root.join("store"), &needles);
    assert!(store.is_empty(), "passwords in the store: {store:?}");
    let units = s.unit_files();
    let journal = docker_ok(&["exec", &s.host(), "journalctl", "--no-pager", "-o", "cat"]);
    let mut inspected = String::new();
    for service in ["synapse", "mas", "proxy"] {
        inspected.push_str(&docker_ok(&["inspect", &s.container(service)]));
    }
    for pw in needles.iter().map(String::as_str) {
        // The administrator's `CREATE ROLE` went through psql's argv above, not masctl's.
        assert!(!units.contains(pw) && !journal.contains(pw), "a password in a unit or the journal");
        assert!(!inspected.contains(pw), "a password in a container's command line or environment");
        assert!(!text(&up.stdout).contains(pw) && !text(&up.stderr).contains(pw), "a password in masctl's output");
    }
}
