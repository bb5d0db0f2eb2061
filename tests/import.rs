//! Bringing an existing server along: a source Synapse run without masctl (plain
//! `docker run`, a hand-written homeserver.yaml with a pepper), with users, a room
//! and a media file, imported into a fresh masctl stack — from a pg_dump in the
//! playbook's layout, and from SQLite — then migrated to MAS. And `masctl restore`
//! round trips on the imported stack.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

use common::http::{self, Client, enc, get_json};
use common::images_with_standin;
use common::stack::{Stack, text};
use common::{Docker, HARDENED, Root, docker, docker_ok, wait_for};

const MAS_MIGRATING: &str = "[images]\nmas = \"mas-standin\"\n[mas]\nenabled = true\nmigration_in_progress = true\n";
const MAS_ON: &str = "[images]\nmas = \"mas-standin\"\n[mas]\nenabled = true\n";
const PEPPER: &str = "src-pepper-3f9c";
const USERS: [(&str, &str, bool); 2] = [("root", "root-password-1", true), ("alice", "alice-password-1", false)];

/// What the source server holds, to find again after the import.
struct Facts {
    room: String,
    bodies: Vec<String>,
    media_id: String,
    media: Vec<u8>,
    /// `verify_keys` of `/_matrix/key/v2/server`.
    keys: Value,
}

/// A bridge's registration on the source (no URL: nothing to push to).
const REGISTRATION: &str = "id: telegram\nurl: null\nas_token: src-as-token-3f9d1c\nhs_token: src-hs-token-8e27aa\n\
sender_localpart: telegrambot\nnamespaces:\n  users:\n    - {exclusive: true, regex: '@telegram_.*:test\\.local$'}\n";

/// A Synapse run without masctl, in the playbook's layout under `dir`:
/// `synapse/config` is its `/data`, `synapse/storage` its `/matrix-media-store-parent`.
struct Source {
    dir: PathBuf,
    container: String,
    base: String,
}

impl Source {
    fn config_dir(&self) -> PathBuf {
        self.dir.join("synapse/config")
    }

    /// `bridge`: with a bridge's registration, as the playbook lays it out.
    fn start(d: &mut Docker, dir: &Path, image: &str, database: &str, network: Option<&str>, bridge: bool) -> Source {
        let config = dir.join("synapse/config");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::create_dir_all(dir.join("synapse/storage")).unwrap();
        let hs = format!(
            "server_name: test.local\nreport_stats: false\n\
listeners:\n  - {{port: 8008, type: http, tls: false, bind_addresses: ['0.0.0.0'], resources: [{{names: [client, federation]}}]}}\n\
database: {database}\n\
media_store_path: /matrix-media-store-parent/media-store\nsigning_key_path: /data/test.local.signing.key\n\
macaroon_secret_key: src-macaroon-0b1e\nform_secret: src-form-77a2\nregistration_shared_secret: src-registration-5d0c\n\
password_config:\n  pepper: {PEPPER}\n\
enable_registration: false\nregistration_requires_token: true\ntrusted_key_servers: []\n\
rc_login: {{address: {{per_second: 1000, burst_count: 1000}}, account: {{per_second: 1000, burst_count: 1000}}}}\n\
rc_message: {{per_second: 1000, burst_count: 1000}}\n{}",
            if bridge { "app_service_config_files: [/matrix-mautrix-telegram-registration.yaml]\n" } else { "" }
        );
        // A bridge's registration where the playbook keeps it, mounted as it mounts it.
        let reg_dir = dir.join("mautrix-telegram/config");
        std::fs::create_dir_all(&reg_dir).unwrap();
        std::fs::write(reg_dir.join("registration.yaml"), REGISTRATION).unwrap();
        let reg_mount =
            format!("{}:/matrix-mautrix-telegram-registration.yaml:ro", reg_dir.join("registration.yaml").display());
        std::fs::write(config.join("homeserver.yaml"), hs).unwrap();
        assert!(Command::new("chown").args(["-R", "991:991"]).arg(dir).status().unwrap().success());
        let data = format!("{}:/data", config.display());
        let storage = format!("{}:/matrix-media-store-parent", dir.join("synapse/storage").display());
        docker_ok(&[
            "run",
            "--rm",
            "--read-only",
            "-v",
            &data,
            "-v",
            &reg_mount,
            image,
            "--config-path",
            "/data/homeserver.yaml",
            "--generate-keys",
        ]);
        let mut args = vec!["-v", &data, "-v", &storage, "-v", &reg_mount, "-p", "127.0.0.1::8008"];
        if let Some(n) = network {
            args.extend(["--network", n]);
        }
        args.extend(HARDENED);
        args.push(image);
        let container = d.run("source-synapse", &args);
        let port = docker_ok(&["port", &container, "8008/tcp"]);
        let base = format!("http://{}", port.lines().next().unwrap());
        let source = Source { dir: dir.to_path_buf(), container, base };
        wait_for("the source Synapse to serve", Duration::from_secs(120), || {
            let up = http::agent().get(&format!("{}/_matrix/client/versions", source.base)).call().is_ok();
            if !up {
                assert_eq!(
                    docker_ok(&["inspect", "-f", "{{.State.Running}}", &source.container]),
                    "true",
                    "{}",
                    d.logs(&source.container)
                );
            }
            up.then_some(())
        });
        source
    }

    /// Users (one admin), a room with messages, an uploaded file.
    fn populate(&self) -> Facts {
        for (user, pw, admin) in USERS {
            let out = docker(&[
                "exec",
                &self.container,
                "python3",
                "-m",
                "synapse._scripts.register_new_matrix_user",
                "-c",
                "/data/homeserver.yaml",
                "-u",
                user,
                "-p",
                pw,
                if admin { "--admin" } else { "--no-admin" },
                "http://localhost:8008",
            ]);
            assert!(out.status.success(), "register {user}: {}{}", text(&out.stdout), text(&out.stderr));
        }
        let alice = Client::login(&self.base, "alice", "alice-password-1");
        let room = alice.post("/_matrix/client/v3/createRoom", &json!({"name": "before the move"}))["room_id"]
            .as_str()
            .unwrap()
            .to_string();
        let media: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let media_id = alice.upload("data.bin", "application/octet-stream", &media);
        let bodies: Vec<String> = (1..=3).map(|i| format!("message {i} from the old server")).collect();
        for (i, b) in bodies.iter().enumerate() {
            let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/t{i}", enc(&room));
            alice.put(&path, &json!({"msgtype": "m.text", "body": b}));
        }
        let keys = get_json(&format!("{}/_matrix/key/v2/server", self.base), None)["verify_keys"].clone();
        assert!(keys.as_object().is_some_and(|k| !k.is_empty()), "{keys}");
        Facts { room, bodies, media_id, media, keys }
    }

    fn stop(&self) {
        docker_ok(&["stop", &self.container]);
    }
}

fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed:\n{}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// Everything the source had, found on the stack: passwords, history, media, key.
fn check_imported(s: &Stack, f: &Facts) {
    let base = s.base_url();
    for (user, pw, _) in USERS {
        assert!(s.access_token(user, pw).is_some(), "{user} logs in with the old password");
    }
    assert!(s.access_token("alice", "wrong-password").is_none());
    let alice = s.client("alice", "alice-password-1");
    let msgs = alice.get(&format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50", enc(&f.room)));
    let seen: Vec<&str> =
        msgs["chunk"].as_array().unwrap().iter().filter_map(|e| e["content"]["body"].as_str()).collect();
    for b in &f.bodies {
        assert!(seen.contains(&b.as_str()), "{b:?} in {seen:?}");
    }
    assert!(alice.download("test.local", &f.media_id) == f.media, "the media file is byte-identical");
    let keys = get_json(&format!("{base}/_matrix/key/v2/server"), None)["verify_keys"].clone();
    assert_eq!(keys, f.keys, "same key ID and public key");
}

/// syn2mas check and migrate on the imported data, then logins through MAS with the
/// old passwords: the pepper reached MAS's password scheme.
fn migrate_to_mas(s: &Stack, switch: &dyn Fn(&str)) {
    let check = s.masctl(&["syn2mas", "check"]);
    assert!(check.status.success(), "{}{}", text(&check.stdout), text(&check.stderr));
    let migrate = s.masctl(&["syn2mas", "migrate"]);
    assert!(migrate.status.success(), "{}{}", text(&migrate.stdout), text(&migrate.stderr));
    let users = s.sql("mas", "SELECT username || ':' || can_request_admin FROM users ORDER BY username");
    let users: Vec<&str> = users.lines().collect();
    assert!(users.contains(&"alice:false") && users.contains(&"root:true"), "{users:?}");
    switch(MAS_ON);
    for (user, pw, _) in USERS {
        let token = wait_for("a login through MAS", Duration::from_secs(60), || s.access_token(user, pw));
        let who = Client::new(&s.base_url(), &token).get("/_matrix/client/v3/account/whoami");
        assert_eq!(who["user_id"], format!("@{user}:test.local"));
    }
    assert!(s.access_token("alice", "wrong-password").is_none());
}

fn postgres_image() -> String {
    Root::new().load("postgres")
}

fn synapse_image() -> String {
    Root::new().load("synapse")
}

/// How many databases a restore replaced are still kept (not yet backed up).
const REPLACED: &str = "SELECT count(*) FROM pg_database WHERE datname LIKE 'masctl\\_old\\_%'";

fn sets(s: &Stack) -> usize {
    let v: Value = serde_json::from_str(&s.masctl_ok(&["backups", "--json"])).unwrap();
    v.as_array().unwrap().len()
}

#[test]
fn import_from_a_playbook_host_restore_round_trip_and_mas() {
    let images = images_with_standin();
    let s = Stack::with_images("imp", images.path().to_path_buf());
    s.write_config(MAS_MIGRATING);
    let mut d = Docker::new("import-pg");

    // The source: Synapse on its own Postgres, without masctl.
    let src_dir = s.root.join("source");
    let network = d.network();
    let pg_image = postgres_image();
    let pwfile = s.root.join("source-pg.pw");
    std::fs::write(&pwfile, "source-pg-password").unwrap();
    let pw_mount = format!("{}:/run/secrets/pw:ro", pwfile.display());
    let mut pg_args = vec!["--network", &network, "--tmpfs=/run/postgresql:uid=999,gid=999", "-v", &pw_mount];
    pg_args.extend(HARDENED);
    pg_args.extend(["-e", "POSTGRES_PASSWORD_FILE=/run/secrets/pw", &pg_image]);
    let pg = d.run("source-pg", &pg_args);
    let psql = |sql: &str| docker(&["exec", &pg, "psql", "-h", "/run/postgresql", "-U", "postgres", "-tAc", sql]);
    wait_for("the source Postgres", Duration::from_secs(60), || psql("SELECT 1").status.success().then_some(()));
    assert!(
        psql("CREATE DATABASE synapse ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0").status.success()
    );
    let db = format!(
        "{{name: psycopg2, args: {{user: postgres, password: source-pg-password, dbname: synapse, host: {pg}, cp_min: 1, cp_max: 4}}}}"
    );
    let source = Source::start(&mut d, &src_dir, &synapse_image(), &db, Some(&network), true);
    let facts = source.populate();
    source.stop();
    let dump = src_dir.join("synapse.dump");
    let out = Command::new("docker")
        .args(["exec", &pg, "pg_dump", "-h", "/run/postgresql", "-U", "postgres", "-Fc", "synapse"])
        .stdout(std::fs::File::create(&dump).unwrap())
        .status()
        .unwrap();
    assert!(out.success() && std::fs::metadata(&dump).unwrap().len() > 0);

    // The target: a fresh stack, MAS running with the migration pending.
    s.up();
    s.wait_serving();
    let cfg = s.root.join("masctl.toml");
    std::fs::copy(s.config_path(), &cfg).unwrap();
    let dump_s = dump.display().to_string();
    let src_s = src_dir.display().to_string();

    // Refusals leave the stack as it was: another server_name, an empty dump.
    let other = src_dir.join("other.yaml");
    std::fs::write(&other, "server_name: other.local\nreport_stats: false\n").unwrap();
    let other_s = other.display().to_string();
    let r = s.masctl_with_config(&cfg, &["import", "synapse", "--homeserver", &other_s, "--dump", &dump_s]);
    assert!(!r.status.success() && text(&r.stderr).contains("\"other.local\""), "{}", text(&r.stderr));
    let empty = src_dir.join("empty.dump");
    std::fs::write(&empty, "").unwrap();
    let r = s.masctl_with_config(
        &cfg,
        &["import", "synapse", "--from-playbook", &src_s, "--dump", &empty.display().to_string()],
    );
    assert!(!r.status.success() && text(&r.stderr).contains("is empty"), "{}", text(&r.stderr));
    assert_eq!(sets(&s), 0, "refusals take no backup and change nothing");

    // The import, with the settings written into the config and switched to.
    let out = ok(
        s.masctl_with_config(
            &cfg,
            &["import", "synapse", "--from-playbook", &src_s, "--dump", &dump_s, "--write-config", "--json"],
        ),
        "import",
    );
    let done: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(done["users"], 2, "{done}");
    assert_eq!(done["database"], "custom");
    assert_eq!(done["config_written"], true);
    assert!(done["backup_before"].as_array().is_some_and(|b| !b.is_empty()), "a backup first: {done}");
    let written = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        written.contains("imported_password_config = true") && written.contains("registration_requires_token = true"),
        "{written}"
    );
    check_imported(&s, &facts);
    // The bridge's registration, found where the playbook keeps it, loaded by Synapse.
    let reg_path = src_dir.join("mautrix-telegram/config/registration.yaml").display().to_string();
    assert!(written.contains(&format!("appservices = [{{ path = \"{reg_path}\" }}]")), "{written}");
    let files = s.served_config()["app_service_config_files"].clone();
    assert!(files.as_array().is_some_and(|f| f.len() == 1 && f[0].as_str().unwrap().contains("/telegram.")), "{files}");

    // Secrets: 0600 files, never in the store.
    for name in ["synapse-password-config.yaml", "mas-pepper", "synapse-signing.key"] {
        let meta = std::fs::metadata(s.root.join("secrets").join(name)).unwrap();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600, "{name}");
    }
    for secret in [PEPPER, "src-as-token-3f9d1c", "src-hs-token-8e27aa"] {
        let grep = Command::new("grep").args(["-rl", secret]).arg(s.root.join("store")).output().unwrap();
        assert!(grep.stdout.is_empty(), "a secret is in the store: {}", text(&grep.stdout));
    }
    let grep = Command::new("grep").args(["-rl", PEPPER]).arg(s.root.join("store")).output().unwrap();
    assert!(grep.stdout.is_empty(), "the pepper is in the store: {}", text(&grep.stdout));

    // A stack with users refuses a second import.
    let again = s.masctl_with_config(&cfg, &["import", "synapse", "--from-playbook", &src_s, "--dump", &dump_s]);
    assert!(!again.status.success() && text(&again.stderr).contains("--replace"), "{}", text(&again.stderr));

    // restore: rows after the backup are gone, rows before it stay, and the backup
    // restore takes of the current state brings them back.
    backup_reports_progress(&s);
    s.register("bob", "bob-password-1");
    let bob = || s.sql("synapse", "SELECT count(*) FROM users WHERE name = '@bob:test.local'");
    assert_eq!(bob(), "1");
    let restored: Value = serde_json::from_str(&s.masctl_ok(&["restore", "--json"])).unwrap();
    let dbs: Vec<&str> =
        restored["databases"].as_array().unwrap().iter().map(|d| d["database"].as_str().unwrap()).collect();
    assert_eq!(dbs.len(), 2, "synapse and mas: {restored}");
    assert_eq!(bob(), "0");
    s.wait_serving();
    assert!(s.access_token("alice", "alice-password-1").is_some());
    let before = restored["backup_before"][0].as_str().unwrap().to_string();
    // The replaced databases' backup is written after the restore, by a unit of its
    // own; the next restore waits for it, and nothing replaced is left behind.
    let second = s.masctl(&["restore", &before]);
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert_eq!(bob(), "1");
    assert!(s.root.join("backups").join(std::path::Path::new(&before).file_name().unwrap()).exists(), "{before}");
    // A replaced database whose backup never ran (its unit cut off) is backed up,
    // then dropped, before anything else is replaced.
    wait_for("the replaced databases' backup", Duration::from_secs(300), || {
        (s.sql("postgres", REPLACED) == "0").then_some(())
    });
    s.sql("postgres", "CREATE DATABASE masctl_old_mas");
    let third = s.masctl(&["restore", &before]);
    assert!(third.status.success(), "{}", text(&third.stderr));
    assert!(text(&third.stderr).contains("an earlier restore replaced first"), "{}", text(&third.stderr));
    let listed = s.masctl_ok(&["backups"]);
    assert!(listed.contains("-replaced"), "{listed}");
    wait_for("the replaced databases' backup", Duration::from_secs(300), || {
        (s.sql("postgres", REPLACED) == "0").then_some(())
    });

    // A backup whose Synapse schema is newer than the image serves is refused.
    let compat = s.sql("synapse", "SELECT compat_version FROM schema_compat_version");
    s.sql("synapse", "UPDATE schema_compat_version SET compat_version = 9999");
    let newer_run = s.masctl(&["backup"]);
    assert!(newer_run.status.success(), "{}", text(&newer_run.stderr));
    // Without --json and without a terminal: one line per dump, with its size and rate.
    let line = text(&newer_run.stderr).lines().find(|l| l.starts_with("dump synapse: ")).map(str::to_string);
    assert!(line.as_deref().is_some_and(|l| l.contains(" in ") && l.ends_with("/s)")), "{}", text(&newer_run.stderr));
    let newer = text(&newer_run.stdout);
    s.sql("synapse", &format!("UPDATE schema_compat_version SET compat_version = {compat}"));
    let newer_file = newer.lines().find(|l| l.starts_with('/') && l.contains("/synapse-")).unwrap().to_string();
    let refused = s.masctl(&["restore", &newer_file]);
    assert!(!refused.status.success(), "{}", text(&refused.stdout));
    assert!(text(&refused.stderr).contains("newer than the Synapse image serves"), "{}", text(&refused.stderr));
    assert_eq!(bob(), "1");
    assert_eq!(s.unit_active_state("masctl-synapse.service"), "active");

    let switch = |extra: &str| {
        let text = std::fs::read_to_string(&cfg).unwrap().replace("migration_in_progress = true\n", "");
        assert_eq!(extra, MAS_ON);
        std::fs::write(&cfg, text).unwrap();
        ok(s.masctl_with_config(&cfg, &["switch"]), "switch");
    };
    migrate_to_mas(&s, &switch);
}

#[test]
fn import_from_sqlite_then_mas() {
    let images = images_with_standin();
    let s = Stack::with_images("isq", images.path().to_path_buf());
    s.write_config(MAS_MIGRATING);
    let mut d = Docker::new("import-sqlite");
    let src_dir = s.root.join("source");
    let db = "{name: sqlite3, args: {database: /data/homeserver.db}}";
    let source = Source::start(&mut d, &src_dir, &synapse_image(), db, None, false);
    let facts = source.populate();
    // synapse_port_db refuses a database with background updates still pending.
    let pending = "import sqlite3; print(sqlite3.connect('/data/homeserver.db').execute('SELECT count(*) FROM background_updates').fetchone()[0])";
    wait_for("the source's background updates", Duration::from_secs(300), || {
        (docker_ok(&["exec", &source.container, "python3", "-c", pending]) == "0").then_some(())
    });
    source.stop();
    s.up();
    s.wait_serving();

    let config = source.config_dir();
    let arg = |p: PathBuf| p.display().to_string();
    let out = s.masctl(&[
        "import",
        "synapse",
        "--homeserver",
        &arg(config.join("homeserver.yaml")),
        "--dump",
        &arg(config.join("homeserver.db")),
        "--signing-key",
        &arg(config.join("test.local.signing.key")),
        "--media",
        &arg(src_dir.join("synapse/storage/media-store")),
        "--json",
    ]);
    let done: Value = serde_json::from_str(&ok(out, "import")).unwrap();
    assert_eq!(done["database"], "sqlite");
    assert_eq!(done["users"], 2);
    assert_eq!(done["config_written"], false);
    // The printed changes, added to the config by hand, then switched to.
    let changes = done["config_changes"].as_str().unwrap().to_string();
    assert!(changes.contains("imported_password_config = true"), "{changes}");
    s.write_config(&format!("{MAS_MIGRATING}{changes}"));
    s.masctl_ok(&["switch"]);
    s.wait_serving();
    check_imported(&s, &facts);
    let switch = |extra: &str| {
        s.write_config(&format!("{extra}{changes}"));
        s.masctl_ok(&["switch"]);
    };
    migrate_to_mas(&s, &switch);
}

/// `masctl backup --json`: the files on stdout as JSON; on stderr, JSON events for
/// each dump whose last one says exactly the size of the file made.
fn backup_reports_progress(s: &Stack) {
    wait_for("the replaced database's backup", Duration::from_secs(300), || {
        (s.sql("postgres", REPLACED) == "0").then_some(())
    });
    let out = s.masctl(&["backup", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let files: Value = serde_json::from_slice(&out.stdout).unwrap();
    let events: Vec<Value> =
        text(&out.stderr).lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    for f in files.as_array().unwrap() {
        let path = f["file"].as_str().unwrap();
        let db = if path.contains("/synapse-") { "synapse" } else { "mas" };
        let stage = format!("dump {db}");
        let of_stage: Vec<&Value> = events.iter().filter(|e| e["stage"] == stage.as_str()).collect();
        assert_eq!(of_stage.first().map(|e| &e["event"]), Some(&Value::from("start")), "{events:?}");
        let last = of_stage.last().unwrap();
        assert_eq!(last["event"], "finish", "{events:?}");
        assert_eq!(last["bytes"], f["size"], "{events:?}");
        assert_eq!(std::fs::metadata(path).unwrap().len(), f["size"].as_u64().unwrap());
        // A second backup of the same database has the first's size as its estimate
        // (Synapse's: the import's backup of the database it replaced).
        if db == "synapse" {
            assert!(last["total"].as_u64().is_some(), "an earlier dump exists: {events:?}");
        }
    }
}
