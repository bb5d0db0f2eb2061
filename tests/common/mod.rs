//! Helpers shared by the integration tests: the built `masctl`, a per-test state
//! root with a shared input cache, the real Docker engine, and bounded waits.
#![allow(dead_code)]

pub mod external_pg;
pub mod http;
pub mod python;
pub mod stack;

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
            .env("MASCTL_IMAGES", fresh_images())
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

/// A declarations directory: the project's images plus the stand-in MAS image
/// (`mas-standin`, the test double in tests/mas-standin, on the Synapse image).
pub fn images_with_standin() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fresh_images()).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    copy_tree(&repo().join("images/files"), &dir.path().join("files"));
    copy_tree(&repo().join("tests/mas-standin"), &dir.path().join("mas-standin"));
    std::fs::copy(repo().join("tests/mas-standin.toml"), dir.path().join("mas-standin.toml")).unwrap();
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// The sha256 of every input a lock file pins (a plain scan of its `sha256 =` lines).
pub fn pinned_hashes(lock: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    text.lines().filter_map(|l| l.strip_prefix("sha256 = \"")).map(|h| h.trim_end_matches('"').to_string()).collect()
}

/// The recipes' declarations to build from fresh inputs. The committed locks, unless
/// a pinned input is neither cached nor on the mirrors any more (Debian drops
/// superseded versions): then a relock of only what is gone, in a temporary
/// directory, and a note that the committed locks are stale. Tests do not fail
/// merely because the archive moved on.
pub fn fresh_images() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let committed = repo().join("images");
        let recipes = ["base", "postgres", "redis", "synapse", "proxy", "base-trixie", "postgres17"];
        let cached = |name: &str| {
            pinned_hashes(&committed.join(format!("{name}.lock"))).iter().all(|h| shared_cache().join(h).exists())
        };
        if recipes.iter().all(|n| cached(n)) {
            return committed;
        }
        let dir = tempfile::Builder::new().prefix("masctl-relock-").tempdir().unwrap().keep();
        copy_tree(&committed, &dir);
        let root = Root::new();
        let mut stale = Vec::new();
        for name in recipes {
            let out = Command::new(env!("CARGO_BIN_EXE_masctl"))
                .env("MASCTL_ROOT", root.path())
                .env("MASCTL_CACHE", shared_cache())
                .env("MASCTL_IMAGES", &dir)
                .env("NO_COLOR", "1")
                .args(["image", "lock", "--update", name])
                .output()
                .expect("running masctl");
            assert!(out.status.success(), "relocking {name}: {}", String::from_utf8_lossy(&out.stderr));
            let lock = format!("{name}.lock");
            if std::fs::read(dir.join(&lock)).ok() != std::fs::read(committed.join(&lock)).ok() {
                stale.push(lock);
            }
        }
        if stale.is_empty() {
            return committed;
        }
        eprintln!(
            "NOTE: the committed locks are stale ({}: Debian dropped pinned versions); testing with a relock in {} — run scripts/relock.sh and commit images/*.lock",
            stale.join(", "),
            dir.display()
        );
        dir
    })
}

/// Which MAS a test runs: the `[images]` lines that pick it — the stand-in, or
/// with `MASCTL_TEST_MAS_DIST` (a MAS release directory) the real mas-cli through
/// the `mas-local` recipe, as a user would run it.
pub fn mas_images() -> String {
    match std::env::var("MASCTL_TEST_MAS_DIST") {
        Ok(dist) if !dist.is_empty() => {
            let dist = std::fs::canonicalize(&dist).expect("MASCTL_TEST_MAS_DIST exists");
            format!("[images]\nmas = \"mas-local\"\n[images.inputs]\nmas-dist = \"{}\"\n", dist.display())
        }
        _ => "[images]\nmas = \"mas-standin\"\n".to_string(),
    }
}

/// Files under `dir` holding any of `needles` (one entry per needle found).
pub fn grep_tree(dir: &Path, needles: &[String]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() && m.len() < 50_000_000 {
                let data = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
                hits.extend(needles.iter().filter(|n| data.contains(n.as_str())).map(|_| p.display().to_string()));
            }
        }
    }
    hits
}

/// A SQL query as the superuser over a Postgres container's socket; rows as text lines.
/// `docker exec` arguments that open psql as postgres on `db` over the socket.
fn psql_argv<'a>(container: &'a str, db: &'a str, tail: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec!["exec", "-i", container, "psql", "-h", "/run/postgresql", "-U", "postgres", "-d", db];
    argv.extend_from_slice(tail);
    argv
}

pub fn psql(container: &str, db: &str, query: &str) -> String {
    docker_ok(&psql_argv(container, db, &["-tAc", query]))
}

/// A lock the test holds on a table, in a psql session of its own, until
/// `release`: whatever needs the table (a pg_dump) waits on it meanwhile.
pub struct TableLock {
    session: std::process::Child,
}

impl TableLock {
    /// Returns once the lock is held.
    pub fn take(container: &str, db: &str, table: &str) -> TableLock {
        use std::io::{BufRead, Write};
        use std::process::Stdio;
        let mut session = Command::new("docker")
            .args(psql_argv(container, db, &["-tAq"]))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = session.stdin.as_mut().unwrap();
        writeln!(stdin, "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT 'locked';").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(session.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "locked", "the lock on {table} was not taken");
        TableLock { session }
    }

    pub fn release(mut self) {
        use std::io::Write;
        let mut stdin = self.session.stdin.take().unwrap();
        writeln!(stdin, "COMMIT;").unwrap();
        drop(stdin);
        assert!(self.session.wait().unwrap().success(), "the lock's session failed");
    }
}
