//! A whole stack under test: a throwaway systemd host (via `masctl try`) with its
//! own state root, instance name, published port and config directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::{docker, docker_ok, http, shared_cache, wait_for};

pub struct Stack {
    pub images: PathBuf,
    pub server_name: String,
    pub instance: String,
    pub port: u16,
    pub root: PathBuf,
    pub config_dir: tempfile::TempDir,
    _root_dir: tempfile::TempDir,
}

/// Tests log in many times from one address; Synapse's default login rate limit
/// would answer 429. Appended last, so the lines of `extra` keep their numbers.
const RATE_LIMITS: &str = "[synapse.extra.rc_login.address]\nper_second = 1000\nburst_count = 1000\n\
[synapse.extra.rc_login.account]\nper_second = 1000\nburst_count = 1000\n";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Stack {
    /// Writes the config; does not start anything.
    pub fn new(name: &str) -> Stack {
        Stack::with_images(name, super::fresh_images().to_path_buf())
    }

    /// A stack whose images come from another declarations directory.
    pub fn with_images(name: &str, images: PathBuf) -> Stack {
        Stack::with_server_name(name, "test.local", images)
    }

    /// A stack for another server name (e.g. two stacks federating).
    pub fn with_server_name(name: &str, server_name: &str, images: PathBuf) -> Stack {
        let root_dir = tempfile::Builder::new().prefix("masctl-stack-").tempdir_in("/var/tmp").unwrap();
        let instance = format!("t{}-{name}", std::process::id());
        let stack = Stack {
            images,
            server_name: server_name.to_string(),
            instance,
            port: free_port(),
            root: root_dir.path().to_path_buf(),
            config_dir: tempfile::tempdir().unwrap(),
            _root_dir: root_dir,
        };
        stack.write_config("");
        stack
    }

    pub fn config_path(&self) -> PathBuf {
        self.config_dir.path().join("masctl.toml")
    }

    /// The base config plus `extra` TOML appended (tables after the top-level keys).
    pub fn write_config(&self, extra: &str) {
        let text = format!(
            "server_name = \"{}\"\ninstance = \"{}\"\nstate_root = \"{}\"\n[ports]\nsynapse = \"127.0.0.1:{}\"\n{extra}{RATE_LIMITS}",
            self.server_name,
            self.instance,
            self.root.display(),
            self.port
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    pub fn host(&self) -> String {
        format!("{}-host", self.instance)
    }

    fn masctl_on_host(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_masctl"));
        c.env("MASCTL_CACHE", shared_cache()).env("MASCTL_IMAGES", &self.images).arg("-c").arg(self.config_path());
        c
    }

    /// `masctl try` from the machine: boots the host and switches into it.
    pub fn try_up(&self) -> Output {
        self.masctl_on_host().args(["try", "--json"]).output().unwrap()
    }

    pub fn up(&self) -> serde_json::Value {
        let out = self.try_up();
        assert!(out.status.success(), "masctl try failed:\n{}{}", text(&out.stdout), text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Runs masctl inside the systemd host, as an operator would.
    pub fn masctl(&self, args: &[&str]) -> Output {
        self.masctl_env(&[], args)
    }

    /// masctl inside the host with `input` on its stdin.
    pub fn masctl_stdin(&self, input: &str, args: &[&str]) -> Output {
        self.masctl_spawn(input, args).wait_with_output().unwrap()
    }

    /// masctl inside the host, spawned with `input` written to its stdin (then closed)
    /// and its output piped, to watch while it runs.
    pub fn masctl_spawn(&self, input: &str, args: &[&str]) -> std::process::Child {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = self
            .masctl_exec(&["-i"], args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child
    }

    /// A SQL query in the stack's Postgres, as the superuser; rows as text lines.
    pub fn sql(&self, db: &str, query: &str) -> String {
        super::psql(&self.container("postgres"), db, query)
    }

    /// Every unit file and drop-in masctl wrote into the host, concatenated.
    pub fn unit_files(&self) -> String {
        let files = "/etc/systemd/system/masctl*.service /etc/systemd/system/masctl*.service.d/* \
/etc/systemd/system/masctl.target";
        docker_ok(&["exec", &self.host(), "sh", "-c", &format!("cat {files}")])
    }

    pub fn unit_active_state(&self, unit: &str) -> String {
        let out = Command::new("docker").args(["exec", &self.host(), "systemctl", "is-active", unit]).output().unwrap();
        text(&out.stdout).trim().to_string()
    }

    pub fn masctl_env(&self, env: &[&str], args: &[&str]) -> Output {
        self.masctl_command(env, args).output().unwrap()
    }

    /// masctl inside the host, to run or spawn; `env` as `NAME=value`.
    pub fn masctl_command(&self, env: &[&str], args: &[&str]) -> Command {
        let flags: Vec<&str> = env.iter().flat_map(|e| ["-e", e]).collect();
        self.masctl_exec(&flags, args)
    }

    /// masctl inside the host with another config file (a path inside the host).
    pub fn masctl_with_config(&self, config: &Path, args: &[&str]) -> Output {
        self.masctl_exec_config(&[], config, args).output().unwrap()
    }

    /// `docker exec FLAGS… <host> masctl … ARGS…`, as an operator runs masctl there.
    fn masctl_exec(&self, flags: &[&str], args: &[&str]) -> Command {
        self.masctl_exec_config(flags, Path::new("/etc/masctl/masctl.toml"), args)
    }

    fn masctl_exec_config(&self, flags: &[&str], config: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.arg("exec").args(flags).arg(self.host());
        c.arg("/opt/masctl/bin/masctl").arg("--root").arg(&self.root).arg("-c").arg(config).args(args);
        c
    }

    pub fn masctl_ok(&self, args: &[&str]) -> String {
        let out = self.masctl(args);
        assert!(out.status.success(), "masctl {} failed:\n{}{}", args.join(" "), text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.masctl_ok(&["status", "--json"])).unwrap()
    }

    pub fn generations(&self) -> Vec<serde_json::Value> {
        serde_json::from_str::<serde_json::Value>(&self.masctl_ok(&["generations", "--json"]))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    pub fn current(&self) -> u64 {
        self.status()["generation"].as_u64().unwrap()
    }

    pub fn container(&self, service: &str) -> String {
        format!("{}-{service}", self.instance)
    }

    /// When the service's container was started (changes exactly when it restarts).
    pub fn started_at(&self, service: &str) -> String {
        docker_ok(&["inspect", "-f", "{{.State.StartedAt}}", &self.container(service)])
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn versions_status(&self) -> Option<u16> {
        http::get_status(&http::probe_agent(), &format!("{}/_matrix/client/versions", self.base_url())).ok()
    }

    pub fn wait_serving(&self) {
        wait_for("Synapse to answer /versions", Duration::from_secs(120), || {
            (self.versions_status() == Some(200)).then_some(())
        });
    }

    /// `homeserver.yaml` as the running Synapse container sees it.
    pub fn served_config(&self) -> serde_json::Value {
        let out = docker_ok(&[
            "exec",
            &self.container("synapse"),
            "python3",
            "-c",
            "import sys,yaml; import json; print(json.dumps(yaml.safe_load(open('/etc/synapse/homeserver.yaml'))))",
        ]);
        serde_json::from_str(&out).unwrap()
    }

    /// Registers a user with Synapse's shared-secret API (secret read from its file).
    pub fn register(&self, user: &str, password: &str) {
        let pwfile = format!("/tmp/{user}.pw");
        let c = self.container("synapse");
        let script = format!("open('{pwfile}','w').write('{password}')");
        docker_ok(&["exec", &c, "python3", "-c", &script]);
        docker_ok(&[
            "exec",
            &c,
            "python3",
            "-m",
            "synapse._scripts.register_new_matrix_user",
            "-c",
            "/etc/synapse/homeserver.yaml",
            "-u",
            user,
            "--password-file",
            &pwfile,
            "--no-admin",
            "http://localhost:8008",
        ]);
        docker_ok(&["exec", &c, "python3", "-c", &format!("import os; os.remove('{pwfile}')")]);
    }

    /// A public profile lookup: answers 200 only when Synapse can read its database.
    pub fn profile_status(&self, user: &str) -> Option<u16> {
        let url = format!("{}/_matrix/client/v3/profile/@{user}:{}", self.base_url(), self.server_name);
        http::get_status(&http::probe_agent(), &url).ok()
    }

    /// The status of a password login (Synapse's, or MAS's compatibility API).
    pub fn login_status(&self, user: &str, password: &str) -> u16 {
        http::login(&self.base_url(), user, password).0
    }

    /// The access token of a password login; `None` if refused or unanswered.
    pub fn access_token(&self, user: &str, password: &str) -> Option<String> {
        http::access_token(&self.base_url(), user, password)
    }

    /// A client logged in as `user`, failing the test if the login is refused.
    pub fn client(&self, user: &str, password: &str) -> http::Client {
        http::Client::login(&self.base_url(), user, password)
    }

    /// Every file under the state root with its size (a snapshot to compare).
    pub fn snapshot(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out.sort();
        out
    }
}

fn walk(p: &Path, out: &mut Vec<String>) {
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.starts_with(path.parent().unwrap().join("data")) {
                continue; // service data changes while services run
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let link = std::fs::read_link(&path).map(|l| l.display().to_string()).unwrap_or_default();
            out.push(format!("{} {} {link}", path.display(), meta.len()));
            if meta.is_dir() {
                walk(&path, out);
            }
        }
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.masctl_on_host().args(["try", "--down"]).output();
        let _ = docker(&["network", "rm", &self.instance]);
    }
}
