//! Helpers shared by the integration tests: the built `masctl`, a per-test state
//! root with a shared input cache, the real Docker engine, and bounded waits.
#![allow(dead_code)]

pub mod stack;
pub mod standin;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Inputs are fetched once per checkout and shared by every test's state root.
pub fn shared_cache() -> PathBuf {
    std::env::var_os("MASCTL_TEST_CACHE").map(PathBuf::from).unwrap_or_else(|| repo().join("target/test-cache"))
}

/// A throwaway state root; removed when dropped.
pub struct Root {
    pub dir: tempfile::TempDir,
}

impl Root {
    pub fn new() -> Root {
        Root { dir: tempfile::Builder::new().prefix("masctl-test-").tempdir().expect("tempdir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn masctl(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_masctl"));
        c.env("MASCTL_ROOT", self.path())
            .env("MASCTL_CACHE", shared_cache())
            .env("MASCTL_IMAGES", repo().join("images"))
            .env("NO_COLOR", "1");
        c
    }

    /// Runs masctl and returns stdout, failing the test with stderr otherwise.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.masctl().args(args).output().expect("running masctl");
        assert!(out.status.success(), "masctl {} failed:\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs masctl expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.masctl().args(args).output().expect("running masctl");
        assert!(!out.status.success(), "masctl {} should have failed", args.join(" "));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Builds and loads an image; returns its ID.
    pub fn load(&self, name: &str) -> String {
        let out = self.ok(&["image", "load", name]);
        let line = out.lines().find(|l| l.starts_with(&format!("{name} "))).expect("load prints the ID");
        line.split_whitespace().nth(1).expect("ID").to_string()
    }
}

pub fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("the docker CLI is installed (run the README's test command)")
}

/// Runs docker and returns trimmed stdout, failing the test otherwise.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Polls `check` until it returns `Some`, at most `limit`; a readiness check, not a sleep.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Containers, volumes and networks created by a test, removed on drop.
pub struct Docker {
    pub prefix: String,
    containers: Vec<String>,
    volumes: Vec<String>,
    networks: Vec<String>,
}

impl Docker {
    pub fn new(test: &str) -> Docker {
        Docker {
            prefix: format!("masctl-test-{test}-{}", std::process::id()),
            containers: Vec::new(),
            volumes: Vec::new(),
            networks: Vec::new(),
        }
    }

    pub fn network(&mut self) -> String {
        let name = format!("{}-net", self.prefix);
        docker_ok(&["network", "create", &name]);
        self.networks.push(name.clone());
        name
    }

    pub fn volume(&mut self, what: &str) -> String {
        let name = format!("{}-{what}", self.prefix);
        docker_ok(&["volume", "create", &name]);
        self.volumes.push(name.clone());
        name
    }

    /// `docker run -d --name <prefix>-<name> ARGS…`; returns the container name.
    pub fn run(&mut self, name: &str, args: &[&str]) -> String {
        let full = format!("{}-{name}", self.prefix);
        let mut all = vec!["run", "-d", "--name", &full];
        all.extend_from_slice(args);
        docker_ok(&all);
        self.containers.push(full.clone());
        full
    }

    pub fn logs(&self, container: &str) -> String {
        let out = docker(&["logs", "--tail", "40", container]);
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", "-v", c]);
        }
        for v in &self.volumes {
            let _ = docker(&["volume", "rm", "-f", v]);
        }
        for n in &self.networks {
            let _ = docker(&["network", "rm", n]);
        }
    }
}

/// Secure hardening flags every service container in the tests runs with.
pub const HARDENED: [&str; 6] =
    ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--tmpfs=/tmp"];
