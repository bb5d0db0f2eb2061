//! Generations, switch and rollback on a real systemd (PID 1 in a container) with
//! real Docker, Postgres and Synapse built by masctl.

mod common;

use std::process::Command;
use std::time::Duration;

use common::stack::{Stack, text};
use common::{docker_ok, grep_tree, wait_for};

fn units_active(status: &serde_json::Value) -> bool {
    status["units"].as_array().unwrap().iter().all(|u| u["active_state"] == "active")
}

fn containers_healthy(status: &serde_json::Value) -> bool {
    let cs = status["containers"].as_array().unwrap();
    // Postgres, Synapse and the edge in front of it (plain HTTP too).
    cs.len() == 3 && cs.iter().all(|c| c["health"] == "healthy" && c["image"].is_string())
}

/// The secrets masctl generated, as strings that must never leak.
fn secret_values(s: &Stack) -> Vec<String> {
    let dir = s.root.join("secrets");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600, "{}", p.display());
        let v = std::fs::read_to_string(&p).unwrap();
        // The secret part of each file (a pgpass line or a signing key carries it last).
        let secret = v.trim().rsplit([':', ' ']).next().unwrap().to_string();
        assert!(secret.len() >= 32, "{}: {secret}", p.display());
        out.push(secret);
    }
    out
}

/// One GET at a time, every 50 ms (bench/edge.sh's client), each allowed 35 s.
struct Poller {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(usize, Vec<String>, Duration)>,
}

impl Poller {
    fn start(url: String) -> Poller {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let agent = common::http::agent_with_timeout(Duration::from_secs(35));
            let (mut ok, mut failed, mut longest) = (0, Vec::new(), Duration::ZERO);
            while !flag.load(Ordering::Relaxed) {
                let t = std::time::Instant::now();
                match common::http::get_status(&agent, &url) {
                    Ok(200) => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
                longest = longest.max(t.elapsed());
                std::thread::sleep(Duration::from_millis(50));
            }
            (ok, failed, longest)
        });
        Poller { stop, thread }
    }

    /// How many polls were answered 200, what the others got, the longest wait.
    fn stop(self) -> (usize, Vec<String>, Duration) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

#[test]
fn switch_lifecycle_change_noop_rollback_and_invalid_configs() {
    let s = Stack::new("life");
    let up = s.up();
    assert_eq!(up["client_url"], s.base_url());
    s.wait_serving();
    let st = s.status();
    assert_eq!(st["generation"], 1);
    assert!(units_active(&st) && containers_healthy(&st), "{st}");
    assert_eq!(st["matches_current"], true);

    // Secrets: 0600 files, and nowhere else: not in the store, the units, any
    // process's command line, or the journal.
    let secrets = secret_values(&s);
    let store_hits = grep_tree(&s.root.join("store"), &secrets);
    assert!(store_hits.is_empty(), "secrets in the store: {store_hits:?}");
    let units = s.unit_files();
    let journal = docker_ok(&["exec", &s.host(), "journalctl", "--no-pager", "-o", "cat"]);
    let mut cmdlines = String::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            cmdlines.push_str(&String::from_utf8_lossy(&c));
        }
    }
    for secret in &secrets {
        assert!(!units.contains(secret.as_str()), "secret in a unit file");
        assert!(!journal.contains(secret.as_str()), "secret in the journal");
        assert!(!cmdlines.contains(secret.as_str()), "secret in /proc/*/cmdline");
    }

    // Data written now must survive every switch and rollback.
    s.register("alice", "alice-password-1");
    assert_eq!(s.login_status("alice", "alice-password-1"), 200);

    // The journal of the current run of a unit.
    let logs = s.masctl_ok(&["logs", "synapse", "-n", "1000"]);
    assert!(logs.contains("is healthy"), "{logs}");
    let unknown = s.masctl(&["logs", "nonexistent"]);
    assert!(!unknown.status.success() && text(&unknown.stderr).contains("known: postgres, proxy, synapse"));

    // A no-op switch restarts nothing and makes no generation.
    let (pg0, syn0) = (s.started_at("postgres"), s.started_at("synapse"));
    let out = s.masctl_ok(&["switch"]);
    assert!(out.contains(&s.base_url()));
    assert_eq!(s.generations().len(), 1);
    assert_eq!((s.started_at("postgres"), s.started_at("synapse")), (pg0.clone(), syn0.clone()));

    // A Synapse-only change restarts Synapse only.
    s.write_config("[synapse.extra]\nmax_upload_size = \"7M\"\n");
    let dry = s.masctl_ok(&["switch", "--dry-run"]);
    assert!(dry.contains("would restart the following units: masctl-synapse.service"), "{dry}");
    assert_eq!(s.generations().len(), 1, "a dry run makes no generation");
    // A client polling through the edge the whole time sees no failed request:
    // the edge holds each one while Synapse restarts.
    let polls = Poller::start(format!("{}/_matrix/client/versions", s.base_url()));
    s.masctl_ok(&["switch"]);
    s.wait_serving();
    let (ok, failed, longest) = polls.stop();
    assert!(failed.is_empty() && ok >= 2, "{ok} answered, failed during the switch: {failed:?}");
    // Synapse takes seconds to start: a request that came while it was down waited.
    assert!(longest >= Duration::from_secs(1), "no request overlapped Synapse's restart: {longest:?}");
    assert_eq!(s.current(), 2);
    assert_eq!(s.started_at("postgres"), pg0, "Postgres must keep running");
    assert_ne!(s.started_at("synapse"), syn0);
    assert_eq!(s.served_config()["max_upload_size"], "7M");
    let diff = s.masctl_ok(&["diff"]);
    assert!(diff.contains("unit changed: masctl-synapse.service") && diff.contains("max_upload_size"), "{diff}");
    assert!(!diff.contains("masctl-postgres.service"), "{diff}");
    assert_eq!(s.login_status("alice", "alice-password-1"), 200);

    // Invalid configs: one located line each, and the host exactly as it was.
    let before = s.snapshot();
    let syn1 = s.started_at("synapse");
    for (bad, location) in [
        ("[synapse]\nlog_level = \"LOUD\"\n", "masctl.toml:7:13:"),
        ("[synapse.extra]\ndatabase = \"x\"\n", "masctl.toml:7:1:"),
        ("bogus = 1\n", "masctl.toml:6:1:"),
    ] {
        s.write_config(bad);
        let out = s.masctl(&["switch"]);
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(location), "{bad}: {err}");
    }
    assert_eq!(s.snapshot(), before, "an invalid config changed the state root");
    assert_eq!(s.started_at("synapse"), syn1);

    // Rollback serves the previous config; the data is still there.
    s.write_config("[synapse.extra]\nmax_upload_size = \"7M\"\n");
    s.masctl_ok(&["rollback"]);
    s.wait_serving();
    assert_eq!(s.current(), 1);
    assert!(s.served_config().get("max_upload_size").is_none());
    assert_eq!(s.login_status("alice", "alice-password-1"), 200);
    assert_eq!(s.started_at("postgres"), pg0);
    let gens = s.generations();
    assert_eq!(gens.len(), 2);
    assert!(gens.iter().any(|g| g["number"] == 1 && g["current"] == true));

    // gc never removes the current generation nor service data.
    s.masctl_ok(&["gc", "--keep", "0"]);
    assert_eq!(s.generations().len(), 1);
    assert_eq!(s.login_status("alice", "alice-password-1"), 200);
    assert!(s.root.join("data/postgres/PG_VERSION").exists());

    // A Postgres-only change restarts Postgres and leaves Synapse running, which
    // reconnects to its database by itself.
    let syn_before = s.started_at("synapse");
    s.write_config("[postgres.settings]\nwork_mem = \"8MB\"\n");
    s.masctl_ok(&["switch"]);
    assert_ne!(s.started_at("postgres"), pg0);
    assert_eq!(s.started_at("synapse"), syn_before, "Synapse must keep running");
    // Synapse's pool drops each broken connection once, then reconnects.
    wait_for("Synapse to reach the restarted Postgres", Duration::from_secs(60), || {
        (s.profile_status("alice") == Some(200)).then_some(())
    });
    assert_eq!(s.login_status("alice", "alice-password-1"), 200);

    // The throwaway host survives a restart of its container: its /run is a fresh
    // tmpfs then, and the stack serves again with no command typed.
    let generation = s.current();
    docker_ok(&["restart", &s.host()]);
    wait_for("masctl.target active after the host restarted", Duration::from_secs(180), || {
        (s.unit_active_state("masctl.target") == "active").then_some(())
    });
    wait_for("alice to log in after the host restarted", Duration::from_secs(120), || {
        (s.login_status("alice", "alice-password-1") == 200).then_some(())
    });
    wait_for("every unit active and container healthy after the restart", Duration::from_secs(120), || {
        let st = s.status();
        (units_active(&st) && containers_healthy(&st)).then_some(())
    });
    assert_eq!(s.current(), generation);
}

#[test]
fn failures_roll_back_and_interrupted_switches_converge() {
    let s = Stack::new("fail");
    s.up();
    s.wait_serving();
    s.register("bob", "bob-password-1");

    // Synapse refuses open registration without verification: generation 2 cannot start.
    s.write_config("[synapse]\nenable_registration = true\n");
    let out = s.masctl(&["switch", "--timeout", "120"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("rolled back to generation 1") && err.contains("masctl-synapse.service"), "{err}");
    assert!(err.contains("last log lines of masctl-synapse.service"), "{err}");
    s.wait_serving();
    let st = s.status();
    assert_eq!(st["generation"], 1);
    assert!(units_active(&st) && containers_healthy(&st), "{st}");
    assert_eq!(s.served_config()["enable_registration"], false);
    assert_eq!(s.login_status("bob", "bob-password-1"), 200);

    // Killed with SIGKILL at each point of a switch: `current` is always a complete
    // generation, and the next switch converges.
    let mut expect_size = 10;
    for point in ["after-stop", "after-flip", "after-reload"] {
        expect_size += 1;
        s.write_config(&format!("[synapse.extra]\nmax_upload_size = \"{expect_size}M\"\n"));
        let killed = s.masctl_env(&[&format!("MASCTL_FAILPOINT={point}")], &["switch"]);
        assert!(!killed.status.success(), "{point}: the failpoint did not fire");
        let cur = std::fs::read_link(s.root.join("current")).unwrap();
        let gen_dir = std::fs::read_link(s.root.join(&cur)).unwrap();
        assert!(gen_dir.join("manifest.json").exists(), "{point}: current is not a complete generation");
        s.masctl_ok(&["switch"]);
        s.wait_serving();
        let st = s.status();
        assert!(units_active(&st) && containers_healthy(&st) && st["matches_current"] == true, "{point}: {st}");
        assert_eq!(s.served_config()["max_upload_size"], format!("{expect_size}M"), "{point}");
        assert_eq!(s.login_status("bob", "bob-password-1"), 200);
    }

    // Two concurrent switches: one proceeds, the other fails on the lock at once.
    s.write_config("[synapse.extra]\nmax_upload_size = \"99M\"\n");
    let root = s.root.display().to_string();
    let mut first = Command::new("docker")
        .args(["exec", &s.host(), "/opt/masctl/bin/masctl", "--root", &root, "-c", "/etc/masctl/masctl.toml", "switch"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Readiness: the lock is held once the file names its holder.
    wait_for("the first switch to take the lock", Duration::from_secs(60), || {
        std::fs::read_to_string(s.root.join("lock")).ok().filter(|t| t.contains("masctl switch")).map(|_| ())
    });
    let second = s.masctl(&["switch"]);
    let first_ok = first.wait().unwrap().success();
    assert!(first_ok, "the first switch proceeds");
    assert!(!second.status.success());
    let err = text(&second.stderr);
    assert!(err.contains("another masctl command holds") && err.contains("masctl switch"), "{err}");
    s.wait_serving();
    assert_eq!(s.served_config()["max_upload_size"], "99M");
}
