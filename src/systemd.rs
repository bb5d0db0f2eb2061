//! The systemd edge: PID 1's Manager over the system bus (zbus), jobs tracked to
//! their `JobRemoved` result, unit properties read fresh.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::unit_name::UnitName;
use anyhow::{Context, Result};
use futures_util::StreamExt;
use zbus::proxy::CacheProperties;
use zbus::{Connection, OwnedObjectPath, proxy};

#[proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
pub trait Manager {
    fn subscribe(&self) -> zbus::Result<()>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn reload(&self) -> zbus::Result<()>;
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn start_transient_unit(
        &self,
        name: &str,
        mode: &str,
        properties: &[(&str, zbus::Variant<'_>)],
        aux: &[(&str, &[(&str, zbus::Variant<'_>)])],
    ) -> zbus::Result<OwnedObjectPath>;
    #[zbus(signal)]
    fn job_removed(&self, id: u32, job: OwnedObjectPath, unit: String, result: String) -> zbus::Result<()>;
}

#[proxy(interface = "org.freedesktop.systemd1.Unit", default_service = "org.freedesktop.systemd1")]
pub trait Unit {
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn load_state(&self) -> zbus::Result<String>;
    #[zbus(property, name = "InvocationID")]
    fn invocation_id(&self) -> zbus::Result<Vec<u8>>;
    #[zbus(property)]
    fn active_enter_timestamp(&self) -> zbus::Result<u64>;
}

#[proxy(interface = "org.freedesktop.systemd1.Service", default_service = "org.freedesktop.systemd1")]
pub trait Service {
    #[zbus(property)]
    fn exec_main_status(&self) -> zbus::Result<i32>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Start,
    Stop,
}

/// A unit's `ActiveState`, as systemd spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActiveState {
    Active,
    Reloading,
    Inactive,
    Failed,
    Activating,
    Deactivating,
    /// `maintenance`, `refreshing`, or whatever a later systemd adds.
    Other(String),
}

impl ActiveState {
    fn parse(s: &str) -> ActiveState {
        match s {
            "active" => ActiveState::Active,
            "reloading" => ActiveState::Reloading,
            "inactive" => ActiveState::Inactive,
            "failed" => ActiveState::Failed,
            "activating" => ActiveState::Activating,
            "deactivating" => ActiveState::Deactivating,
            other => ActiveState::Other(other.to_string()),
        }
    }

    /// Active, or on its way there.
    pub fn is_up(&self) -> bool {
        matches!(self, ActiveState::Active | ActiveState::Activating)
    }

    pub fn as_str(&self) -> &str {
        match self {
            ActiveState::Active => "active",
            ActiveState::Reloading => "reloading",
            ActiveState::Inactive => "inactive",
            ActiveState::Failed => "failed",
            ActiveState::Activating => "activating",
            ActiveState::Deactivating => "deactivating",
            ActiveState::Other(s) => s,
        }
    }
}

impl std::fmt::Display for ActiveState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A unit's `SubState`, as systemd spells it: the states masctl acts on (a
/// service's), and any other as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubState {
    Running,
    /// Crashed and waiting to be started again (`Restart=`): down, however active
    /// systemd still calls it.
    AutoRestart,
    Start,
    Exited,
    Dead,
    Failed,
    /// `stop-sigterm`, `reload`, a target's `active`, or whatever a later systemd adds.
    Other(String),
}

impl SubState {
    fn parse(s: &str) -> SubState {
        match s {
            "running" => SubState::Running,
            "auto-restart" => SubState::AutoRestart,
            "start" => SubState::Start,
            "exited" => SubState::Exited,
            "dead" => SubState::Dead,
            "failed" => SubState::Failed,
            other => SubState::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            SubState::Running => "running",
            SubState::AutoRestart => "auto-restart",
            SubState::Start => "start",
            SubState::Exited => "exited",
            SubState::Dead => "dead",
            SubState::Failed => "failed",
            SubState::Other(s) => s,
        }
    }
}

impl std::fmt::Display for SubState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a job ended, from its `JobRemoved` signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    Done,
    Canceled,
    Timeout,
    Failed,
    Dependency,
    Skipped,
    /// `invalid`, `unsupported`, `once`, …
    Other(String),
}

impl JobResult {
    fn parse(s: &str) -> JobResult {
        match s {
            "done" => JobResult::Done,
            "canceled" => JobResult::Canceled,
            "timeout" => JobResult::Timeout,
            "failed" => JobResult::Failed,
            "dependency" => JobResult::Dependency,
            "skipped" => JobResult::Skipped,
            other => JobResult::Other(other.to_string()),
        }
    }

    /// Whether the operation did not happen (stc-ng's rule).
    pub fn failed(&self) -> bool {
        matches!(self, JobResult::Timeout | JobResult::Failed | JobResult::Dependency)
    }
}

impl std::fmt::Display for JobResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JobResult::Done => "done",
            JobResult::Canceled => "canceled",
            JobResult::Timeout => "timeout",
            JobResult::Failed => "failed",
            JobResult::Dependency => "dependency",
            JobResult::Skipped => "skipped",
            JobResult::Other(s) => s,
        })
    }
}

/// A unit's state as `systemctl show` would report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    pub name: String,
    pub load_state: String,
    pub active_state: ActiveState,
    pub sub_state: SubState,
    pub invocation_id: String,
}

pub struct Systemd {
    conn: Connection,
    manager: ManagerProxy<'static>,
}

impl Systemd {
    pub async fn connect() -> Result<Systemd> {
        let conn = Connection::system().await.context(
            "connecting to the system bus (is systemd PID 1 here? `masctl try` runs the stack in a throwaway systemd host)",
        )?;
        let manager = ManagerProxy::new(&conn).await?;
        // Without Subscribe, PID 1 may not send JobRemoved to this client.
        manager.subscribe().await.context("subscribing to systemd signals")?;
        Ok(Systemd { conn, manager })
    }

    /// daemon-reload; the reply comes once systemd has re-read its units.
    pub async fn reload(&self) -> Result<()> {
        tokio::time::timeout(Duration::from_secs(180), self.manager.reload())
            .await
            .context("systemd did not finish reloading within 180 s")?
            .context("daemon-reload")?;
        Ok(())
    }

    pub async fn reset_failed(&self, unit: &str) {
        // Fails when the unit is not failed or not loaded: nothing to reset then.
        let _ = self.manager.reset_failed_unit(unit).await;
    }

    /// Submits every operation and waits for each job's `JobRemoved`, matched by job
    /// path. Returns (unit, op, result) in submission order.
    pub async fn run_jobs(&self, ops: &[(Op, UnitName)], limit: Duration) -> Result<Vec<(UnitName, Op, JobResult)>> {
        // The stream exists before the first job, so no result can slip past.
        let mut removed = self.manager.receive_job_removed().await?;
        let mut pending: BTreeMap<String, usize> = BTreeMap::new();
        let mut results: Vec<Option<JobResult>> = vec![None; ops.len()];
        for (i, (op, unit)) in ops.iter().enumerate() {
            let job = match op {
                Op::Start => self.manager.start_unit(unit, "replace").await,
                Op::Stop => self.manager.stop_unit(unit, "replace").await,
            };
            match job {
                Ok(path) => {
                    pending.insert(path.as_str().to_string(), i);
                }
                // A unit that is not loaded cannot be stopped: it is stopped.
                Err(e) if *op == Op::Stop && e.to_string().contains("not loaded") => results[i] = Some(JobResult::Done),
                // Submit the rest anyway: one unit that cannot start must not keep the
                // others (and the target) from starting; the caller sees "failed".
                Err(e) => {
                    crate::ui::warn(format!("{op:?} {unit}: {e}"));
                    results[i] = Some(JobResult::Failed);
                }
            }
        }
        let deadline = tokio::time::Instant::now() + limit;
        while !pending.is_empty() {
            let sig = tokio::time::timeout_at(deadline, removed.next())
                .await
                .with_context(|| format!("systemd jobs still running after {limit:?}: {:?}", pending.keys()))?
                .context("the system bus closed")?;
            let args = sig.args()?;
            if let Some(i) = pending.remove(args.job.as_str()) {
                results[i] = Some(JobResult::parse(&args.result));
            }
        }
        Ok(ops.iter().zip(results).map(|((op, unit), r)| (unit.clone(), *op, r.unwrap_or(JobResult::Done))).collect())
    }

    /// Starts a transient oneshot service running `argv` and waits for it to end.
    /// It runs under PID 1, so it finishes even if this process goes away.
    /// Returns the exit status of its main process.
    pub async fn run_transient(&self, unit: &str, description: &str, argv: &[String]) -> Result<i32> {
        let mut removed = self.manager.receive_job_removed().await?;
        let job = self.start_transient(unit, description, argv).await?;
        let result = loop {
            let sig = removed.next().await.context("the system bus closed")?;
            let args = sig.args()?;
            if args.job.as_str() == job.as_str() {
                break JobResult::parse(&args.result);
            }
        };
        self.collect_transient(unit, result == JobResult::Done).await
    }

    /// Starts a transient oneshot service running `argv` and returns at once (its
    /// start job's path): a job nobody waits for, which [`Systemd::wait_transient`]
    /// can follow later.
    pub async fn start_transient(&self, unit: &str, description: &str, argv: &[String]) -> Result<OwnedObjectPath> {
        use zbus::Variant;
        let exec: Vec<(String, Vec<String>, bool)> = vec![(argv[0].clone(), argv.to_vec(), false)];
        let props: Vec<(&str, Variant<'_>)> = vec![
            ("Description", Variant::from(description)),
            ("Type", Variant::from("oneshot")),
            // Keeps ExecMainStatus readable after the process ends.
            ("RemainAfterExit", Variant::from(true)),
            ("ExecStart", Variant::from(exec)),
            ("StandardOutput", Variant::from("journal")),
            ("StandardError", Variant::from("journal")),
            ("TimeoutStartUSec", Variant::from(u64::MAX)),
        ];
        self.manager
            .start_transient_unit(unit, "fail", &props, &[])
            .await
            .with_context(|| format!("starting transient unit {unit}"))
    }

    /// Waits for a transient unit started earlier (by another process) to end,
    /// then releases it; returns the exit status of its main process.
    pub async fn wait_transient(&self, unit: &str) -> Result<i32> {
        // Polled: its start job belongs to whoever started it, and a oneshot's
        // state says when it ends.
        loop {
            match self.unit_state(unit).await?.active_state {
                ActiveState::Activating | ActiveState::Deactivating => {
                    tokio::time::sleep(Duration::from_millis(500)).await
                }
                ActiveState::Active => return self.collect_transient(unit, true).await,
                _ => return self.collect_transient(unit, false).await,
            }
        }
    }

    /// An ended transient unit's exit status; the unit is released.
    async fn collect_transient(&self, unit: &str, succeeded: bool) -> Result<i32> {
        let path = self.manager.load_unit(unit).await?;
        let svc = ServiceProxy::builder(&self.conn).path(path).cache_properties(CacheProperties::No).build().await?;
        let status = svc.exec_main_status().await.unwrap_or(if succeeded { 0 } else { 1 });
        self.release_transient(unit).await;
        Ok(if succeeded { status } else { status.max(1) })
    }

    /// Stops an ended transient unit ("active (exited)" or failed) and forgets it,
    /// so its name can be used again.
    pub async fn release_transient(&self, unit: &str) {
        let _ = self.manager.stop_unit(unit, "replace").await;
        self.reset_failed(unit).await;
    }

    /// When a unit last became active (µs since the epoch; 0 if never).
    pub async fn active_entered_usec(&self, name: &str) -> Result<u64> {
        let path = self.manager.load_unit(name).await.with_context(|| format!("loading {name}"))?;
        let unit = UnitProxy::builder(&self.conn).path(path).cache_properties(CacheProperties::No).build().await?;
        Ok(unit.active_enter_timestamp().await?)
    }

    pub async fn unit_state(&self, name: &str) -> Result<UnitState> {
        let path = self.manager.load_unit(name).await.with_context(|| format!("loading {name}"))?;
        let unit = UnitProxy::builder(&self.conn).path(path).cache_properties(CacheProperties::No).build().await?;
        Ok(UnitState {
            name: name.to_string(),
            load_state: unit.load_state().await?,
            active_state: ActiveState::parse(&unit.active_state().await?),
            sub_state: SubState::parse(&unit.sub_state().await?),
            invocation_id: hex::encode(unit.invocation_id().await.unwrap_or_default()),
        })
    }
}

/// The last lines a unit wrote to the journal (best effort: `journalctl`).
pub fn last_log_lines(unit: &str, lines: usize) -> String {
    let out = std::process::Command::new("journalctl")
        .args(["-u", unit, "-n", &lines.to_string(), "--no-pager", "-o", "cat"])
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => format!("(journalctl unavailable: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_states_keep_systemds_spelling() {
        for s in ["running", "auto-restart", "start", "exited", "dead", "failed", "stop-sigterm"] {
            assert_eq!(SubState::parse(s).as_str(), s);
        }
        assert_eq!(SubState::parse("auto-restart"), SubState::AutoRestart);
        assert_eq!(SubState::parse("stop-sigterm"), SubState::Other("stop-sigterm".into()));
    }
}
