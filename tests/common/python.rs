//! The Python test helpers under tests/py: a venv made once under the target
//! directory (a file lock keeps concurrent tests from building it twice) with
//! tests/py/requirements.txt installed, and a runner that returns a script's
//! JSON result.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::repo;

/// The venv, made or reused; rebuilt when requirements.txt changes.
pub fn venv() -> PathBuf {
    let dir = repo().join("target/test-py-venv");
    std::fs::create_dir_all(repo().join("target")).unwrap();
    // Held until this function returns: one test builds, the others wait and reuse.
    let lock = File::create(repo().join("target/test-py-venv.lock")).unwrap();
    lock.lock().expect("locking the venv");
    let wanted = std::fs::read_to_string(requirements()).unwrap();
    let stamp = dir.join("requirements.installed");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let _ = std::fs::remove_dir_all(&dir);
        run(Command::new("python3").args(["-m", "venv"]).arg(&dir), "python3 -m venv");
        run(
            Command::new(dir.join("bin/pip")).args(["install", "--quiet", "-r"]).arg(requirements()),
            "pip install -r tests/py/requirements.txt",
        );
        std::fs::write(&stamp, &wanted).unwrap();
    }
    drop(lock);
    dir
}

fn requirements() -> PathBuf {
    repo().join("tests/py/requirements.txt")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The outcome of one script run: its exit status and the JSON it printed last.
pub struct Outcome {
    pub success: bool,
    pub json: serde_json::Value,
    pub stderr: String,
}

/// Runs `tests/py/<script>` with `args` in the venv; the last stdout line is JSON.
pub fn run_script(script: &str, args: &[&str]) -> Outcome {
    let python = venv().join("bin/python");
    let out = Command::new(python).arg(repo().join("tests/py").join(script)).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let json =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{script}: no JSON result ({e}):\n{stdout}{stderr}"));
    Outcome { success: out.status.success(), json, stderr }
}

/// Whether a path names an executable file (e.g. /usr/bin/chromium).
pub fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// A network namespace of its own on a Docker network, for a browser script.
///
/// Chromium aborts a page load (ERR_NETWORK_CHANGED) whenever the interfaces of
/// its network namespace change, and on the host they change all the time: every
/// test creates and removes Docker networks and containers. In a container's
/// namespace there are only `lo` and its one interface on the stack's network,
/// which is all the browser needs to reach the edge and the IdP.
pub struct BrowserNet {
    container: String,
    netns: String,
}

impl BrowserNet {
    /// Joins `network` with a holder container made from the image of `beside` (a
    /// container already on it; every stack image has /bin/sh, which, reading an
    /// open stdin, waits forever).
    pub fn join(network: &str, beside: &str) -> BrowserNet {
        let image = super::docker_ok(&["inspect", "-f", "{{.Image}}", beside]);
        let container = format!("{network}-browser-{}", std::process::id());
        let _ = super::docker(&["rm", "-f", &container]);
        super::docker_ok(&[
            "run",
            "-d",
            "-i",
            "--network",
            network,
            "--name",
            &container,
            "--entrypoint",
            "/bin/sh",
            &image,
        ]);
        let pid = super::docker_ok(&["inspect", "-f", "{{.State.Pid}}", &container]);
        assert!(pid.parse::<u32>().is_ok_and(|p| p > 0), "{container} has no process: {pid:?}");
        BrowserNet { container, netns: format!("/proc/{pid}/ns/net") }
    }

    /// The venv's python, run inside this namespace.
    pub fn python(&self) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.netns)).arg("--").arg(venv().join("bin/python"));
        cmd
    }
}

impl Drop for BrowserNet {
    fn drop(&mut self) {
        let _ = super::docker(&["rm", "-f", &self.container]);
    }
}
