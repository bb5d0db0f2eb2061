//! One-off jobs (syn2mas, register-user, doctor, backups, mas-cli) as transient
//! systemd units. Each runs `masctl job SPEC` under PID 1 — it finishes even if the
//! terminal goes away, lands in the journal and reports a real exit status — while
//! the caller follows its journal and returns that status.

pub mod backup;
mod context;
pub mod doctor;
pub mod import;
pub mod mas_cli;
pub mod offsite;
pub mod pg_copy;
pub mod register_user;
pub mod replaced;
pub mod restore;
pub mod syn2mas;
mod syn2mas_providers;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::docker::{Engine, OneShot};
use crate::generation::layout::Layout;
use crate::systemd::{Op, Systemd};
use crate::unit_name::UnitName;

pub use context::JobContext;

/// The line `masctl job` prints last; the follower stops reading there.
pub const END_MARKER: &str = "masctl-job-finished";

static OUTPUT_TO_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Jobs' output goes to stderr from now on, and progress comes as JSON events
/// there: for commands whose stdout is JSON.
pub fn output_to_stderr() {
    crate::progress::json_events();
    OUTPUT_TO_STDERR.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// What `masctl job` runs: one container, to its end, with what must happen around
/// it done here too, so it happens even if the caller is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub kind: String,
    pub container: OneShot,
    /// Units stopped (and waited for) before the container runs.
    #[serde(default)]
    pub stop_before: Vec<UnitName>,
    /// Units started again when the job fails.
    #[serde(default)]
    pub start_on_failure: Vec<UnitName>,
    /// (from, to) renamed when the job succeeds.
    #[serde(default)]
    pub rename_on_success: Vec<(String, String)>,
    /// Files removed when the job fails.
    #[serde(default)]
    pub remove_on_failure: Vec<String>,
    /// Directories removed when the container has ended, whatever its outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_dirs_after: Vec<String>,
    /// Networks the container joins besides its own (an external Postgres's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_networks: Vec<String>,
    /// Capabilities the container keeps (every other is dropped): a backup reads
    /// every service's files, a restore writes them with their owners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
}

/// What a transient unit's `masctl job FILE` runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "kebab-case")]
pub enum Job {
    Container(Box<JobSpec>),
    PgCopy(Box<pg_copy::PgCopy>),
    Replaced(Box<replaced::Replaced>),
}

impl Job {
    fn kind(&self) -> &str {
        match self {
            Job::Container(spec) => &spec.kind,
            Job::PgCopy(_) => "pg-upgrade",
            Job::Replaced(_) => "replaced-backup",
        }
    }

    /// masctl's own steps, not a program's output: they go where masctl's
    /// progress goes (stderr), whatever the command prints on stdout.
    fn reports_progress(&self) -> bool {
        matches!(self, Job::PgCopy(_) | Job::Replaced(_))
    }
}

impl JobSpec {
    pub fn new(kind: &str, container: OneShot) -> JobSpec {
        JobSpec {
            kind: kind.to_string(),
            container,
            stop_before: vec![],
            start_on_failure: vec![],
            rename_on_success: vec![],
            remove_on_failure: vec![],
            remove_dirs_after: vec![],
            extra_networks: vec![],
            cap_add: vec![],
        }
    }
}

fn jobs_dir(layout: &Layout) -> PathBuf {
    layout.root().join("jobs")
}

async fn units(op: Op, units: &[UnitName]) -> Result<bool> {
    if units.is_empty() {
        return Ok(true);
    }
    let systemd = Systemd::connect().await?;
    let ops: Vec<(Op, UnitName)> = units.iter().map(|u| (op, u.clone())).collect();
    let res = systemd.run_jobs(&ops, std::time::Duration::from_secs(300)).await?;
    Ok(res.iter().all(|(_, _, r)| !r.failed()))
}

async fn run_container(spec: &mut JobSpec) -> Result<i64> {
    if !units(Op::Stop, &spec.stop_before).await? {
        anyhow::bail!("could not stop {}", spec.stop_before.join(", "));
    }
    Engine::connect().await?.run_once_joining(&spec.container, &spec.kind, &spec.extra_networks, &spec.cap_add).await
}

/// `masctl job SPEC`: the transient unit's main process.
pub async fn run_spec(path: &str) -> Result<i32> {
    let job: Job = serde_json::from_slice(&std::fs::read(path).with_context(|| format!("reading {path}"))?)?;
    let code = match job {
        Job::Container(mut spec) => run_container_job(&mut spec).await,
        Job::PgCopy(spec) => exit_code(pg_copy::run(&spec).await),
        Job::Replaced(spec) => exit_code(replaced::run(&spec).await),
    };
    // The caller may be gone: the job removes its own file.
    let _ = std::fs::remove_file(path);
    // stderr carries the container's output; the marker goes last on the same stream.
    eprintln!("{END_MARKER} status={code}");
    let _ = std::io::stderr().flush();
    Ok(code)
}

fn exit_code(done: Result<()>) -> i32 {
    match done {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("masctl: {e:#}");
            1
        }
    }
}

async fn run_container_job(spec: &mut JobSpec) -> i32 {
    let code = match run_container(spec).await {
        Ok(c) => c.clamp(0, 255) as i32,
        Err(e) => {
            eprintln!("masctl: {e:#}");
            1
        }
    };
    for d in &spec.remove_dirs_after {
        if let Err(e) = std::fs::remove_dir_all(d)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("masctl: removing {d}: {e}");
        }
    }
    if code == 0 {
        for (from, to) in &spec.rename_on_success {
            if let Err(e) = std::fs::rename(from, to) {
                eprintln!("masctl: renaming {from}: {e}");
            }
        }
    } else {
        for f in &spec.remove_on_failure {
            let _ = std::fs::remove_file(f);
        }
        match units(Op::Start, &spec.start_on_failure).await {
            Ok(true) => {
                if !spec.start_on_failure.is_empty() {
                    eprintln!("masctl: started {} again", spec.start_on_failure.join(", "));
                }
            }
            Ok(false) | Err(_) => eprintln!("masctl: could NOT start {} again", spec.start_on_failure.join(", ")),
        }
    }
    code
}

/// Runs a job as a transient unit, printing its output while attached; returns its
/// exit status and everything it printed.
pub async fn run(layout: &Layout, systemd: &Systemd, description: &str, spec: JobSpec) -> Result<(i32, String)> {
    let id = hex::encode(crate::secrets::random_bytes::<4>()?);
    let unit = UnitName::transient(&spec.kind, &id);
    run_as(layout, systemd, &unit, description, Job::Container(Box::new(spec))).await
}

/// [`run`] under a given unit name: a job a later command must find by name.
pub async fn run_as(
    layout: &Layout,
    systemd: &Systemd,
    unit: &UnitName,
    description: &str,
    job: Job,
) -> Result<(i32, String)> {
    let (spec_path, argv) = write_job(layout, &job)?;
    // Follow the unit's journal from before it starts, until the end marker.
    let to_stderr = job.reports_progress() || OUTPUT_TO_STDERR.load(std::sync::atomic::Ordering::Relaxed);
    let follower = Follower::start(&["-u", unit.as_str()], to_stderr)?;
    let status = systemd.run_transient(unit, description, &argv).await;
    let captured = follower.finish().await;
    let _ = std::fs::remove_file(&spec_path);
    Ok((status?, captured))
}

/// Starts a job as the transient unit `unit` and returns at once: work that goes
/// on after the command (its output is in the journal; the job removes its file).
pub async fn start_as(layout: &Layout, systemd: &Systemd, unit: &UnitName, description: &str, job: Job) -> Result<()> {
    let (spec_path, argv) = write_job(layout, &job)?;
    if let Err(e) = systemd.start_transient(unit, description, &argv).await {
        let _ = std::fs::remove_file(&spec_path);
        return Err(e);
    }
    Ok(())
}

/// The job's file (0600: it may name secrets' paths) and the unit's command line.
fn write_job(layout: &Layout, job: &Job) -> Result<(PathBuf, Vec<String>)> {
    let dir = jobs_dir(layout);
    std::fs::create_dir_all(&dir)?;
    let id = hex::encode(crate::secrets::random_bytes::<4>()?);
    let spec_path = dir.join(format!("{}-{id}.json", job.kind()));
    crate::fsutil::write_atomic(&spec_path, &serde_json::to_vec_pretty(job)?, 0o600)?;
    let exe = std::env::current_exe()?.display().to_string();
    let argv =
        vec![exe, "--root".into(), layout.root().display().to_string(), "job".into(), spec_path.display().to_string()];
    Ok((spec_path, argv))
}

/// Follows a transient unit an earlier command started, printing its output (to
/// stderr) from its start, until it ends; returns its exit status.
pub async fn attach(systemd: &Systemd, unit: &UnitName, invocation_id: &str) -> Result<i32> {
    let follower = Follower::start(&[&format!("_SYSTEMD_INVOCATION_ID={invocation_id}")], true)?;
    let status = systemd.wait_transient(unit).await;
    follower.finish().await;
    status
}

/// A failed job's error: what failed, its exit status, and the line of its output
/// that says why (the last one naming an error, else its last line), so the reason
/// reaches a caller who reads only stderr (a timer's journal, a `--json` run).
pub fn failed(what: &str, code: i32, captured: &str) -> anyhow::Error {
    match reason(captured) {
        Some(why) => anyhow::anyhow!("{what} failed (exit {code}): {why}"),
        None => anyhow::anyhow!("{what} failed (exit {code}); see its output above"),
    }
}

fn reason(captured: &str) -> Option<&str> {
    let lines: Vec<&str> = captured.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let names_error = |l: &&&str| ["error", "fatal", "failed"].iter().any(|w| l.to_ascii_lowercase().contains(w));
    lines.iter().rev().find(names_error).or(lines.last()).copied()
}

/// `journalctl -f` of a unit's output, printed as it comes (unless quiet) and
/// captured, up to the job's end marker.
struct Follower {
    child: std::process::Child,
    reader: std::thread::JoinHandle<String>,
}

impl Follower {
    fn start(matches: &[&str], to_stderr: bool) -> Result<Follower> {
        let mut child = Command::new("journalctl")
            .args(["-f", "-n", "all", "-o", "cat", "--no-pager"])
            .args(matches)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("running journalctl")?;
        let stdout = child.stdout.take().context("journalctl stdout")?;
        let quiet = crate::ui::is_quiet();
        let reader = std::thread::spawn(move || {
            let mut captured = String::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with(END_MARKER) {
                    break;
                }
                if !quiet {
                    if to_stderr {
                        eprintln!("{line}");
                    } else {
                        println!("{line}");
                    }
                }
                captured.push_str(&line);
                captured.push('\n');
            }
            captured
        });
        Ok(Follower { child, reader })
    }

    /// Once the unit has ended: the journal may lag it a little, so this waits
    /// (bounded) for the marker, then stops following.
    async fn finish(mut self) -> String {
        let reader = self.reader;
        let captured = tokio::task::spawn_blocking(move || {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(reader.join().unwrap_or_default());
            });
            rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap_or_default()
        })
        .await
        .unwrap_or_default();
        let _ = self.child.kill();
        let _ = self.child.wait();
        captured
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reason_table() {
        for (captured, want) in [
            ("", None),
            ("\n  \n", None),
            ("dumped x\n", Some("dumped x")),
            (
                "pg_dump: error: query failed: ERROR:  relation with OID 1 does not exist\n\
pg_dump: detail: Query was: LOCK TABLE public.x\n",
                Some("pg_dump: error: query failed: ERROR:  relation with OID 1 does not exist"),
            ),
            ("Fatal: unable to open config file\nexit\n", Some("Fatal: unable to open config file")),
        ] {
            assert_eq!(reason(captured), want, "{captured:?}");
        }
        let e = failed("the backup of synapse", 1, "psql: error: connection refused\n").to_string();
        assert_eq!(e, "the backup of synapse failed (exit 1): psql: error: connection refused");
        let e = failed("loading mas", 2, "").to_string();
        assert_eq!(e, "loading mas failed (exit 2); see its output above");
    }
}
