//! Activation: make a generation the running system, the way NixOS's
//! switch-to-configuration does it — stop what changed, flip `current`, reload,
//! start, wait for every job, check health — and go back when the new one fails.

pub mod handover;
pub mod plan;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use futures_util::future::try_join_all;

use crate::docker::Engine;
use crate::generation::generations::{Generation, Generations, replace_symlink};
use crate::generation::layout::Layout;
use crate::generation::manifest::Manifest;
use crate::spec::read_spec;
use crate::systemd::{ActiveState, Op, SubState, Systemd, last_log_lines};
use crate::unit_name::UnitName;
use crate::{fsutil, ui};

pub use plan::{Plan, plan};

/// Where unit files go: `/etc/systemd/system`, unless it is managed by someone else
/// (on NixOS it is a read-only link into the Nix store); then the runtime directory
/// `/run/systemd/system`, which systemd also searches (the NixOS module switches at
/// every boot, so the files come back). `MASCTL_UNIT_DIR` overrides both.
pub fn unit_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MASCTL_UNIT_DIR") {
        return PathBuf::from(d);
    }
    let etc = Path::new("/etc/systemd/system");
    match fs::symlink_metadata(etc) {
        Ok(m) if m.file_type().is_symlink() => PathBuf::from("/run/systemd/system"),
        _ => etc.to_path_buf(),
    }
}

pub struct Activator<'a> {
    pub layout: &'a Layout,
    pub systemd: &'a Systemd,
    pub engine: &'a Engine,
    pub unit_dir: PathBuf,
    /// How long the new generation may take to become healthy.
    pub timeout: Duration,
}

/// What went wrong when a generation did not come up.
#[derive(Debug)]
pub struct Failure {
    pub units: Vec<UnitName>,
    pub logs: String,
}

fn read_pending(layout: &Layout) -> BTreeSet<UnitName> {
    fs::read(layout.pending()).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

fn write_pending(layout: &Layout, units: &BTreeSet<UnitName>) -> Result<()> {
    fsutil::write_atomic(&layout.pending(), &serde_json::to_vec(units)?, 0o644)
}

/// Fault injection for tests: `MASCTL_FAILPOINT=<name>` kills this process with
/// SIGKILL at that point of a switch, as a power cut or OOM kill would.
fn failpoint(name: &str) {
    if std::env::var("MASCTL_FAILPOINT").as_deref() == Ok(name) {
        let _ = std::process::Command::new("sh").args(["-c", &format!("kill -9 {}", std::process::id())]).status();
    }
}

/// Fault injection for tests: `MASCTL_FAILPOINT=<name>` stops this switch at that
/// point: it creates `<root>/failpoint-held` and waits (at most `limit`) until the
/// file is gone, so a test can change the world at an exact moment.
async fn hold(name: &str, layout: &Layout, limit: Duration) {
    static HELD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    // Once per process: the rollback that follows runs through here again.
    if std::env::var("MASCTL_FAILPOINT").as_deref() != Ok(name) || HELD.swap(true, std::sync::atomic::Ordering::SeqCst)
    {
        return;
    }
    let flag = layout.root().join("failpoint-held");
    if fs::write(&flag, name).is_err() {
        return;
    }
    let deadline = tokio::time::Instant::now() + limit;
    while flag.exists() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Activator<'_> {
    pub fn plan_for(&self, target: &Manifest) -> Result<Plan> {
        let gens = Generations::new(self.layout);
        let old = match gens.current()? {
            Some(c) => c.manifest()?.units,
            None => Default::default(),
        };
        Ok(plan(&old, &target.units, &read_pending(self.layout)))
    }

    /// The drop-in that gives a service unit this activation's start timeout, so
    /// systemd and the health gate give up together (never one while the other waits
    /// for a migration); its path and text.
    fn timeout_drop_in(&self, unit: &str) -> (PathBuf, String) {
        let path = self.unit_dir.join(format!("{unit}.d")).join("masctl-timeout.conf");
        let text = format!(
            "# Written by masctl: the start timeout of the last switch (--timeout).\n[Service]\nTimeoutStartSec={}\n",
            self.timeout.as_secs()
        );
        (path, text)
    }

    /// Whether every unit file (and the boot link) already says what the generation's does.
    fn units_in_place(&self, target: &Generation, manifest: &Manifest) -> bool {
        let unit_ok = manifest.units.keys().all(|u| {
            let want = fs::read(target.target.join("units").join(u)).ok();
            let (drop_in, text) = self.timeout_drop_in(u);
            let drop_in_ok = !u.is_service() || fs::read(drop_in).ok() == Some(text.into_bytes());
            want.is_some() && fs::read(self.unit_dir.join(u)).ok() == want && drop_in_ok
        });
        let wants = self.unit_dir.join("multi-user.target.wants").join(UnitName::TARGET);
        unit_ok && fs::read_link(wants).ok() == Some(PathBuf::from("..").join(UnitName::TARGET))
    }

    /// Writes every unit of the generation into the unit directory as a real file,
    /// atomically (a link into the state root would dangle at boot while the state
    /// root's filesystem is not mounted yet; the units say `RequiresMountsFor=` it).
    fn write_units(&self, target: &Generation, manifest: &Manifest) -> Result<()> {
        fs::create_dir_all(&self.unit_dir)?;
        for unit in manifest.units.keys() {
            let text = fs::read(target.target.join("units").join(unit))?;
            let dest = self.unit_dir.join(unit);
            // A link from an older masctl is replaced by the file, like any change.
            let same =
                fs::symlink_metadata(&dest).is_ok_and(|m| m.is_file()) && fs::read(&dest).ok() == Some(text.clone());
            if !same {
                fsutil::write_atomic(&dest, &text, 0o644)?;
            }
            if unit.is_service() {
                let (path, text) = self.timeout_drop_in(unit);
                if fs::read(&path).ok() != Some(text.clone().into_bytes()) {
                    fs::create_dir_all(path.parent().expect("in a directory"))?;
                    fsutil::write_atomic(&path, text.as_bytes(), 0o644)?;
                }
            }
        }
        let wants = self.unit_dir.join("multi-user.target.wants");
        fs::create_dir_all(&wants)?;
        let link = wants.join(UnitName::TARGET);
        let target = PathBuf::from("..").join(UnitName::TARGET);
        if fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
            replace_symlink(&target, &link)?;
        }
        Ok(())
    }

    /// Makes `target` current and running. On failure returns the failing units; the
    /// caller decides whether to roll back.
    pub async fn activate(&self, target: &Generation) -> Result<std::result::Result<Plan, Failure>> {
        let gens = Generations::new(self.layout);
        let manifest = target.manifest()?;
        let plan = self.plan_for(&manifest)?;
        for line in plan.describe(false) {
            ui::step(ui::paint_line(&line));
        }
        let already_current = gens.current()?.is_some_and(|c| c.number == target.number);
        if plan.is_noop() && already_current && self.units_in_place(target, &manifest) {
            // Nothing to stop, flip or reload: only make sure everything runs.
            let starts = vec![(Op::Start, UnitName::target())];
            let services: Vec<UnitName> = manifest.units.keys().filter(|u| u.is_service()).cloned().collect();
            let failed = self.start_and_gate(&starts, &services, &manifest).await?;
            if !failed.is_empty() {
                let logs = failure_logs(&failed);
                return Ok(Err(Failure { units: failed, logs }));
            }
            return Ok(Ok(plan));
        }
        // Recorded before anything stops, cleared only when all is up: a switch
        // killed in between is finished by the next one.
        // Only units this generation has: a pending unit of another generation (a
        // killed switch to a config since changed) is not this switch's to start.
        let mut pending = read_pending(self.layout);
        pending.retain(|u| manifest.units.contains_key(u));
        pending.extend(plan.to_start());
        write_pending(self.layout, &pending)?;

        self.stop_units(&plan).await?;

        failpoint("after-stop");
        self.write_units(target, &manifest)?;
        gens.set_current(target)?;
        failpoint("after-flip");
        let services: Vec<UnitName> = manifest.units.keys().filter(|u| u.is_service()).cloned().collect();
        // From here on the new generation is current: any error is a failed
        // generation, so the caller can roll back, not an abort that leaves it half up.
        let sp = ui::spinner(&format!("starting generation {} and waiting for health", target.number));
        let failed = match self.start_after_flip(&plan, &pending, &services, &manifest).await {
            Ok(failed) => failed,
            Err(e) => {
                sp.finish_and_clear();
                return Ok(Err(Failure { units: services, logs: format!("masctl: {e:#}") }));
            }
        };
        sp.finish_and_clear();
        if !failed.is_empty() {
            let logs = failure_logs(&failed);
            return Ok(Err(Failure { units: failed, logs }));
        }
        let _ = fs::remove_file(self.layout.pending());
        Ok(Ok(plan))
    }

    /// Stops what the plan stops or restarts; a unit that fails to stop is only a warning.
    async fn stop_units(&self, plan: &Plan) -> Result<()> {
        let stops: Vec<(Op, UnitName)> = plan.stop.iter().chain(&plan.restart).map(|u| (Op::Stop, u.clone())).collect();
        if !stops.is_empty() {
            let sp = ui::spinner(&format!("stopping {}", stops.len()));
            let res = self.systemd.run_jobs(&stops, Duration::from_secs(300)).await?;
            sp.finish_and_clear();
            for (unit, _, result) in res {
                if result.failed() {
                    ui::warn(format!("stopping {unit}: {result}"));
                }
            }
        }
        Ok(())
    }

    async fn start_after_flip(
        &self,
        plan: &Plan,
        pending: &BTreeSet<UnitName>,
        services: &[UnitName],
        manifest: &Manifest,
    ) -> Result<Vec<UnitName>> {
        for unit in &plan.stop {
            let _ = fs::remove_file(self.unit_dir.join(unit));
            let _ = fs::remove_dir_all(self.unit_dir.join(format!("{unit}.d")));
        }
        self.systemd.reload().await?;
        failpoint("after-reload");
        let mut starts: Vec<(Op, UnitName)> = pending.iter().map(|u| (Op::Start, u.clone())).collect();
        starts.push((Op::Start, UnitName::target()));
        for (_, unit) in &starts {
            self.systemd.reset_failed(unit).await;
        }
        self.start_and_gate(&starts, services, manifest).await
    }

    /// Starts the units and waits until each is active with a healthy container, or
    /// has failed (including "restarting after a crash"), or the timeout passes.
    async fn start_and_gate(
        &self,
        starts: &[(Op, UnitName)],
        services: &[UnitName],
        manifest: &Manifest,
    ) -> Result<Vec<UnitName>> {
        let mut failed: BTreeSet<UnitName> = BTreeSet::new();
        // systemd's own start timeout (the drop-in) ends a start job first; the
        // margin only covers its stop.
        let jobs = self.systemd.run_jobs(starts, self.timeout + Duration::from_secs(15));
        tokio::pin!(jobs);
        // Poll unit states while the jobs run: a crash-looping service never ends its
        // start job by itself.
        let results = loop {
            tokio::select! {
                r = &mut jobs => break r,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    for u in services {
                        let s = self.systemd.unit_state(u).await?;
                        if s.active_state == ActiveState::Failed || s.sub_state == SubState::AutoRestart {
                            failed.insert(u.clone());
                        }
                    }
                    if !failed.is_empty() {
                        return Ok(failed.into_iter().collect());
                    }
                }
            }
        };
        match results {
            Ok(results) => {
                for (unit, _, result) in results {
                    if result.failed() {
                        failed.insert(unit);
                    }
                }
            }
            Err(e) => {
                ui::warn(format!("{e:#}"));
                failed.extend(services.iter().cloned());
            }
        }
        // Asked all at once: with Synapse's workers a stack has many units, and the
        // no-op switch is mostly these round trips.
        let states = try_join_all(services.iter().map(|u| self.systemd.unit_state(u))).await?;
        for (u, s) in services.iter().zip(states) {
            if s.active_state != ActiveState::Active {
                failed.insert(u.clone());
            }
        }
        hold("hold-before-gate", self.layout, self.timeout).await;
        failed.extend(self.health_gate(manifest).await?);
        Ok(failed.into_iter().collect())
    }

    /// The health gate: the units whose container does not run the generation's
    /// image or is not healthy.
    async fn health_gate(&self, manifest: &Manifest) -> Result<Vec<UnitName>> {
        let checks = try_join_all(manifest.units().into_iter().map(|(unit, spec_path)| async move {
            let spec = read_spec(spec_path)?;
            let st = crate::supervision::health::service_state(self.engine, &spec).await?;
            anyhow::Ok((unit.unit_name(), spec, st))
        }))
        .await?;
        let mut failed = Vec::new();
        for (unit, spec, st) in checks {
            match st {
                Some(st) if st.serves(&spec) => {}
                other => {
                    ui::detail(format!("{}: container is {other:?}", spec.container));
                    failed.push(unit);
                }
            }
        }
        Ok(failed)
    }
}

fn failure_logs(units: &[UnitName]) -> String {
    units
        .iter()
        .map(|u| format!("--- last log lines of {u} ---\n{}", last_log_lines(u, 15)))
        .collect::<Vec<_>>()
        .join("\n")
}
