//! Data across image changes. Synapse and MAS migrate their databases forward when a
//! new version starts, and an older version then refuses them (or worse, runs). So a
//! switch that changes the image of a stateful service takes a verified backup first
//! and records it with the generation it precedes (`switch-backups/<N>.json`); a
//! rollback across that switch can restore it, and the automatic rollback after a
//! failed health gate does when the old generation cannot serve the migrated schema.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use crate::generation::generations::Generation;
use crate::generation::layout::Layout;
use crate::generation::manifest::Manifest;
use crate::jobs::restore::{self, BackupSet, SynapseSchema};
use crate::jobs::{JobContext, backup, replaced};
use crate::service::{self, Database, Service};
use crate::{fsutil, ui};

/// Services whose image change may migrate a database.
const STATEFUL: [Service; 3] = [Service::Postgres, Service::Synapse, Service::Mas];

/// The stateful services whose image differs between two generations (a service
/// only one of them runs has no data of the other to migrate).
pub fn image_changes(from: &Manifest, to: &Manifest) -> Vec<Service> {
    STATEFUL
        .into_iter()
        .filter(|s| matches!((from.images.get(s), to.images.get(s)), (Some(a), Some(b)) if a != b))
        .collect()
}

/// What was backed up before a switch into `generation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreSwitch {
    /// The generation the switch went to.
    pub generation: u32,
    /// The generation that was current (whose data the backup holds).
    pub from: u32,
    /// The stateful services whose image changed.
    pub services: Vec<Service>,
    /// The backup set's id; None when the switch ran with `--no-backup`.
    pub set: Option<String>,
    /// The Synapse schema at the time of the backup.
    pub synapse_schema: Option<SynapseSchema>,
    /// MAS's applied migrations at the time of the backup.
    #[serde(default)]
    pub mas_migrations: Vec<i64>,
}

fn record_path(layout: &Layout, generation: u32) -> PathBuf {
    layout.switch_backups().join(format!("{generation}.json"))
}

/// The record of the last switch into `generation`, if one changed a stateful image.
pub fn record(layout: &Layout, generation: u32) -> Result<Option<PreSwitch>> {
    let p = record_path(layout, generation);
    match std::fs::read(&p) {
        Ok(b) => Ok(Some(serde_json::from_slice(&b).with_context(|| format!("parsing {}", p.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// Records `r` with the generation it precedes (replacing an earlier switch's).
pub fn save(layout: &Layout, r: &PreSwitch) -> Result<()> {
    std::fs::create_dir_all(layout.switch_backups())?;
    fsutil::write_atomic(&record_path(layout, r.generation), &serde_json::to_vec_pretty(r)?, 0o644)
}

/// Every record, by the generation it precedes (for `generations` and `backups`).
pub fn records(layout: &Layout) -> Vec<PreSwitch> {
    let mut out: Vec<PreSwitch> = std::fs::read_dir(layout.switch_backups())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .collect();
    out.sort_by_key(|r: &PreSwitch| r.generation);
    out
}

/// The set id of backup files (`synapse-<id>.dump`).
pub fn set_of(files: &[PathBuf]) -> Option<String> {
    let name = files.first()?.file_name()?.to_string_lossy().into_owned();
    restore::sets(&[name]).pop().map(|s| s.id)
}

fn names(services: &[Service]) -> String {
    services.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
}

/// Before a switch from `from` to `to`: when a stateful image changes, a verified
/// backup of every database; with `skip`, only a warning. The caller numbers the
/// record with the generation it precedes and [`save`]s it.
/// `taken`: a verified backup of this state already made (by a Postgres upgrade),
/// recorded instead of a second one.
pub async fn before_switch(
    layout: &Layout,
    from: &Generation,
    to: &Manifest,
    skip: bool,
    taken: Option<Vec<PathBuf>>,
) -> Result<Option<PreSwitch>> {
    let manifest = from.manifest()?;
    let services = image_changes(&manifest, to);
    if services.is_empty() {
        return Ok(None);
    }
    let mut rec = PreSwitch {
        generation: 0,
        from: from.number,
        services: services.clone(),
        set: None,
        synapse_schema: None,
        mas_migrations: vec![],
    };
    if skip && taken.is_none() {
        ui::warn(format!(
            "the image of {} changes and --no-backup skips the backup: if the new version migrates the \
database, neither `rollback --restore-data` nor the automatic rollback can bring the old schema back",
            names(&services)
        ));
        return Ok(Some(rec));
    }
    let ctx = JobContext { layout, manifest, systemd: crate::systemd::Systemd::connect().await?, number: from.number };
    ctx.require_active(&[Service::Postgres], std::time::Duration::from_secs(60))
        .await
        .context("no backup of the current state, no switch (--no-backup skips it)")?;
    let files = match taken {
        Some(files) => files,
        None => {
            ui::step(format!("the image of {} changes: backing up every database first", names(&services)));
            backup::first(&ctx, "pre-switch", "switch (--no-backup skips it)").await?
        }
    };
    rec.set = set_of(&files);
    if ctx.manifest.databases.contains(&Database::Synapse) {
        rec.synapse_schema = restore::synapse_schema(&ctx, Database::Synapse.name()).await?;
    }
    if ctx.manifest.databases.contains(&Database::Mas) {
        rec.mas_migrations = restore::mas_migrations(&ctx, Database::Mas.name()).await?;
    }
    Ok(Some(rec))
}

/// Why `old`'s images cannot serve the live databases (which `new` may have
/// migrated), or None when they can.
pub async fn unservable(ctx: &JobContext<'_>, rec: &PreSwitch, old: &Manifest) -> Result<Option<String>> {
    let mut why = Vec::new();
    if rec.services.contains(&Service::Synapse)
        && let (Some(image), Some(live)) =
            (old.images.get(&Service::Synapse), restore::synapse_schema(ctx, Database::Synapse.name()).await?)
    {
        let version = restore::image_synapse_schema(ctx.layout, image).await?;
        if let Err(e) = restore::synapse_servable(live, version) {
            why.push(format!("the synapse database: {e}"));
        }
    }
    if rec.services.contains(&Service::Mas) && old.databases.contains(&Database::Mas) {
        let live = restore::mas_migrations(ctx, Database::Mas.name()).await?;
        let new = restore::mas_unknown(&live, &rec.mas_migrations);
        if !new.is_empty() && rec.set.is_some() {
            why.push(format!(
                "the mas database has migrations the older MAS does not know ({})",
                new.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    Ok((!why.is_empty()).then(|| why.join("; ")))
}

/// The backup set a record names, as it is on disk now.
pub fn recorded_set(layout: &Layout, rec: &PreSwitch) -> Result<BackupSet> {
    let Some(id) = &rec.set else {
        bail!(
            "no backup was taken before generation {} (the switch ran with --no-backup); see `masctl backups` \
and `masctl restore`",
            rec.generation
        );
    };
    let names: Vec<String> = backup::list(&layout.backups())?.into_iter().map(|(n, _)| n).collect();
    let sets = restore::sets(&names);
    sets.into_iter().find(|s| &s.id == id).with_context(|| {
        format!(
            "backup set {id}, taken before generation {}, is no longer in {}",
            rec.generation,
            layout.backups().display()
        )
    })
}

/// What restoring a pre-switch backup did.
#[derive(Debug, Clone, Serialize)]
pub struct DataRestored {
    /// The set restored (taken before the switch).
    pub set: String,
    /// The backup of the state it replaced.
    pub backup_before: Option<String>,
    pub databases: Vec<Database>,
}

/// Restores the set `rec` names into the live databases, checked against `old`'s
/// Synapse image: loads the set into scratch databases, stops what uses them and
/// swaps them in; the replaced ones are kept and backed up by a unit of their own
/// (`jobs::replaced`). `ctx` is the generation whose Postgres runs now. Starting
/// `old` is the caller's.
pub async fn restore_before(ctx: &JobContext<'_>, rec: &PreSwitch, old: &Manifest) -> Result<DataRestored> {
    let set = recorded_set(ctx.layout, rec)?;
    ui::step(format!("restoring backup set {} (taken before generation {})", set.id, rec.generation));
    replaced::settle(ctx).await?;
    let done = restore::load_set(ctx, &set, old.images.get(&Service::Synapse).map(String::as_str)).await?;
    let dbs: Vec<Database> = done.iter().map(|d| d.database).collect();
    let (_, kept) = restore::swap_in(ctx, &dbs, "pre-restore").await?;
    let before = kept.back_up_later(ctx).await?;
    Ok(DataRestored { set: set.id, backup_before: set_of(&before), databases: dbs })
}

/// After generation `failed` (entered through the switch `rec`) failed its health
/// gate and before `prev` starts again: when `prev`'s images cannot serve what
/// `failed` migrated, restores the backup taken before the switch. Returns what it
/// did, for the error message; None when `prev` can run on the data as it is.
pub async fn before_automatic_rollback(
    layout: &Layout,
    rec: &PreSwitch,
    failed: &Generation,
    prev: &Generation,
) -> Result<Option<String>> {
    let ctx = JobContext {
        layout,
        manifest: failed.manifest()?,
        systemd: crate::systemd::Systemd::connect().await?,
        number: failed.number,
    };
    let old = prev.manifest()?;
    ctx.require_active(&[Service::Postgres], std::time::Duration::from_secs(60)).await?;
    let Some(why) = unservable(&ctx, rec, &old).await? else { return Ok(None) };
    ui::warn(format!("generation {} cannot run on the data generation {} migrated: {why}", prev.number, failed.number));
    let r = restore_before(&ctx, rec, &old).await?;
    let kept = r.backup_before.as_deref().map_or(String::new(), |b| format!("; the migrated state is in backup {b}"));
    let note = format!("restored backup {} of {} taken before the switch{kept}", r.set, service::names(&r.databases));
    ui::step(&note);
    Ok(Some(note))
}

/// The record a rollback from `current` to `target` crosses: the one of the switch
/// into `current` when it changed a stateful image.
pub fn crossing(layout: &Layout, current: &Generation, target: &Generation) -> Result<Option<PreSwitch>> {
    if image_changes(&current.manifest()?, &target.manifest()?).is_empty() {
        return Ok(None);
    }
    Ok(Some(record(layout, current.number)?.unwrap_or(PreSwitch {
        generation: current.number,
        from: target.number,
        services: image_changes(&target.manifest()?, &current.manifest()?),
        set: None,
        synapse_schema: None,
        mas_migrations: vec![],
    })))
}

/// A line for people: which backup precedes a generation.
pub fn describe(rec: &PreSwitch) -> String {
    match &rec.set {
        Some(set) => format!("backup {set} before the {} image change", names(&rec.services)),
        None => format!("no backup before the {} image change (--no-backup)", names(&rec.services)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(images: &[(Service, &str)]) -> Manifest {
        let mut m: Manifest = serde_json::from_value(serde_json::json!({
            "format": 1, "server_name": "x", "instance": "x", "config": {}, "images": {}, "services": {},
            "units": {}, "refs": [], "client_url": ""
        }))
        .unwrap();
        for (s, id) in images {
            m.images.insert(*s, id.to_string());
        }
        m
    }

    #[test]
    fn image_changes_table() {
        use Service::*;
        let a = manifest(&[(Postgres, "p1"), (Synapse, "s1"), (Proxy, "x1")]);
        for (to, want) in [
            (manifest(&[(Postgres, "p1"), (Synapse, "s1"), (Proxy, "x2")]), vec![]),
            (manifest(&[(Postgres, "p1"), (Synapse, "s2")]), vec![Synapse]),
            (manifest(&[(Postgres, "p2"), (Synapse, "s2"), (Mas, "m1")]), vec![Postgres, Synapse]),
        ] {
            assert_eq!(image_changes(&a, &to), want, "{to:?}");
        }
    }

    #[test]
    fn records_round_trip_and_describe() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::new(d.path());
        assert!(record(&layout, 2).unwrap().is_none());
        let r = PreSwitch {
            generation: 2,
            from: 1,
            services: vec![Service::Synapse],
            set: Some("20260804T100000Z-pre-switch".into()),
            synapse_schema: Some(SynapseSchema { version: 72, compat: Some(72) }),
            mas_migrations: vec![],
        };
        save(&layout, &r).unwrap();
        assert_eq!(record(&layout, 2).unwrap(), Some(r.clone()));
        assert_eq!(records(&layout), vec![r.clone()]);
        assert_eq!(describe(&r), "backup 20260804T100000Z-pre-switch before the synapse image change");
        let none = PreSwitch { set: None, ..r };
        assert!(describe(&none).contains("--no-backup"));
        assert!(recorded_set(&layout, &none).unwrap_err().to_string().contains("--no-backup"));
    }

    #[test]
    fn set_of_names_the_set() {
        let files = [PathBuf::from("/r/backups/synapse-20260804T100000Z-pre-switch.dump")];
        assert_eq!(set_of(&files).as_deref(), Some("20260804T100000Z-pre-switch"));
        assert_eq!(set_of(&[]), None);
    }
}
