//! One-off jobs (syn2mas, register-user, doctor, backups, mas-cli) as transient
//! systemd units. Each runs `masctl job SPEC` under PID 1 — it finishes even if the
//! terminal goes away, lands in the journal and reports a real exit status — while
//! the caller follows its journal and returns that status.

pub mod backup;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::docker::{Engine, OneShot};
use crate::layout::Layout;
use crate::systemd::Systemd;

/// The line `masctl job` prints last; the follower stops reading there.
pub const END_MARKER: &str = "masctl-job-finished";

/// What `masctl job` runs: one container, to its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub kind: String,
    pub container: OneShot,
}

fn jobs_dir(layout: &Layout) -> PathBuf {
    layout.root().join("jobs")
}

/// `masctl job SPEC`: the transient unit's main process.
pub async fn run_spec(path: &str) -> Result<i32> {
    let spec: JobSpec = serde_json::from_slice(&std::fs::read(path).with_context(|| format!("reading {path}"))?)?;
    let engine = Engine::connect().await?;
    let code = engine.run_once(&spec.container, &spec.kind).await;
    let code = match code {
        Ok(c) => c.clamp(0, 255) as i32,
        Err(e) => {
            eprintln!("masctl: {e:#}");
            1
        }
    };
    // stderr carries the container's output; the marker goes last on the same stream.
    eprintln!("{END_MARKER} status={code}");
    let _ = std::io::stderr().flush();
    Ok(code)
}

/// Runs a job as a transient unit, printing its output while attached; returns its
/// exit status and everything it printed.
pub async fn run(
    layout: &Layout,
    systemd: &Systemd,
    kind: &str,
    description: &str,
    job: OneShot,
) -> Result<(i32, String)> {
    let dir = jobs_dir(layout);
    std::fs::create_dir_all(&dir)?;
    let id = hex::encode(crate::secrets::random_bytes::<4>()?);
    let unit = format!("masctl-job-{kind}-{id}.service");
    let spec_path = dir.join(format!("{kind}-{id}.json"));
    let spec = JobSpec { kind: kind.to_string(), container: job };
    crate::fsutil::write_atomic(&spec_path, &serde_json::to_vec_pretty(&spec)?, 0o600)?;

    // Follow the unit's journal from before it starts, until the end marker.
    let mut follower = Command::new("journalctl")
        .args(["-f", "-n", "all", "-o", "cat", "--no-pager", "-u", &unit])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("running journalctl")?;
    let stdout = follower.stdout.take().context("journalctl stdout")?;
    let quiet = crate::ui::is_quiet();
    let reader = std::thread::spawn(move || {
        let mut captured = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with(END_MARKER) {
                break;
            }
            if !quiet {
                println!("{line}");
            }
            captured.push_str(&line);
            captured.push('\n');
        }
        captured
    });

    let exe = std::env::current_exe()?.display().to_string();
    let argv =
        vec![exe, "--root".into(), layout.root().display().to_string(), "job".into(), spec_path.display().to_string()];
    let status = systemd.run_transient(&unit, description, &argv).await;
    // The journal may lag the unit's end a little: wait for the marker (bounded).
    let captured = tokio::task::spawn_blocking(move || {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(reader.join().unwrap_or_default());
        });
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap_or_default()
    })
    .await
    .unwrap_or_default();
    let _ = follower.kill();
    let _ = follower.wait();
    let _ = std::fs::remove_file(&spec_path);
    Ok((status?, captured))
}
