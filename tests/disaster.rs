//! Losing the host loses nothing: host A (a `try` systemd host with MAS) with a
//! user, a room, messages and media is backed up by its own timer to a restic
//! repository outside both hosts; A and its state root are destroyed; host B is
//! deployed from scratch with only the config and the repository's password, and
//! `masctl restore --from` brings the server back: a matrix-nio client logs in on
//! B as A's user and reads the old messages and media, and B serves A's key id.
//! Then the ways it must fail: a snapshot newer than the images, a wrong
//! password, an unreachable repository — each refused, B unchanged; and a round
//! trip over sftp to a throwaway sshd.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use common::http::{Client, enc, get_json};
use common::stack::{Stack, text};
use common::{Docker, Root, docker, docker_ok, images_with_standin, mas_images, python, wait_for};

const PASSWORD: &str = "alice-old-password-1";

/// A private file holding `text` (how users give masctl passwords).
fn secret_file(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("{text}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn config(repo: &Path, password_file: &Path) -> String {
    format!(
        "{}[mas]\nenabled = true\n[backup]\nschedule = \"daily\"\n[[backup.repository]]\nurl = \"{}\"\n\
password_file = \"{}\"\n",
        mas_images(),
        repo.display(),
        password_file.display()
    )
}

/// A second `[[backup.repository]]`, over sftp with its key and known_hosts.
fn sftp_repository(url: &str, password_file: &Path, key: &Path, known_hosts: &Path) -> String {
    format!(
        "[[backup.repository]]\nurl = \"{url}\"\npassword_file = \"{}\"\nssh_key_file = \"{}\"\n\
known_hosts_file = \"{}\"\n",
        password_file.display(),
        key.display(),
        known_hosts.display()
    )
}

/// What A held, to find again on B.
struct Facts {
    room: String,
    message: String,
    media_id: String,
    media: Vec<u8>,
    key_ids: Vec<String>,
}

fn key_ids(s: &Stack) -> Vec<String> {
    let v = get_json(&format!("{}/_matrix/key/v2/server", s.base_url()), None);
    v["verify_keys"].as_object().unwrap().keys().cloned().collect()
}

fn populate(a: &Stack) -> Facts {
    let out = a.masctl_stdin(&format!("{PASSWORD}\n"), &["register-user", "alice"]);
    assert!(out.status.success(), "register-user: {}{}", text(&out.stdout), text(&out.stderr));
    let alice = Client::login(&a.base_url(), "alice", PASSWORD);
    let room = alice.post("/_matrix/client/v3/createRoom", &json!({"name": "before the fire"}))["room_id"]
        .as_str()
        .unwrap()
        .to_string();
    let message = "written on host A before it burned".to_string();
    alice.put(
        &format!("/_matrix/client/v3/rooms/{}/send/m.room.message/t1", enc(&room)),
        &json!({"msgtype": "m.text", "body": message}),
    );
    let media: Vec<u8> = (0..50_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let media_id = alice.upload("photo.bin", "application/octet-stream", &media);
    Facts { room, message, media_id, media, key_ids: key_ids(a) }
}

/// Makes A's timer fire as it does after a missed run (`Persistent=true`): its
/// stamp says the last run was days ago, and the timer is started again.
fn fire_timer(a: &Stack) {
    let unit = "masctl-scheduled-backup";
    let script = format!(
        "mkdir -p /var/lib/systemd/timers && touch -d '3 days ago' /var/lib/systemd/timers/stamp-{unit}.timer \
&& systemctl restart {unit}.timer"
    );
    docker_ok(&["exec", &a.host(), "sh", "-c", &script]);
    wait_for("the timer's backup to finish", Duration::from_secs(600), || {
        let out = docker_ok(&[
            "exec",
            &a.host(),
            "systemctl",
            "show",
            "-p",
            "ActiveState,Result,ExecMainExitTimestampMonotonic",
            &format!("{unit}.service"),
        ]);
        let ran = !out.contains("ExecMainExitTimestampMonotonic=0\n");
        (ran && !out.contains("ActiveState=activating")).then_some(out)
    });
    let result = a.unit_active_state(&format!("{unit}.service"));
    let journal = docker_ok(&["exec", &a.host(), "journalctl", "--no-pager", "-o", "cat", "-u", unit]);
    assert_eq!(result, "inactive", "the scheduled backup did not succeed:\n{journal}");
    assert!(journal.contains("masctl: pushed set"), "{journal}");
}

fn remote(s: &Stack) -> Vec<Value> {
    let v: Value = serde_json::from_str(&s.masctl_ok(&["backups", "--remote", "--json"])).unwrap();
    v[0]["snapshots"].as_array().unwrap().clone()
}

/// A matrix-nio client on B, as A's user.
fn nio_reads(b: &Stack, f: &Facts, dir: &Path) -> Value {
    let pw = dir.join("alice-password");
    secret_file(&pw, PASSWORD);
    let media = format!("mxc://{}/{}", b.server_name, f.media_id);
    let out = python::run_script(
        "nio_client.py",
        &[
            "--base",
            &b.base_url(),
            "--user",
            "alice",
            "--password-file",
            pw.to_str().unwrap(),
            "--room",
            &f.room,
            "--message",
            &f.message,
            "--media",
            &media,
        ],
    );
    assert!(out.success, "nio_client.py failed: {}\n{}", out.json, out.stderr);
    out.json
}

#[test]
fn a_host_lost_comes_back_from_its_scheduled_backup() {
    let outside = tempfile::Builder::new().prefix("masctl-offsite-").tempdir_in("/var/tmp").unwrap();
    let repo = outside.path().join("repo");
    let repo_password = hex(16);

    let images = images_with_standin();
    // Host A: MAS, a user, a room, a message, a file; its timer backs it up.
    let a = Stack::with_images("dis-a", images.path().to_path_buf());
    let a_pw = a.root.join("keys/restic-password");
    secret_file(&a_pw, &repo_password);
    a.write_config(&config(&repo, &a_pw));
    a.up();
    let facts = populate(&a);
    fire_timer(&a);
    let snaps = remote(&a);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let s = &snaps[0];
    assert_eq!(s["generation"], json!(a.current()), "{s}");
    assert!(s["synapse_schema"].as_u64().is_some_and(|v| v > 80), "{s}");
    assert!(s["mas_migration"].as_i64().is_some(), "{s}");
    assert!(s["set"].as_str().unwrap().ends_with("-scheduled"), "{s}");
    let status = a.status();
    assert!(status["backups"][0]["age_secs"].as_u64().is_some_and(|age| age < 600), "{status}");
    check_password_stays_secret(&a, &repo_password);

    // A and everything under its state root are gone.
    let a_root = a.root.clone();
    drop(a);
    let _ = std::fs::remove_dir_all(&a_root);
    assert!(!a_root.exists());

    // Host B from scratch: only the config and the repository's password.
    let b = Stack::with_images("dis-b", images.path().to_path_buf());
    let b_pw = b.root.join("keys/restic-password");
    secret_file(&b_pw, &repo_password);
    b.write_config(&config(&repo, &b_pw));
    b.up();
    assert_ne!(key_ids(&b), facts.key_ids, "a fresh host has its own key");
    let out = b.masctl(&["restore", "--from", &repo.display().to_string(), "--json"]);
    assert!(out.status.success(), "restore --from failed:\n{}{}", text(&out.stdout), text(&out.stderr));
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(done["secrets"].as_array().unwrap().iter().any(|n| n == "synapse-signing.key"), "{done}");
    assert!(done["media_files"].as_u64().is_some_and(|n| n >= 1), "{done}");

    assert_eq!(key_ids(&b), facts.key_ids, "B serves A's signing key id");
    let nio = nio_reads(&b, &facts, outside.path());
    assert_eq!(nio["logged_in"], json!(true), "{nio}");
    assert_eq!(nio["user_id"], json!(format!("@alice:{}", b.server_name)), "{nio}");
    assert_eq!(nio["message_found"], json!(true), "{nio}");
    assert_eq!(nio["media_bytes"], json!(hex_of(&facts.media)), "{nio}");

    refusals(&b, &repo, &b_pw, &facts);
}

/// Each bad restore or backup fails with its reason and leaves B serving as it was.
fn refusals(b: &Stack, repo: &Path, b_pw: &Path, facts: &Facts) {
    let repo_arg = repo.display().to_string();
    // A snapshot written by a newer Synapse than B's image (made by hand with restic).
    let newer = newer_snapshot(repo, b_pw);
    let out = b.masctl(&["restore", "--from", &repo_arg, &newer]);
    let err = text(&out.stderr);
    assert!(!out.status.success() && err.contains("newer than the Synapse image serves"), "{err}");
    assert_eq!(key_ids(b), facts.key_ids);

    // A wrong password: the backup fails loudly, and so does a restore.
    let right = std::fs::read_to_string(b_pw).unwrap();
    secret_file(b_pw, "not-the-password");
    b.masctl_ok(&["switch"]);
    let out = b.masctl(&["backup"]);
    let err = text(&out.stderr);
    assert!(!out.status.success() && err.contains("password does not open"), "{err}");
    let out = b.masctl(&["restore", "--from", "1"]);
    assert!(!out.status.success() && text(&out.stderr).contains("password does not open"), "{}", text(&out.stderr));
    let doctor = b.masctl(&["doctor", "--json"]);
    assert!(text(&doctor.stdout).contains("password does not open"), "{}", text(&doctor.stdout));

    // An unreachable repository (nothing listens for ssh there).
    secret_file(b_pw, right.trim());
    let key = b.root.join("keys/id_ed25519");
    secret_file(&key, "not a key");
    let hosts = b.root.join("keys/known_hosts");
    std::fs::write(&hosts, "").unwrap();
    b.write_config(&(config(repo, b_pw) + &sftp_repository("sftp:backup@127.0.0.1:/nowhere", b_pw, &key, &hosts)));
    b.masctl_ok(&["switch"]);
    let out = b.masctl(&["backup", "--json"]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "a backup with an unreachable repository succeeded");
    assert!(err.contains("could not be pushed to sftp:backup@127.0.0.1:/nowhere"), "{err}");
    assert!(err.contains("cannot open the restic repository sftp:backup@127.0.0.1:/nowhere"), "{err}");
    // The reachable repository still got the set.
    let snaps = remote_of(b, &repo_arg);
    let newest = snaps.last().unwrap();
    assert!(newest["set"].as_str().unwrap().ends_with("-manual"), "{snaps:?}");
    assert_eq!(newest["generation"], json!(b.current()), "{snaps:?}");
    let out = b.masctl(&["restore", "--from", "2"]);
    assert!(!out.status.success(), "restore from an unreachable repository succeeded");
    Client::login(&b.base_url(), "alice", PASSWORD);

    sftp_round_trip(b, repo, b_pw, facts);
}

/// A throwaway sshd (images/sshd.toml): B pushes a set there over sftp, lists it,
/// and restores from it; the server stays A's.
fn sftp_round_trip(b: &Stack, repo: &Path, b_pw: &Path, facts: &Facts) {
    let image = Root::new().load("sshd");
    let keys = b.root.join("keys/sftp");
    std::fs::create_dir_all(&keys).unwrap();
    let mount = format!("{}:/k", keys.display());
    let keygen = ["--entrypoint", "/usr/bin/ssh-keygen", &image, "-q", "-t", "ed25519", "-N", "", "-f", "/k/id"];
    docker_ok(&[&["run", "--rm", "-v", &mount][..], &keygen].concat());
    let server = tempfile::tempdir().unwrap();
    std::fs::copy(keys.join("id.pub"), server.path().join("authorized_keys")).unwrap();
    let mut d = Docker::new("disaster");
    let auth = format!("{}:/etc/sshd-test:ro", server.path().display());
    let sshd = d.run("sshd", &["--tmpfs", "/run/sshd:mode=755", "--tmpfs", "/srv", "-v", &auth, &image]);
    wait_for("sshd to listen", Duration::from_secs(60), || d.logs(&sshd).contains("Server listening").then_some(()));
    let ip = docker_ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &sshd]).trim().to_string();
    let host_key = docker_ok(&["exec", &sshd, "/bin/sh", "-c", "read l < /etc/ssh/ssh_host_ed25519_key.pub; echo $l"]);
    let known = keys.join("known_hosts");
    let fields: Vec<&str> = host_key.split_whitespace().take(2).collect();
    std::fs::write(&known, format!("{ip} {}\n", fields.join(" "))).unwrap();

    let url = format!("sftp:root@{ip}:/srv/restic");
    b.write_config(&(config(repo, b_pw) + &sftp_repository(&url, b_pw, &keys.join("id"), &known)));
    b.masctl_ok(&["switch"]);
    let pushed: Value = serde_json::from_str(&b.masctl_ok(&["backup", "--json"])).unwrap();
    assert_eq!(pushed["pushed"].as_array().map(|p| p.len()), Some(2), "{pushed}");
    let snaps = remote_of(b, &url);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let out = b.masctl(&["restore", "--from", &url, "--json"]);
    assert!(out.status.success(), "restore over sftp failed:\n{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(key_ids(b), facts.key_ids);
    let alice = Client::login(&b.base_url(), "alice", PASSWORD);
    let msgs = alice.get(&format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50", enc(&facts.room)));
    assert!(msgs.to_string().contains(&facts.message), "{msgs}");
}

fn remote_of(s: &Stack, repo: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(&s.masctl_ok(&["backups", "--remote", "--from", repo, "--json"])).unwrap();
    v[0]["snapshots"].as_array().unwrap().clone()
}

/// A masctl-tagged snapshot claiming a Synapse schema far beyond any image; its id.
fn newer_snapshot(repo: &Path, password_file: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x"), "x").unwrap();
    let out = std::process::Command::new("restic")
        .args(["-r", repo.to_str().unwrap(), "--password-file", password_file.to_str().unwrap(), "backup", "--json"])
        .args(["--tag", "masctl", "--tag", "set=20990101T000000Z-manual", "--tag", "generation=1"])
        .args(["--tag", "synapse-schema=9999", "--tag", "synapse-compat=9999"])
        .arg(dir.path())
        .output()
        .expect("restic on the machine (apt-get install restic)");
    assert!(out.status.success(), "restic backup: {}", text(&out.stderr));
    let summary = text(&out.stdout).lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).next_back().unwrap();
    summary["snapshot_id"].as_str().unwrap().to_string()
}

/// The repository password is in masctl's secrets and nowhere else it looks.
fn check_password_stays_secret(a: &Stack, password: &str) {
    let needle = vec![password.to_string()];
    let store = common::grep_tree(&a.root.join("store"), &needle);
    assert!(store.is_empty(), "the password is in the store: {store:?}");
    assert!(!a.unit_files().contains(password), "the password is in a unit file");
    let journal = docker_ok(&["exec", &a.host(), "journalctl", "--no-pager", "-o", "cat"]);
    assert!(!journal.contains(password), "the password is in the journal");
    let ids = docker_ok(&["ps", "-aq"]);
    let mut args = vec!["inspect"];
    args.extend(ids.split_whitespace());
    let inspect = text(&docker(&args).stdout);
    assert!(!inspect.contains(password), "the password is in a container's inspect output");
}

fn hex(n: usize) -> String {
    let mut f = std::fs::File::open("/dev/urandom").unwrap();
    let mut buf = vec![0u8; n];
    std::io::Read::read_exact(&mut f, &mut buf).unwrap();
    hex_of(&buf)
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
