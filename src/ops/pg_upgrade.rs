//! Postgres major upgrades, done by `switch` before it activates a generation whose
//! Postgres image is of another major version than the current one's.
//!
//! Each major version keeps its own cluster (`eval::postgres::cluster_dir`), so an
//! upgrade creates the new cluster next to the old one and never touches the old:
//! rolling back to the old generation starts it as it was. The data moves by dump
//! and restore (one dump per database, which is the upgrade's backup too, loaded
//! by the new server's `pg_restore`): `pg_upgrade` would need both versions'
//! binaries in one image, and the two come from different Debian releases.
//! Writers (Synapse, MAS) are stopped first so the copy is the last state; every
//! table of every database is compared (rows and a checksum) before the dumps
//! count as verified and the new cluster is moved into place. Any failure removes
//! the half-made cluster and the dumps and starts the writers again: the host is
//! as it was.
//!
//! The copy is a transient unit's job (`jobs::pg_copy`): a switch killed or cut off
//! mid-copy leaves it running, and the next switch waits for it and takes its
//! result instead of copying again.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::context::ConfiguredContext;
use crate::docker::Engine;
use crate::generation::generations::Generation;
use crate::generation::layout::Layout;
use crate::generation::manifest::Manifest;
use crate::jobs::pg_copy::{self, Copied, PgCopy, upgrade_label};
use crate::jobs::{JobContext, backup};
use crate::service::Service;
use crate::spec::{ServiceSpec, read_spec};
use crate::systemd::{ActiveState, Systemd};
use crate::ui;

const POSTGRES: Service = Service::Postgres;

/// A cluster as the decision sees it: where a generation keeps it, and which major
/// version is on disk there (`PG_VERSION`), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub dir: PathBuf,
    pub on_disk: Option<u32>,
}

/// What a switch does about Postgres's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Same cluster (or nothing to carry over): nothing to do.
    Keep,
    /// Copy the current cluster into a new one of the target's major version. A
    /// cluster already at the target's place (left by an earlier upgrade that was
    /// rolled back, so older than the current data) is first moved to `set_aside`.
    Upgrade { from: u32, to: u32, set_aside: Option<PathBuf> },
    /// Back to a major version whose cluster is kept: it is used as it was.
    Reuse { from: u32, to: u32 },
    /// The target's cluster is a finished, still current copy of the current one
    /// (an earlier switch's upgrade job made it): it is used, nothing is copied.
    Adopt { from: u32, to: u32 },
    /// Refused; the reason.
    Refuse(String),
}

/// Decides from the current generation's cluster (none before the first switch),
/// the target's, the target image's major version and whether a finished copy of
/// the one into the other still holds (see [`copy_holds`]). Pure.
pub fn decide(current: Option<&Cluster>, target: &Cluster, to: u32, copied: bool, stamp: &str) -> Decision {
    if let Some(found) = target.on_disk
        && found != to
    {
        return Decision::Refuse(format!(
            "{} holds a Postgres {found} cluster, not the {to} the image runs; move it away first",
            target.dir.display()
        ));
    }
    let Some(cur) = current else { return Decision::Keep };
    let Some(from) = cur.on_disk else { return Decision::Keep };
    if cur.dir == target.dir || from == to {
        return Decision::Keep;
    }
    if to < from {
        return match target.on_disk {
            Some(_) => Decision::Reuse { from, to },
            None => Decision::Refuse(format!(
                "Postgres {from} → {to} is a downgrade and no Postgres {to} cluster is kept at {}; \
masctl only upgrades (restore a backup into a {to} generation instead)",
                target.dir.display()
            )),
        };
    }
    if copied && target.on_disk == Some(to) {
        return Decision::Adopt { from, to };
    }
    let set_aside = target.on_disk.map(|_| PathBuf::from(format!("{}.replaced-{stamp}", target.dir.display())));
    Decision::Upgrade { from, to, set_aside }
}

/// The major version of the cluster in `dir`, from its `PG_VERSION`.
pub fn on_disk(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("PG_VERSION")).ok()?.trim().parse().ok()
}

/// The cluster directory a generation's Postgres runs on (its bind for the data).
pub fn spec_cluster(spec: &ServiceSpec) -> Option<PathBuf> {
    spec.binds.iter().find(|b| b.inside == "/var/lib/postgresql/data" && !b.read_only).map(|b| b.host.clone())
}

fn cluster_of(manifest: &Manifest) -> Result<Option<Cluster>> {
    let Some(path) = manifest.services.get(&POSTGRES) else { return Ok(None) };
    Ok(spec_cluster(&read_spec(path)?).map(|dir| Cluster { on_disk: on_disk(&dir), dir }))
}

/// Whether a finished copy is still the current cluster's data in the target's:
/// the same two clusters and versions, and no writer started since the copy
/// stopped them (`writers_started_usec`: when each last became active). `Err`
/// says why not. Pure.
pub fn copy_holds(
    copied: &Copied,
    current: &Cluster,
    target: &Cluster,
    to: u32,
    writers_started_usec: &[u64],
) -> std::result::Result<(), String> {
    if copied.from_cluster != current.dir || copied.to_cluster != target.dir {
        return Err(format!(
            "it copied {} to {}, this switch goes from {} to {}",
            copied.from_cluster.display(),
            copied.to_cluster.display(),
            current.dir.display(),
            target.dir.display()
        ));
    }
    if Some(copied.from) != current.on_disk || copied.to != to || target.on_disk != Some(to) {
        return Err("the clusters' versions are not the ones it copied".into());
    }
    if writers_started_usec.iter().any(|t| *t > copied.writers_stopped_usec) {
        return Err("Synapse or MAS ran after it, so the old cluster has newer data".into());
    }
    Ok(())
}

/// Called by `switch` once the target generation is built and before anything
/// changes: upgrades the data when the Postgres major version changes, refuses
/// (at `images.postgres`) what it cannot do. With `dry_run`, only says. Returns the
/// upgrade's verified backup files.
pub async fn before_switch(
    ctx: &ConfiguredContext,
    engine: &Engine,
    current: Option<&Generation>,
    target: &Manifest,
    dry_run: bool,
) -> Result<Option<Vec<PathBuf>>> {
    let c = ctx.config();
    let Some(to_cluster) = cluster_of(target)? else { return Ok(None) };
    let systemd = Systemd::connect().await?;
    if !dry_run {
        settle_earlier_copy(&systemd, &target.instance).await?;
    }
    let to = super::build::postgres_major(c, engine, &target.images[&POSTGRES]).await?;
    let from_manifest = current.map(|g| g.manifest()).transpose()?;
    let from_cluster = match &from_manifest {
        Some(m) => cluster_of(m)?,
        None => None,
    };
    let copied = match (&from_manifest, &from_cluster) {
        (Some(m), Some(from)) => usable_copy(&ctx.layout, &systemd, m, from, &to_cluster, to).await?,
        _ => None,
    };
    let stamp = crate::timestamp::compact(std::time::SystemTime::now());
    match decide(from_cluster.as_ref(), &to_cluster, to, copied.is_some(), &stamp) {
        Decision::Keep => Ok(None),
        Decision::Refuse(why) => Err(c.at(c.images.postgres.span(), format!("images.postgres: {why}"))),
        Decision::Reuse { from, to } => {
            ui::warn(format!(
                "Postgres {from} → {to}: going back to the kept Postgres {to} cluster {} as it was; \
what was written under Postgres {from} is not in it (it stays in {})",
                to_cluster.dir.display(),
                from_cluster.map(|c| c.dir.display().to_string()).unwrap_or_default()
            ));
            Ok(None)
        }
        Decision::Adopt { from, to } => {
            let copied = copied.expect("an adopted copy exists");
            ui::step(format!(
                "Postgres {from} → {to}: an earlier switch's upgrade finished the copy into {} ({}); \
taking its result instead of copying again",
                to_cluster.dir.display(),
                copied.summary
            ));
            if dry_run {
                return Ok(None);
            }
            let _ = std::fs::remove_file(pg_copy::result_path(&ctx.layout));
            Ok(Some(copied.backups))
        }
        Decision::Upgrade { from, to, set_aside } => {
            let (Some(from_manifest), Some(from_cluster)) = (from_manifest, from_cluster) else {
                unreachable!("an upgrade has a current cluster")
            };
            ui::step(format!(
                "Postgres {from} → {to}: the data moves to a new cluster {} ({} is kept for rollback)",
                to_cluster.dir.display(),
                from_cluster.dir.display()
            ));
            if dry_run {
                return Ok(None);
            }
            // The copy takes every database of the cluster: none may be in the middle of its backup.
            let number = current.map_or(0, |g| g.number);
            let jc = JobContext { layout: &ctx.layout, manifest: from_manifest.clone(), systemd, number };
            crate::jobs::replaced::settle(&jc).await?;
            let systemd = jc.systemd;
            let spec = PgCopy {
                root: ctx.layout.root.clone(),
                from_manifest,
                target: target.clone(),
                from_cluster: from_cluster.dir,
                to_cluster: to_cluster.dir,
                from,
                to,
                set_aside,
            };
            copy_as_unit(&ctx.layout, &systemd, spec).await.map(Some)
        }
    }
}

/// Runs the copy as its transient unit, following it; returns its backup files.
async fn copy_as_unit(layout: &Layout, systemd: &Systemd, spec: PgCopy) -> Result<Vec<PathBuf>> {
    let _ = std::fs::remove_file(pg_copy::result_path(layout));
    let unit = pg_copy::unit(&spec.target.instance);
    ui::step(format!(
        "the copy runs as {unit}: it goes on if this command is cut off, and the next `masctl switch` takes its result"
    ));
    let description = format!("masctl: Postgres {} → {} upgrade copy", spec.from, spec.to);
    let (code, _) =
        crate::jobs::run_as(layout, systemd, &unit, &description, crate::jobs::Job::PgCopy(Box::new(spec))).await?;
    if code != 0 {
        bail!("the Postgres upgrade failed (exit {code}); the current generation runs on as it was");
    }
    let copied =
        pg_copy::read_result(layout).ok_or_else(|| anyhow::anyhow!("the upgrade's copy ended without its result"))?;
    let _ = std::fs::remove_file(pg_copy::result_path(layout));
    Ok(copied.backups)
}

/// An upgrade copy an earlier switch started: still running, it is followed to
/// its end (a failure ends this switch too); finished, its unit is released.
async fn settle_earlier_copy(systemd: &Systemd, instance: &str) -> Result<()> {
    let unit = pg_copy::unit(instance);
    let state = systemd.unit_state(&unit).await?;
    match state.active_state {
        ActiveState::Activating => {
            ui::step(format!("a Postgres upgrade an earlier switch started is still running ({unit}); following it"));
            let code = crate::jobs::attach(systemd, &unit, &state.invocation_id).await?;
            if code != 0 {
                bail!(
                    "the Postgres upgrade {unit} failed (exit {code}; `journalctl -u {unit}`); \
the current generation runs on as it was"
                );
            }
        }
        ActiveState::Failed => {
            ui::warn(format!("an earlier Postgres upgrade failed (`journalctl -u {unit}`); it is tried again"));
            systemd.release_transient(&unit).await;
        }
        ActiveState::Active => systemd.release_transient(&unit).await,
        _ => {}
    }
    Ok(())
}

/// The finished copy left by an earlier switch, when it still holds; a stale one
/// is said and removed.
async fn usable_copy(
    layout: &Layout,
    systemd: &Systemd,
    from_manifest: &Manifest,
    from: &Cluster,
    target: &Cluster,
    to: u32,
) -> Result<Option<Copied>> {
    let Some(copied) = pg_copy::read_result(layout) else { return Ok(None) };
    let mut started = Vec::new();
    for u in pg_copy::writer_units(from_manifest) {
        started.push(systemd.active_entered_usec(&u).await?);
    }
    match copy_holds(&copied, from, target, to, &started) {
        Ok(()) => Ok(Some(copied)),
        Err(why) => {
            ui::step(format!("an earlier upgrade's copy is not used: {why}"));
            let _ = std::fs::remove_file(pg_copy::result_path(layout));
            Ok(None)
        }
    }
}

/// What gc does with a cluster directory under `data/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// A remaining generation runs on it, or it is not a cluster: not gc's.
    Live,
    /// No generation uses it, and these verified dumps (one backup set) hold its
    /// data as it was when it last ran.
    Remove { backups: Vec<String> },
    /// No generation uses it, but no dump is known to hold its last state.
    Keep(String),
}

/// Decides an unused cluster's fate. `started` is when its server last started
/// (`postmaster.opts` is written at each start), `backups` the verified backup file
/// names (`DB-STAMP-LABEL.dump`). A cluster set aside by an upgrade
/// (`….replaced-…`) never had a dump taken, so it is only ever kept. Pure.
pub fn fate(name: &str, major: Option<u32>, live: bool, started: &str, backups: &[String]) -> Fate {
    let Some(major) = major else { return Fate::Live };
    if live {
        return Fate::Live;
    }
    if name.contains(".replaced-") {
        return Fate::Keep("set aside by a later upgrade; no dump holds it".into());
    }
    let suffix = format!("-{}.dump", upgrade_label(major));
    let stamp_of = |b: &String| Some(b.strip_suffix(&suffix)?.rsplit_once('-')?.1.to_string());
    let newest = backups.iter().filter_map(stamp_of).filter(|s| s.as_str() > started).max();
    match newest {
        Some(stamp) => Fate::Remove {
            backups: backups.iter().filter(|b| stamp_of(b).as_deref() == Some(stamp.as_str())).cloned().collect(),
        },
        None => Fate::Keep(format!(
            "no verified Postgres {major} dump newer than its last start ({started}); \
switch to a generation that uses it and run `masctl backup` first"
        )),
    }
}

/// `masctl gc`, after old generations are gone: removes Postgres clusters no
/// remaining generation uses, each only when a verified dump holds its data; says
/// what it removed and what it kept and why. Returns the directories removed.
pub fn gc_clusters(layout: &Layout, remaining: &[Manifest]) -> Result<Vec<PathBuf>> {
    let mut live = std::collections::BTreeSet::new();
    for m in remaining {
        if let Some(c) = cluster_of(m)? {
            live.insert(c.dir.file_name().map(|n| n.to_os_string()));
        }
    }
    let backups: Vec<String> = backup::list(&layout.backups())?.into_iter().map(|(n, _)| n).collect();
    let mut removed = Vec::new();
    let Ok(rd) = std::fs::read_dir(layout.root.join("data")) else { return Ok(removed) };
    let mut dirs: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if !(name == "postgres" || name.starts_with("postgres-")) || name.ends_with(".partial") {
            continue;
        }
        let started = std::fs::metadata(dir.join("postmaster.opts"))
            .and_then(|m| m.modified())
            .map(crate::timestamp::compact)
            .unwrap_or_default();
        let is_live = live.contains(&Some(dir.file_name().unwrap_or_default().to_os_string()));
        match fate(&name, on_disk(&dir), is_live, &started, &backups) {
            Fate::Live => {}
            Fate::Keep(why) => {
                ui::step(format!("kept Postgres cluster {} (used by no generation): {why}", dir.display()))
            }
            Fate::Remove { backups } => {
                std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
                ui::step(format!(
                    "removed Postgres cluster {} (used by no generation); its data is in the verified dumps {} in {}",
                    dir.display(),
                    backups.join(", "),
                    layout.backups().display()
                ));
                removed.push(dir);
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cl(dir: &str, on_disk: Option<u32>) -> Cluster {
        Cluster { dir: PathBuf::from(dir), on_disk }
    }

    #[test]
    fn decide_table() {
        let (p15, p17) = ("/d/postgres", "/d/postgres-17");
        let up =
            |set_aside: Option<&str>| Decision::Upgrade { from: 15, to: 17, set_aside: set_aside.map(PathBuf::from) };
        let refused = |d: Decision, what: &str| matches!(d, Decision::Refuse(w) if w.contains(what));
        // (current, target, target image's major, a finished copy holds) → decision
        let cases: Vec<(Option<Cluster>, Cluster, u32, bool, Decision)> = vec![
            // First switch: a new cluster, nothing to carry.
            (None, cl(p17, None), 17, false, Decision::Keep),
            // Same cluster, same major.
            (Some(cl(p15, Some(15))), cl(p15, Some(15)), 15, false, Decision::Keep),
            // The current cluster never started: nothing to carry.
            (Some(cl(p15, None)), cl(p17, None), 17, false, Decision::Keep),
            (Some(cl(p15, Some(15))), cl(p17, None), 17, false, up(None)),
            // An earlier 17 cluster (upgraded, then rolled back from) is older than 15's data.
            (Some(cl(p15, Some(15))), cl(p17, Some(17)), 17, false, up(Some("/d/postgres-17.replaced-T"))),
            // ... unless it is the finished copy of an earlier switch's upgrade job.
            (Some(cl(p15, Some(15))), cl(p17, Some(17)), 17, true, Decision::Adopt { from: 15, to: 17 }),
            // A copy whose cluster is not there any more is no copy.
            (Some(cl(p15, Some(15))), cl(p17, None), 17, true, up(None)),
            (Some(cl(p17, Some(17))), cl(p15, Some(15)), 15, false, Decision::Reuse { from: 17, to: 15 }),
        ];
        for (cur, target, to, copied, want) in cases {
            assert_eq!(decide(cur.as_ref(), &target, to, copied, "T"), want, "{cur:?} → {target:?} {copied}");
        }
        assert!(refused(decide(Some(&cl(p17, Some(17))), &cl(p15, None), 15, false, "T"), "downgrade"));
        assert!(refused(decide(None, &cl(p17, Some(16)), 17, false, "T"), "holds a Postgres 16 cluster"));
    }

    #[test]
    fn copy_holds_table() {
        let copied = Copied {
            from_cluster: "/d/postgres".into(),
            to_cluster: "/d/postgres-17".into(),
            from: 15,
            to: 17,
            writers: vec![],
            writers_stopped_usec: 1_000,
            backups: vec![],
            summary: String::new(),
        };
        let (c15, c17) = (cl("/d/postgres", Some(15)), cl("/d/postgres-17", Some(17)));
        // (current, target, target major, when each writer last started) → holds, or why not
        type Case<'a> = (Cluster, Cluster, u32, Vec<u64>, Option<&'a str>);
        let cases: Vec<Case> = vec![
            (c15.clone(), c17.clone(), 17, vec![900, 0], None),
            (c15.clone(), c17.clone(), 17, vec![900, 1_001], Some("ran after it")),
            (c15.clone(), cl("/d/postgres-18", Some(18)), 18, vec![], Some("it copied")),
            (cl("/d/other", Some(15)), c17.clone(), 17, vec![], Some("it copied")),
            (c15.clone(), cl("/d/postgres-17", None), 17, vec![], Some("versions")),
            (cl("/d/postgres", Some(16)), c17.clone(), 17, vec![], Some("versions")),
        ];
        for (cur, target, to, started, want) in cases {
            let got = copy_holds(&copied, &cur, &target, to, &started);
            match want {
                None => assert_eq!(got, Ok(()), "{cur:?} {target:?} {started:?}"),
                Some(w) => assert!(got.as_ref().is_err_and(|e| e.contains(w)), "{cur:?} {target:?}: {got:?}"),
            }
        }
    }

    #[test]
    fn gc_fate_table() {
        let b = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let dumps = b(&["synapse-20260101T000000Z-pg15-upgrade.dump", "mas-20260101T000000Z-pg15-upgrade.dump"]);
        let started = "20251231T000000Z";
        let cases = [
            // (name, on-disk major, used by a generation, started, backups) → fate
            ("postgres", Some(15), true, started, dumps.clone(), "live"),
            ("postgres", None, false, started, dumps.clone(), "live"),
            (
                "postgres",
                Some(15),
                false,
                started,
                dumps.clone(),
                "remove synapse-20260101T000000Z-pg15-upgrade.dump mas-20260101T000000Z-pg15-upgrade.dump",
            ),
            // Started again (a rollback) after the dump: the dump is stale.
            ("postgres", Some(15), false, "20260102T000000Z", dumps.clone(), "keep"),
            // Same second: not provably after.
            ("postgres", Some(15), false, "20260101T000000Z", dumps.clone(), "keep"),
            // Dumps of another major, or manual backups, do not count.
            ("postgres-17", Some(17), false, started, dumps.clone(), "keep"),
            ("postgres", Some(15), false, started, b(&["synapse-20260101T000000Z-manual.dump"]), "keep"),
            ("postgres-17.replaced-20260101T000000Z", Some(17), false, started, dumps.clone(), "keep"),
        ];
        for (name, major, live, started, backups, want) in cases {
            let got = match fate(name, major, live, started, &backups) {
                Fate::Live => "live".to_string(),
                Fate::Keep(_) => "keep".to_string(),
                Fate::Remove { backups } => format!("remove {}", backups.join(" ")),
            };
            assert_eq!(got, want, "{name} {major:?} {live} {started}");
        }
    }

    #[test]
    fn spec_cluster_reads_the_data_bind() {
        let spec: ServiceSpec = serde_json::from_value(serde_json::json!({
            "service": "postgres", "container": "x", "network": "n", "image": "i", "user": "1:1",
            "cmd": [], "env": [], "binds": ["/c:/etc/masctl:ro", "/r/data/postgres-17:/var/lib/postgresql/data"],
            "tmpfs": {}, "ports": [], "health": {"test": [], "interval_ms": 1, "timeout_ms": 1, "retries": 1,
            "start_period_ms": 1}, "after_healthy": [], "data_dirs": [], "stop_timeout_secs": 1
        }))
        .unwrap();
        assert_eq!(spec_cluster(&spec), Some(PathBuf::from("/r/data/postgres-17")));
    }
}
