//! `masctl restore [SET]`: a verified backup set back into the databases. A backup
//! of the current state is taken while each dump is loaded into a scratch database
//! (a transient unit) and checked against what the running images can serve, all
//! while the services still run; only once both have succeeded are the services
//! that use the databases stopped, the scratch databases swapped in by rename, and
//! the current generation started and health-gated. `masctl import synapse` loads and swaps the same way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::backup::{self, Source};
use super::replaced::{self, Kept};
use super::{JobContext, JobSpec};
use crate::activate::{Activator, unit_dir};
use crate::docker::{Engine, OneShot};
use crate::generation::generations::{self, Generations};
use crate::generation::layout::Layout;
use crate::service::{self, Database, Service};
use crate::spec::Bind;
use crate::ui;
use crate::unit_name::UnitName;

/// The dumps of one `masctl backup` run (they share a time stamp and a label).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupSet {
    /// `20260804T100000Z-manual`
    pub id: String,
    pub dumps: Vec<Dump>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dump {
    pub database: Database,
    pub file: String,
}

/// `synapse-20260804T100000Z-manual.dump` → `(Synapse, "20260804T100000Z-manual")`;
/// None for a file that is not a dump of one of the stack's databases.
fn split_name(name: &str) -> Option<(Database, &str)> {
    let stem = name.strip_suffix(".dump")?;
    let (db, id) = stem.split_once('-')?;
    (id.len() > 16).then_some((Database::parse(db)?, id))
}

/// Backup files grouped into sets, oldest first.
pub fn sets(files: &[String]) -> Vec<BackupSet> {
    let mut out: Vec<BackupSet> = Vec::new();
    for f in files {
        let Some((db, id)) = split_name(f) else { continue };
        let dump = Dump { database: db, file: f.clone() };
        match out.iter_mut().find(|s| s.id == id) {
            Some(s) => s.dumps.push(dump),
            None => out.push(BackupSet { id: id.to_string(), dumps: vec![dump] }),
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// The set to restore: the one named (by its id, one of its files, or a path to
/// one), else the newest that holds every database of the generation.
pub fn pick<'a>(sets: &'a [BackupSet], wanted: Option<&str>, databases: &[Database]) -> Result<&'a BackupSet> {
    let complete = |s: &BackupSet| databases.iter().all(|d| s.dumps.iter().any(|x| x.database == *d));
    let Some(w) = wanted else {
        return sets.iter().rev().find(|s| complete(s)).with_context(|| {
            format!("no backup set holds every database ({}): run `masctl backup` first", service::names(databases))
        });
    };
    let name = Path::new(w).file_name().map_or(w.to_string(), |n| n.to_string_lossy().into_owned());
    let set = sets
        .iter()
        .find(|s| s.id == name || s.dumps.iter().any(|d| d.file == name))
        .with_context(|| format!("no backup {w:?} in the backups directory (see `masctl backups`)"))?;
    if let Some(d) = set.dumps.iter().find(|d| !databases.contains(&d.database)) {
        bail!("backup {} holds database {:?}, which the current generation does not run", set.id, d.database.name());
    }
    Ok(set)
}

/// Where a database is loaded before it replaces the live one.
pub fn scratch(db: Database) -> String {
    format!("masctl_load_{db}")
}

/// What goes into a scratch database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load<'a> {
    /// A `pg_dump -Fc` archive (path inside the job container).
    Custom(&'a str),
    /// A plain SQL dump without owners or grants, read after a `SET ROLE` prelude.
    Plain { prelude: &'a str, dump: &'a str },
    /// Only create it (something else fills it).
    Empty,
}

/// The job's shell script: (re)create the scratch database owned by the database's
/// own role, then load it as that role, so the service owns every table.
fn load_script(host: &str, db: Database, load: Load) -> String {
    let s = scratch(db);
    let psql = format!("psql -q -v ON_ERROR_STOP=1 -h {host} -U postgres");
    let mut out = format!(
        "set -e\n{psql} -d postgres -c 'DROP DATABASE IF EXISTS {s}' \
-c \"CREATE DATABASE {s} OWNER {db} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0\"\n"
    );
    match load {
        Load::Custom(f) => out.push_str(&format!(
            "pg_restore -h {host} -U postgres -d {s} --no-owner --no-privileges --role={db} --exit-on-error -j 2 {f}\n"
        )),
        Load::Plain { prelude, dump } => {
            out.push_str(&format!("{psql} -d {s} -1 -f {prelude} -f {dump} > /dev/null\n"))
        }
        Load::Empty => {}
    }
    out.push_str(&format!("echo loaded {db} into {s}\n"));
    out
}

/// A job in the Postgres image, on the stack's network, as the superuser (pgpass file).
pub fn postgres_job(ctx: &JobContext, script: String, binds: Vec<Bind>) -> OneShot {
    let mut binds = binds;
    binds.push(Bind::secret(ctx.layout.secret("postgres-superuser-pgpass"), "pgpass"));
    OneShot {
        image: ctx.manifest.images[&Service::Postgres].clone(),
        user: Service::Postgres.user(),
        entrypoint: Some(vec!["sh".into(), "-c".into(), script]),
        cmd: vec![],
        binds,
        network: Some(ctx.manifest.instance.clone()),
        env: vec!["PGPASSFILE=/run/secrets/pgpass".into()],
    }
}

fn pg_host(ctx: &JobContext) -> String {
    Service::Postgres.container(&ctx.manifest.instance)
}

/// Loads into `db`'s scratch database, as a transient unit; `dir` is mounted at `/in`.
pub async fn load(ctx: &JobContext<'_>, db: Database, dir: &Path, load: Load<'_>) -> Result<()> {
    let job = postgres_job(ctx, load_script(&pg_host(ctx), db, load), vec![Bind::ro(dir, "/in")]);
    let (code, captured) = ctx.run(&format!("masctl load of {db}"), JobSpec::new("load", job)).await?;
    if code != 0 {
        let _ = drop_scratch(ctx, db).await;
        let e = super::failed(&format!("loading {db}"), code, &captured);
        bail!("{e} — the live database is untouched");
    }
    Ok(())
}

pub async fn drop_scratch(ctx: &JobContext<'_>, db: Database) -> Result<()> {
    query(ctx, "postgres", &format!("DROP DATABASE IF EXISTS {}", scratch(db))).await.map(|_| ())
}

/// The script that puts the scratch databases in place of the live ones: renames in
/// one transaction (all or nothing); the live ones are kept under their
/// [`Source::Replaced`] names (a kept one still there fails the rename: it is
/// never dropped here).
fn swap_script(host: &str, dbs: &[Database]) -> String {
    let psql = format!("psql -q -v ON_ERROR_STOP=1 -h {host} -U postgres -d postgres");
    let names: Vec<String> = dbs.iter().flat_map(|d| [format!("'{d}'"), format!("'{}'", scratch(*d))]).collect();
    let mut s = format!(
        "set -e\n{psql} -c \"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN ({}) \
AND pid <> pg_backend_pid()\" > /dev/null\n",
        names.join(", ")
    );
    s.push_str(&format!("{psql} -1"));
    for d in dbs {
        s.push_str(&format!(
            " -c 'ALTER DATABASE {d} RENAME TO {}' -c 'ALTER DATABASE {} RENAME TO {d}'",
            Source::Replaced.database(*d),
            scratch(*d)
        ));
    }
    s.push('\n');
    for d in dbs {
        s.push_str(&format!("echo restored {d}\n"));
    }
    s
}

/// Stops what uses `dbs` and swaps the scratch databases in, as one transient unit
/// (it starts the services again if the swap fails). Returns the units stopped and
/// the replaced databases, kept for their backup (`label` names its set).
pub async fn swap_in(ctx: &JobContext<'_>, dbs: &[Database], label: &str) -> Result<(Vec<UnitName>, Kept)> {
    let mut stop: Vec<UnitName> = Vec::new();
    for s in dbs.iter().map(|d| d.service()).filter(|s| ctx.manifest.services.contains_key(s)) {
        // Synapse's workers use its database too.
        let units = if s == Service::Synapse { ctx.manifest.synapse_units() } else { vec![s.unit_name()] };
        for u in units {
            if !stop.contains(&u) {
                stop.push(u);
            }
        }
    }
    ui::step(format!("stopping {} and swapping in {}", stop.join(", "), service::names(dbs)));
    let mut spec = JobSpec::new("swap", postgres_job(ctx, swap_script(&pg_host(ctx), dbs), vec![]));
    spec.stop_before = stop.clone();
    spec.start_on_failure = stop.clone();
    let kept = Kept::new(ctx.layout, dbs, label);
    let (code, captured) = ctx.run("masctl restore: swap databases", spec).await?;
    if code != 0 {
        let e = super::failed("swapping the databases in", code, &captured);
        bail!("{e}; the live databases are unchanged");
    }
    Ok((stop, kept))
}

/// Starts the current generation again and waits for its health gate.
pub async fn start_current(ctx: &JobContext<'_>, timeout: Duration) -> Result<()> {
    let engine = Engine::connect().await?;
    let current = Generations::new(ctx.layout).current()?.context("no current generation")?;
    let a = Activator { layout: ctx.layout, systemd: &ctx.systemd, engine: &engine, unit_dir: unit_dir(), timeout };
    if let Err(f) = a.activate(&current).await? {
        eprintln!("{}", f.logs.trim_end());
        bail!("generation {} did not come up after the restore ({} failed)", current.number, f.units.join(", "));
    }
    Ok(())
}

/// One SQL statement as the superuser over the Postgres container's socket; its rows.
pub async fn query(ctx: &JobContext<'_>, db: &str, sql: &str) -> Result<String> {
    let (code, out) = Engine::connect().await?.psql(&pg_host(ctx), db, sql).await?;
    if code != 0 {
        bail!("query on {db} failed: {}", out.trim());
    }
    Ok(out.trim().to_string())
}

/// What a Synapse database says about its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SynapseSchema {
    /// `schema_version.version`: the newest Synapse schema applied.
    pub version: u32,
    /// `schema_compat_version`: the oldest Synapse schema that can still run on it.
    pub compat: Option<u32>,
}

/// Synapse refuses a database whose compat version is newer than its own
/// `SCHEMA_VERSION` (`synapse/storage/prepare_database.py`); so does masctl, earlier.
pub fn synapse_servable(db: SynapseSchema, image_version: u32) -> Result<(), String> {
    match db.compat {
        Some(c) if c > image_version => Err(format!(
            "its Synapse schema is {} (compatible back to {c}), newer than the Synapse image serves ({image_version}): \
use a Synapse image at least as new as the one that wrote it",
            db.version
        )),
        _ => Ok(()),
    }
}

/// The schema of a (scratch) Synapse database; None when it has no Synapse schema.
pub async fn synapse_schema(ctx: &JobContext<'_>, db: &str) -> Result<Option<SynapseSchema>> {
    let has = query(ctx, db, "SELECT to_regclass('public.schema_version') IS NOT NULL").await?;
    if has != "t" {
        return Ok(None);
    }
    let v = query(ctx, db, "SELECT version FROM schema_version").await?;
    let compat = query(
        ctx,
        db,
        "SELECT CASE WHEN to_regclass('public.schema_compat_version') IS NULL THEN NULL \
ELSE (SELECT max(compat_version) FROM schema_compat_version) END",
    )
    .await?;
    let version = v.parse().with_context(|| format!("schema_version of {db}: {v:?}"))?;
    Ok(Some(SynapseSchema { version, compat: compat.parse().ok() }))
}

/// `SCHEMA_VERSION` of the Synapse in `image`, from its own Python package.
pub async fn image_synapse_schema(layout: &Layout, image: &str) -> Result<u32> {
    let engine = Engine::connect().await?;
    let out = tempfile::Builder::new().prefix(".schema-").tempdir_in(layout.root())?;
    std::os::unix::fs::chown(out.path(), Some(Service::Synapse.uid()), Some(Service::Synapse.uid()))?;
    let job = OneShot {
        image: image.to_string(),
        user: Service::Synapse.user(),
        entrypoint: Some(vec![
            "python3".into(),
            "-c".into(),
            "from synapse.storage.schema import SCHEMA_VERSION\nopen('/out/v', 'w').write(str(SCHEMA_VERSION))".into(),
        ]),
        cmd: vec![],
        binds: vec![Bind::rw(out.path(), "/out")],
        network: None,
        env: vec![],
    };
    let code = engine.run_once(&job, "schema-version").await?;
    let text = std::fs::read_to_string(out.path().join("v")).unwrap_or_default();
    match (code, text.trim().parse()) {
        (0, Ok(v)) => Ok(v),
        _ => bail!("could not read SCHEMA_VERSION from the Synapse image (exit {code})"),
    }
}

/// MAS's migrations (sqlx) a backup has that the running MAS image did not apply
/// to the live database: the live one was migrated by the image at its last start,
/// so anything beyond it comes from a newer MAS.
pub fn mas_unknown(dump: &[i64], live: &[i64]) -> Vec<i64> {
    dump.iter().filter(|v| !live.contains(v)).copied().collect()
}

pub async fn mas_migrations(ctx: &JobContext<'_>, db: &str) -> Result<Vec<i64>> {
    let has = query(ctx, db, "SELECT to_regclass('public._sqlx_migrations') IS NOT NULL").await?;
    if has != "t" {
        return Ok(vec![]);
    }
    let rows = query(ctx, db, "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version").await?;
    Ok(rows.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// Checks a loaded scratch database against what the running images serve.
pub async fn check_scratch(ctx: &JobContext<'_>, db: Database, synapse_image_version: Option<u32>) -> Result<String> {
    let s = scratch(db);
    match db {
        Database::Synapse => {
            let schema = synapse_schema(ctx, &s).await?.with_context(|| {
                format!("the {db} dump has no Synapse schema (no schema_version table): is it a Synapse database?")
            })?;
            let image = synapse_image_version.context("no Synapse image version")?;
            synapse_servable(schema, image).map_err(|e| anyhow::anyhow!("refusing the {db} dump: {e}"))?;
            Ok(format!("Synapse schema {}", schema.version))
        }
        Database::Mas => {
            let dump = mas_migrations(ctx, &s).await?;
            let unknown = mas_unknown(&dump, &mas_migrations(ctx, db.name()).await?);
            if !unknown.is_empty() {
                bail!(
                    "refusing the {db} dump: it has MAS migrations the running MAS image does not know ({}): it was \
written by a newer MAS",
                    unknown.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
                );
            }
            Ok(format!("MAS migration {}", dump.last().copied().unwrap_or(0)))
        }
    }
}

/// Loads every dump of `set` into its scratch database and checks it against what
/// `synapse_image` serves; on any failure drops every scratch database again.
pub async fn load_set(ctx: &JobContext<'_>, set: &BackupSet, synapse_image: Option<&str>) -> Result<Vec<RestoredDb>> {
    let synapse_version = match (set.dumps.iter().any(|d| d.database == Database::Synapse), synapse_image) {
        (true, Some(image)) => Some(image_synapse_schema(ctx.layout, image).await?),
        _ => None,
    };
    let mut done = Vec::new();
    for d in &set.dumps {
        ui::step(format!("loading {} into a scratch database", d.file));
        load(ctx, d.database, &ctx.layout.backups(), Load::Custom(&format!("/in/{}", d.file))).await?;
        match check_scratch(ctx, d.database, synapse_version).await {
            Ok(schema) => done.push(RestoredDb { database: d.database, file: d.file.clone(), schema }),
            Err(e) => {
                for x in &set.dumps {
                    let _ = drop_scratch(ctx, x.database).await;
                }
                return Err(e);
            }
        }
    }
    Ok(done)
}

/// What `masctl restore --json` prints.
#[derive(Debug, Serialize)]
pub struct Restored {
    pub set: String,
    /// The backup of the state before the restore (written after it, by
    /// [`replaced::unit`]).
    pub backup_before: Vec<PathBuf>,
    pub databases: Vec<RestoredDb>,
    pub stopped: Vec<UnitName>,
    pub generation: u32,
}

#[derive(Debug, Serialize)]
pub struct RestoredDb {
    pub database: Database,
    pub file: String,
    pub schema: String,
}

pub async fn run(layout: &Layout, wanted: Option<&str>, timeout: Duration) -> Result<Restored> {
    let _lock = generations::lock(layout, "restore")?;
    let ctx = JobContext::load(layout).await?;
    ctx.refuse_external_postgres(
        "masctl restore",
        "load a dump from backups/ with pg_restore --clean as the database's owner there, then `masctl switch`",
    )?;
    ctx.require_active(&[Service::Postgres], Duration::from_secs(60)).await?;
    // Before the sets are read: the one an earlier restore is writing may be the one asked for.
    replaced::settle(&ctx).await?;
    let names: Vec<String> = backup::list(&layout.backups())?.into_iter().map(|(n, _)| n).collect();
    let all = sets(&names);
    let set = pick(&all, wanted, &ctx.manifest.databases)?.clone();
    ui::step(format!(
        "restoring backup set {} ({})",
        set.id,
        set.dumps.iter().map(|d| d.file.as_str()).collect::<Vec<_>>().join(", ")
    ));

    let (restored, ()) = replace_with(&ctx, &set, timeout, || {
        ui::step("starting the stack");
        Ok(())
    })
    .await?;
    Ok(restored)
}

/// Replaces the live databases with `set`: loads it into scratch databases while
/// the services run, stops what uses them and swaps them in (the replaced ones
/// kept), runs `while_stopped` (what belongs with the databases: a snapshot's
/// secrets and media), starts the current generation again and then has the
/// replaced databases backed up.
pub async fn replace_with<T>(
    ctx: &JobContext<'_>,
    set: &BackupSet,
    timeout: Duration,
    while_stopped: impl FnOnce() -> Result<T>,
) -> Result<(Restored, T)> {
    replaced::settle(ctx).await?;
    let synapse_image = ctx.manifest.images.get(&Service::Synapse).cloned();
    let dbs: Vec<Database> = set.dumps.iter().map(|d| d.database).collect();
    let done = load_set(ctx, set, synapse_image.as_deref()).await?;
    let (stopped, kept) = swap_in(ctx, &dbs, "pre-restore").await?;
    let started = match while_stopped() {
        Ok(extra) => start_current(ctx, timeout).await.map(|()| extra),
        Err(e) => Err(e),
    };
    // Whether or not the stack came up: the state before is what a way back needs.
    let before = kept.back_up_later(ctx).await?;
    let extra = started
        .with_context(|| format!("the state before the restore is kept, in {}", super::replaced::shown(&before)))?;
    let restored =
        Restored { set: set.id.clone(), backup_before: before, databases: done, stopped, generation: ctx.number };
    Ok((restored, extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sets_group_a_runs_dumps() {
        let files = names(&[
            "mas-20260804T100000Z-manual.dump",
            "synapse-20260804T100000Z-manual.dump",
            "synapse-20260805T090000Z-pre-syn2mas.dump",
            "not-a-backup.txt",
            "synapse-x.dump",
        ]);
        let s = sets(&files);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].id, "20260804T100000Z-manual");
        assert_eq!(s[0].dumps.len(), 2);
        assert_eq!(s[1].id, "20260805T090000Z-pre-syn2mas");
    }

    #[test]
    fn pick_table() {
        let s = sets(&names(&[
            "mas-20260804T100000Z-manual.dump",
            "synapse-20260804T100000Z-manual.dump",
            "synapse-20260805T090000Z-manual.dump",
        ]));
        let both = vec![Database::Synapse, Database::Mas];
        let one = vec![Database::Synapse];
        // (wanted, databases, Ok(id) or Err(fragment))
        type Case<'a> = (Option<&'a str>, &'a Vec<Database>, Result<&'a str, &'a str>);
        let cases: [Case; 6] = [
            (None, &one, Ok("20260805T090000Z-manual")),
            (None, &both, Ok("20260804T100000Z-manual")),
            (Some("20260804T100000Z-manual"), &both, Ok("20260804T100000Z-manual")),
            (Some("/var/lib/masctl/backups/synapse-20260805T090000Z-manual.dump"), &one, Ok("20260805T090000Z-manual")),
            (Some("20260804T100000Z-manual"), &one, Err("does not run")),
            (Some("nope"), &one, Err("no backup \"nope\"")),
        ];
        for (wanted, dbs, expect) in cases {
            match (pick(&s, wanted, dbs), expect) {
                (Ok(set), Ok(id)) => assert_eq!(set.id, id, "{wanted:?}"),
                (Err(e), Err(frag)) => assert!(e.to_string().contains(frag), "{wanted:?}: {e}"),
                (got, want) => panic!("{wanted:?}: got {:?}, want {want:?}", got.map(|s| &s.id)),
            }
        }
        assert!(pick(&[], None, &one).unwrap_err().to_string().contains("masctl backup"));
    }

    #[test]
    fn synapse_schema_table() {
        let s = |version, compat| SynapseSchema { version, compat };
        assert!(synapse_servable(s(94, Some(84)), 94).is_ok());
        assert!(synapse_servable(s(99, Some(90)), 94).is_ok(), "newer but compatible back to 90");
        assert!(synapse_servable(s(90, None), 94).is_ok());
        let e = synapse_servable(s(120, Some(95)), 94).unwrap_err();
        assert!(e.contains("newer than the Synapse image serves (94)"), "{e}");
    }

    #[test]
    fn mas_unknown_migrations() {
        assert!(mas_unknown(&[1, 2, 3], &[1, 2, 3, 4]).is_empty());
        assert_eq!(mas_unknown(&[1, 2, 5], &[1, 2, 3]), vec![5]);
    }

    #[test]
    fn scripts_load_as_the_databases_role_and_swap_in_one_transaction() {
        let l = load_script("pg", Database::Synapse, Load::Custom("/in/x.dump"));
        assert!(l.contains("CREATE DATABASE masctl_load_synapse OWNER synapse"), "{l}");
        assert!(l.contains("--role=synapse --exit-on-error"), "{l}");
        let p = load_script("pg", Database::Synapse, Load::Plain { prelude: "/in/p.sql", dump: "/in/d.sql" });
        assert!(p.contains("-1 -f /in/p.sql -f /in/d.sql"), "{p}");
        let s = swap_script("pg", &[Database::Synapse, Database::Mas]);
        let tx = s.lines().find(|l| l.contains(" -1 ")).unwrap();
        for part in ["synapse RENAME TO masctl_old_synapse", "masctl_load_mas RENAME TO mas"] {
            assert!(tx.contains(part), "{tx}");
        }
        assert!(!s.contains("DROP DATABASE"), "the replaced databases are kept: {s}");
    }
}
