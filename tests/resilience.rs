//! What keeps a stack up when its surroundings fail: health for every service (MAS
//! and the proxy are probed over HTTP), a service that stops answering restarted,
//! unit files that load without the state root mounted, a supervisor killed with
//! SIGKILL that adopts its container instead of killing it, and a restart of dockerd
//! that the supervisors ride out.
//!
//! This restarts the machine's dockerd (a stack of another test running meanwhile
//! would lose its engine for a few seconds), so it is marked ignored and
//! scripts/test.sh runs it alone, after every other test.

mod common;

use std::process::Command;
use std::time::Duration;

use common::stack::{Stack, text};
use common::{docker, docker_ok, http, images_with_standin, wait_for};

const MAS_MIGRATING: &str = "[images]\nmas = \"mas-standin\"\n[mas]\nenabled = true\nmigration_in_progress = true\n";
const UNITS: [&str; 4] =
    ["masctl-postgres.service", "masctl-synapse.service", "masctl-mas.service", "masctl-proxy.service"];

fn host_sh(s: &Stack, script: &str) -> String {
    docker_ok(&["exec", &s.host(), "sh", "-c", script])
}

fn unit_prop(s: &Stack, unit: &str, prop: &str) -> String {
    host_sh(s, &format!("systemctl show -p {prop} --value {unit}"))
}

fn journal(s: &Stack, unit: &str) -> String {
    host_sh(s, &format!("journalctl -q --no-pager -o cat -u {unit}"))
}

fn health_of(st: &serde_json::Value, service: &str) -> String {
    let c = st["containers"].as_array().unwrap().iter().find(|c| c["service"] == service);
    c.map_or("absent".into(), |c| c["health"].as_str().unwrap_or("null").to_string())
}

fn all_healthy(s: &Stack) -> Option<serde_json::Value> {
    let out = s.masctl(&["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let ok = ["postgres", "synapse", "mas", "proxy"].iter().all(|svc| health_of(&st, svc) == "healthy")
        && st["matches_current"] == true;
    ok.then_some(st)
}

fn container_id(s: &Stack, service: &str) -> String {
    docker_ok(&["inspect", "-f", "{{.Id}}", &s.container(service)])
}

/// The running dockerd's pid and command line.
fn dockerd() -> (u32, Vec<String>) {
    let out = Command::new("pgrep").args(["-x", "dockerd"]).output().unwrap();
    let pid: u32 = text(&out.stdout).lines().next().expect("dockerd runs").trim().parse().unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args = cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(text).collect();
    (pid, args)
}

/// Stops dockerd gracefully (SIGTERM, as its service manager would) and starts it
/// again the way scripts/lib.sh does, with `--live-restore`: containers, and the
/// supervisors in the systemd host, keep running through it.
fn restart_dockerd() {
    let (pid, mut args) = dockerd();
    if !args.iter().any(|a| a == "--live-restore") {
        args.push("--live-restore".into());
    }
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    wait_for("dockerd to exit", Duration::from_secs(120), || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    let cmd = format!("nohup {} >>/var/log/masctl-dockerd.log 2>&1 &", args.join(" "));
    assert!(Command::new("setsid").args(["sh", "-c", &cmd]).status().unwrap().success());
    wait_for("dockerd to answer", Duration::from_secs(60), || docker(&["info"]).status.success().then_some(()));
}

fn live_restore() -> bool {
    docker_ok(&["info", "-f", "{{.LiveRestoreEnabled}}"]) == "true"
}

#[test]
#[ignore = "restarts dockerd: scripts/test.sh runs it alone, after every other test"]
fn health_unmounted_root_killed_supervisor_and_dockerd_restart() {
    if !live_restore() {
        // Without it every container stops with dockerd; this binary runs alone.
        restart_dockerd();
    }
    let images = images_with_standin();
    let s = Stack::with_images("resil", images.path().to_path_buf());
    s.write_config(MAS_MIGRATING);
    s.up();
    s.wait_serving();

    // A real health for every container, HTTP-probed ones included.
    let st = wait_for("every container healthy", Duration::from_secs(60), || all_healthy(&s));
    for svc in ["mas", "proxy"] {
        assert_eq!(health_of(&st, svc), "healthy", "{st}");
    }
    let text_status = s.masctl_ok(&["status"]);
    assert!(!text_status.contains("none"), "{text_status}");

    // Units are real files naming the state root as a mount they need.
    let root = s.root.display().to_string();
    for unit in UNITS {
        host_sh(&s, &format!("test -f /etc/systemd/system/{unit} && test ! -L /etc/systemd/system/{unit}"));
        assert!(unit_prop(&s, unit, "RequiresMountsFor").contains(&root), "{unit}");
    }

    // With the state root unmounted, daemon-reload still loads every unit; once it
    // is mounted again, the target starts.
    host_sh(&s, "systemctl stop masctl.target");
    host_sh(&s, &format!("mkdir -p /mnt/state && mount --bind {root} /mnt/state && umount {root}"));
    host_sh(&s, &format!("test ! -e {root}/current"));
    host_sh(&s, "systemctl daemon-reload");
    for unit in UNITS.iter().chain(&["masctl.target"]) {
        assert_eq!(unit_prop(&s, unit, "LoadState"), "loaded", "{unit} with the state root unmounted");
    }
    host_sh(&s, &format!("mount --bind /mnt/state {root} && umount /mnt/state"));
    host_sh(&s, "systemctl start masctl.target");
    wait_for("the stack after remounting", Duration::from_secs(180), || all_healthy(&s));

    // MAS stops answering its probe: its supervisor stops it, systemd restarts the
    // unit, and a new container is healthy.
    let mas_before = container_id(&s, "mas");
    let restarts_before: u32 = unit_prop(&s, "masctl-mas.service", "NRestarts").parse().unwrap();
    docker_ok(&["pause", &s.container("mas")]);
    wait_for("MAS replaced and healthy", Duration::from_secs(180), || {
        let replaced = docker(&["inspect", "-f", "{{.Id}}", &s.container("mas")]);
        let id = text(&replaced.stdout).trim().to_string();
        (replaced.status.success() && id != mas_before).then_some(())?;
        all_healthy(&s)
    });
    let restarts: u32 = unit_prop(&s, "masctl-mas.service", "NRestarts").parse().unwrap();
    assert!(restarts > restarts_before, "NRestarts {restarts_before} → {restarts}");
    assert!(journal(&s, "masctl-mas.service").contains("turned unhealthy"));

    // dockerd restarts under the running stack: supervisors and containers keep
    // running, the log stream reconnects, the stack stays as it was.
    let pids: Vec<String> = UNITS.iter().map(|u| unit_prop(&s, u, "MainPID")).collect();
    let started: Vec<String> = ["postgres", "synapse", "mas", "proxy"].iter().map(|c| s.started_at(c)).collect();
    restart_dockerd();
    s.wait_serving();
    let nonce = format!("after-restart-{}", std::process::id());
    wait_for("Synapse to log a request made after the restart", Duration::from_secs(60), || {
        let _ = http::probe_agent().get(&format!("{}/_matrix/client/versions?{nonce}", s.base_url())).call();
        journal(&s, "masctl-synapse.service").contains(&nonce).then_some(())
    });
    let pids_after: Vec<String> = UNITS.iter().map(|u| unit_prop(&s, u, "MainPID")).collect();
    assert_eq!(pids, pids_after, "no supervisor exited");
    let started_after: Vec<String> = ["postgres", "synapse", "mas", "proxy"].iter().map(|c| s.started_at(c)).collect();
    assert_eq!(started, started_after, "no container restarted");
    wait_for("status to match after the restart", Duration::from_secs(60), || all_healthy(&s));

    // A supervisor killed with SIGKILL: systemd starts a new one, which adopts the
    // running Postgres instead of killing it.
    let pg_pid = unit_prop(&s, "masctl-postgres.service", "MainPID");
    host_sh(&s, &format!("kill -9 {pg_pid}"));
    wait_for("a new Postgres supervisor, ready", Duration::from_secs(120), || {
        let pid = unit_prop(&s, "masctl-postgres.service", "MainPID");
        (pid != pg_pid && pid != "0" && s.unit_active_state("masctl-postgres.service") == "active").then_some(())
    });
    assert_eq!(s.started_at("postgres"), started[0], "Postgres kept running");
    assert!(journal(&s, "masctl-postgres.service").contains("adopting the running container"));
    wait_for("the stack to converge", Duration::from_secs(60), || all_healthy(&s));
    s.wait_serving();
    assert_eq!(s.sql("postgres", "SELECT 1"), "1");
    let logs = docker(&["logs", &s.container("postgres")]);
    let logs = format!("{}{}", text(&logs.stdout), text(&logs.stderr));
    for crash in ["not properly shut down", "automatic recovery in progress", "terminated by signal 9"] {
        assert!(!logs.contains(crash), "Postgres logged crash recovery ({crash}):\n{logs}");
    }
    let noop = s.masctl(&["switch"]);
    let said = format!("{}{}", text(&noop.stdout), text(&noop.stderr));
    assert!(noop.status.success() && said.contains("nothing changed"), "a switch now changes nothing:\n{said}");
    assert_eq!(s.started_at("postgres"), started[0]);
}
