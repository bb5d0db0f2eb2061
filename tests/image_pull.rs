//! Pulling by digest from a real registry (Debian's `docker-registry`) on loopback.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Root, docker, docker_ok, wait_for};

struct Registry {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry() -> Registry {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry is installed (run the README's test command)");
    let addr = format!("127.0.0.1:{port}");
    wait_for("the registry to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(&addr).ok().map(|_| ())
    });
    Registry { child, addr, _dir: dir }
}

#[test]
fn pull_by_digest_from_a_loopback_registry_and_refuse_the_wrong_digest() {
    let reg = start_registry();
    let root = Root::new();
    let id = root.load("base");
    let repo = format!("{}/masctl-test/base-{}", reg.addr, std::process::id());
    let tagged = format!("{repo}:t");
    docker_ok(&["tag", &id, &tagged]);
    docker_ok(&["push", &tagged]);
    let digest_ref = docker_ok(&["image", "inspect", "-f", "{{range .RepoDigests}}{{println .}}{{end}}", &tagged]);
    let digest = digest_ref
        .lines()
        .find(|l| l.starts_with(&repo))
        .and_then(|l| l.split_once('@'))
        .map(|(_, d)| d.to_string())
        .expect("push records a digest");
    // Forget the local copy so the pull really comes from the registry.
    docker_ok(&["rmi", "-f", &tagged]);
    let _ = docker(&["rmi", "-f", &format!("{repo}@{digest}")]);

    let pinned = format!("{repo}:t@{digest}");
    let out = root.ok(&["image", "pull", &pinned]);
    assert!(out.contains(&id), "the pulled image is the one pushed: {out}");
    assert_eq!(docker_ok(&["image", "inspect", "-f", "{{.Id}}", &format!("{repo}@{digest}")]), id);

    let wrong = format!("{repo}@sha256:{}", "0".repeat(64));
    let err = root.fails(&["image", "pull", &wrong]);
    assert!(err.contains("masctl: error:") && err.contains(&wrong[..20]), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let err = root.fails(&["image", "pull", &tagged]);
    assert!(err.contains("no @sha256"), "{err}");
}
