//! Postgres major upgrades, done by `switch` before it activates a generation whose
//! Postgres image is of another major version than the current one's.
//!
//! Each major version keeps its own cluster (`eval::postgres::cluster_dir`), so an
//! upgrade creates the new cluster next to the old one and never touches the old:
//! rolling back to the old generation starts it as it was. The data moves by dump
//! and restore through the new server (`pg_dumpall` of the new version reading the
//! old server, piped into `psql` on the new one): `pg_upgrade` would need both
//! versions' binaries in one image, and the two come from different Debian
//! releases. Writers (Synapse, MAS) are stopped first so the copy is the last
//! state; a verified backup is taken; every table of every database is compared
//! (rows and a checksum) before the new cluster is moved into place. Any failure
//! removes the half-made cluster and starts the writers again: the host is as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::context::ConfiguredContext;
use crate::docker::{Engine, ExecOutput, Health};
use crate::generation::generations::Generation;
use crate::generation::layout::Layout;
use crate::generation::manifest::Manifest;
use crate::jobs::backup;
use crate::service::Service;
use crate::spec::{Bind, ServiceSpec, read_spec};
use crate::systemd::{Op, Systemd};
use crate::ui;
use crate::unit_name::UnitName;

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
    /// Refused; the reason.
    Refuse(String),
}

/// Decides from the current generation's cluster (none before the first switch),
/// the target's and the target image's major version. Pure.
pub fn decide(current: Option<&Cluster>, target: &Cluster, to: u32, stamp: &str) -> Decision {
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

/// Called by `switch` once the target generation is built and before anything
/// changes: upgrades the data when the Postgres major version changes, refuses
/// (at `images.postgres`) what it cannot do. With `dry_run`, only says.
pub async fn before_switch(
    ctx: &ConfiguredContext,
    engine: &Engine,
    current: Option<&Generation>,
    target: &Manifest,
    dry_run: bool,
) -> Result<Option<Vec<PathBuf>>> {
    let c = ctx.config();
    let Some(to_cluster) = cluster_of(target)? else { return Ok(None) };
    let to = super::build::postgres_major(c, engine, &target.images[&POSTGRES]).await?;
    let from_manifest = current.map(|g| g.manifest()).transpose()?;
    let from_cluster = match &from_manifest {
        Some(m) => cluster_of(m)?,
        None => None,
    };
    let stamp = crate::timestamp::compact(std::time::SystemTime::now());
    match decide(from_cluster.as_ref(), &to_cluster, to, &stamp) {
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
            let up = Upgrade { layout: &ctx.layout, engine, from_manifest: &from_manifest, target, to_cluster, from };
            up.run(set_aside).await.map(Some)
        }
    }
}

struct Upgrade<'a> {
    layout: &'a Layout,
    engine: &'a Engine,
    from_manifest: &'a Manifest,
    target: &'a Manifest,
    to_cluster: Cluster,
    from: u32,
}

impl Upgrade<'_> {
    /// The upgrade's verified backup files.
    async fn run(&self, set_aside: Option<PathBuf>) -> Result<Vec<PathBuf>> {
        let started = Instant::now();
        let old = POSTGRES.container(&self.from_manifest.instance);
        match self.engine.container_state(&old).await? {
            Some(st) if st.running && st.health == Health::Healthy => {}
            _ => bail!(
                "the current Postgres ({old}) is not running and healthy, so its data cannot be copied; \
nothing was changed (start it with `masctl rollback --to` the current generation)"
            ),
        }
        let systemd = Systemd::connect().await?;
        // Writers stop first, so the copy and the backup are of the last state.
        let writers = self.running_writers(&systemd).await?;
        if !writers.is_empty() {
            ui::step(format!("stopping {} so nothing writes during the copy", writers.join(", ")));
            let stops: Vec<(Op, UnitName)> = writers.iter().map(|u| (Op::Stop, u.clone())).collect();
            systemd.run_jobs(&stops, Duration::from_secs(300)).await?;
        }
        let partial = PathBuf::from(format!("{}.partial", self.to_cluster.dir.display()));
        let result = self.copy(&systemd, &partial, &old).await;
        let temp = self.temp_container();
        let _ = self.engine.stop_container(&temp, 60).await;
        let _ = self.engine.remove_container(&temp).await;
        match result {
            Ok((summary, files)) => {
                if let Some(aside) = set_aside {
                    std::fs::rename(&self.to_cluster.dir, &aside)
                        .with_context(|| format!("moving {} aside", self.to_cluster.dir.display()))?;
                    ui::step(format!(
                        "an older Postgres cluster at {} was moved to {} (kept)",
                        self.to_cluster.dir.display(),
                        aside.display()
                    ));
                }
                std::fs::rename(&partial, &self.to_cluster.dir)
                    .with_context(|| format!("moving the new cluster to {}", self.to_cluster.dir.display()))?;
                crate::fsutil::fsync_dir(&self.layout.root.join("data"))?;
                ui::step(format!("upgraded in {:.0?}: {summary}", started.elapsed()));
                Ok(files)
            }
            Err(e) => {
                // Only what this upgrade made goes; the old cluster was never written.
                let _ = std::fs::remove_dir_all(&partial);
                if !writers.is_empty() {
                    let starts: Vec<(Op, UnitName)> = writers.iter().map(|u| (Op::Start, u.clone())).collect();
                    let _ = systemd.run_jobs(&starts, Duration::from_secs(300)).await;
                }
                Err(e.context("the Postgres upgrade failed; the current generation runs on as it was"))
            }
        }
    }

    /// The current generation's units that write to Postgres and are running:
    /// Synapse's processes (workers too) and MAS.
    async fn running_writers(&self, systemd: &Systemd) -> Result<Vec<UnitName>> {
        let mut out = Vec::new();
        let mut units = self.from_manifest.synapse_units();
        units.push(Service::Mas.unit_name());
        for unit in units {
            if self.from_manifest.units.contains_key(&unit) && systemd.unit_state(&unit).await?.active_state.is_up() {
                out.push(unit);
            }
        }
        Ok(out)
    }

    fn temp_container(&self) -> String {
        format!("{}-upgrade", POSTGRES.container(&self.target.instance))
    }

    /// Backup, new cluster, copy, check. Returns a summary of what was checked and
    /// the backup's files.
    async fn copy(&self, systemd: &Systemd, partial: &Path, old: &str) -> Result<(String, Vec<PathBuf>)> {
        ui::step("backing up the current state first");
        let files = backup::run(self.layout, systemd, self.from_manifest, &upgrade_label(self.from))
            .await
            .context("no backup of the current state, no upgrade")?;
        for f in &files {
            ui::step(format!("verified backup {}", f.display()));
        }
        let new = self.start_new_cluster(partial).await?;
        let old_dbs = self.databases(old).await?;
        self.copy_databases(old, &new, &old_dbs).await?;
        let summary = self.verify(old, &new, &old_dbs).await?;
        Ok((summary, files))
    }

    /// The target's Postgres in a temporary container on the (emptied) partial
    /// cluster directory, once it is healthy; returns the container's name.
    async fn start_new_cluster(&self, partial: &Path) -> Result<String> {
        // A half-made cluster of an earlier attempt is this code's own leftover.
        let _ = std::fs::remove_dir_all(partial);
        std::fs::create_dir_all(partial)?;
        std::os::unix::fs::chown(partial, Some(POSTGRES.uid()), Some(POSTGRES.uid()))?;
        std::fs::set_permissions(partial, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;

        let new = self.temp_container();
        let mut spec = read_spec(&self.target.services[&POSTGRES])?;
        spec.container = new.clone();
        let data_bind = Bind::rw(&self.to_cluster.dir, "/var/lib/postgresql/data");
        for b in spec.binds.iter_mut().filter(|b| **b == data_bind) {
            b.host = partial.to_path_buf();
        }
        spec.binds.push(Bind::secret(self.layout.secret("postgres-superuser-pgpass"), "pgpass"));
        self.engine.remove_container(&new).await?;
        let sp = ui::spinner("creating the new cluster");
        self.engine.create_and_start(&spec, "pg-upgrade").await?;
        let ready = self.wait_healthy(&new).await;
        sp.finish_and_clear();
        ready?;
        Ok(new)
    }

    /// Roles and settings, then each database, from the old server into the new one.
    async fn copy_databases(&self, old: &str, new: &str, old_dbs: &[String]) -> Result<()> {
        let t = Instant::now();
        let (code, out) = self.sh(new, &globals_script(old)).await?;
        if code != 0 {
            bail!("copying roles and settings failed (exit {code}):\n{}", tail(&out, 20));
        }
        for (i, db) in old_dbs.iter().enumerate() {
            let size = self.psql(old, "postgres", &format!("SELECT pg_size_pretty(pg_database_size('{db}'))")).await?;
            let sp = ui::spinner(&format!(
                "copying database {db} ({}, {} of {}; pg_dump | psql)",
                size.trim(),
                i + 1,
                old_dbs.len()
            ));
            let (code, out) = self.sh(new, &database_script(old, db)).await?;
            sp.finish_and_clear();
            if code != 0 {
                bail!("copying database {db} failed (exit {code}):\n{}", tail(&out, 20));
            }
            ui::step(format!("copied database {db} ({})", size.trim()));
        }
        ui::step(format!("copied in {:.0?}", t.elapsed()));
        Ok(())
    }

    /// Compares every table of every database (rows and checksums) between the old
    /// server and the new one; returns a summary of what was checked.
    async fn verify(&self, old: &str, new: &str, old_dbs: &[String]) -> Result<String> {
        let sp = ui::spinner("checking every table of every database (rows and checksums)");
        let new_dbs = self.databases(new).await?;
        if old_dbs != new_dbs {
            sp.finish_and_clear();
            bail!("the new cluster has databases {new_dbs:?}, the old one {old_dbs:?}");
        }
        let (mut tables, mut rows) = (0usize, 0u64);
        for db in old_dbs {
            let a = self.table_sums(old, db).await?;
            let b = self.table_sums(new, db).await?;
            if let Some(diff) = first_difference(&a, &b) {
                sp.finish_and_clear();
                bail!("database {db}: {diff}");
            }
            tables += a.len();
            rows += a.values().map(|s| s.rows).sum::<u64>();
        }
        sp.finish_and_clear();
        Ok(format!("{} databases, {tables} tables, {rows} rows checked", old_dbs.len()))
    }

    async fn wait_healthy(&self, container: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            match self.engine.container_state(container).await? {
                Some(st) if st.health == Health::Healthy => return Ok(()),
                Some(st) if !st.running => bail!("the new Postgres server exited (code {})", st.exit_code),
                None => bail!("the new Postgres server's container is gone"),
                _ if Instant::now() > deadline => bail!("the new Postgres server did not become ready in 5 minutes"),
                _ => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    }

    async fn sh(&self, container: &str, script: &str) -> Result<(i64, String)> {
        let cmd = ["sh", "-c", script].map(String::from).to_vec();
        self.engine.exec_in(container, &cmd, &["PGPASSFILE=/run/secrets/pgpass".to_string()], ExecOutput::Capture).await
    }

    async fn psql(&self, container: &str, db: &str, sql: &str) -> Result<String> {
        let (code, out) = self.engine.psql(container, db, sql).await?;
        if code != 0 {
            bail!("psql in {container} ({db}) failed: {}", tail(&out, 5));
        }
        Ok(out)
    }

    async fn databases(&self, container: &str) -> Result<Vec<String>> {
        let out = self.psql(container, "postgres", DATABASES_SQL).await?;
        Ok(out.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
    }

    async fn table_sums(&self, container: &str, db: &str) -> Result<BTreeMap<String, TableSum>> {
        parse_table_sums(&self.psql(container, db, TABLE_SUMS_SQL).await?)
    }
}

/// Runs in the new server's container: its own (newer) `pg_dumpall` reads the old
/// server's roles over the instance network, its `psql` restores them over the
/// local socket. The superuser exists already (initdb made it), so its CREATE ROLE
/// is left out and every other statement must succeed. The image has dash and no
/// coreutils: shell builtins only.
fn globals_script(old_host: &str) -> String {
    format!(
        "set -eu\n\
pg_dumpall -h {old_host} -U postgres --globals-only > /tmp/globals.sql\n\
while IFS= read -r line; do [ \"$line\" = 'CREATE ROLE postgres;' ] || printf '%s\\n' \"$line\"; done \
< /tmp/globals.sql | psql -X -q -v ON_ERROR_STOP=1 -h /run/postgresql -U postgres -d postgres > /dev/null\n"
    )
}

/// One database, likewise: `pg_dump --create` (the database with its owner,
/// encoding and settings) piped into `psql`; `postgres` exists already, so its
/// contents only. dash has no pipefail: the dump's status comes back in a file.
fn database_script(old_host: &str, db: &str) -> String {
    let create = if db == "postgres" { "" } else { "--create " };
    format!(
        "set -u\n\
{{ pg_dump -h {old_host} -U postgres {create}'{db}'; echo $? > /tmp/dump-status; }} \
| psql -X -q -v ON_ERROR_STOP=1 -h /run/postgresql -U postgres -d postgres > /dev/null\n\
restored=$?\n\
read -r dumped < /tmp/dump-status\n\
[ \"$dumped\" = 0 ] || {{ echo \"pg_dump exited $dumped\"; exit 1; }}\n\
[ \"$restored\" = 0 ] || {{ echo \"psql exited $restored\"; exit 1; }}\n"
    )
}

/// The databases a cluster holds for its users (templates aside).
pub const DATABASES_SQL: &str =
    "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname";

/// Per table of the database: `schema.table|rows|checksum`, the checksum a sum of
/// each row's text md5 (order-free, so no sort of a large table is needed).
pub const TABLE_SUMS_SQL: &str = "SELECT n.nspname || '.' || c.relname, \
(xpath('/row/c/text()', query_to_xml(format('SELECT count(*) || ''|'' || \
coalesce(sum((''x'' || substr(md5(t::text), 1, 16))::bit(64)::bigint::numeric), 0) AS c FROM %I.%I t', \
n.nspname, c.relname), false, true, '')))[1]::text \
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSum {
    pub rows: u64,
    pub checksum: String,
}

/// Parses the output of [`TABLE_SUMS_SQL`].
pub fn parse_table_sums(out: &str) -> Result<BTreeMap<String, TableSum>> {
    let mut m = BTreeMap::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let mut f = line.trim().split('|');
        match (f.next(), f.next(), f.next()) {
            (Some(t), Some(rows), Some(sum)) => {
                let rows = rows.parse().with_context(|| format!("row count in {line:?}"))?;
                m.insert(t.to_string(), TableSum { rows, checksum: sum.to_string() });
            }
            _ => bail!("unexpected table checksum line {line:?}"),
        }
    }
    Ok(m)
}

/// The first way two sets of table sums differ, said for a person.
pub fn first_difference(old: &BTreeMap<String, TableSum>, new: &BTreeMap<String, TableSum>) -> Option<String> {
    for (t, a) in old {
        match new.get(t) {
            None => return Some(format!("table {t} is missing from the new cluster")),
            Some(b) if a.rows != b.rows => return Some(format!("table {t} has {} rows, was {}", b.rows, a.rows)),
            Some(b) if a.checksum != b.checksum => return Some(format!("table {t}'s contents differ")),
            _ => {}
        }
    }
    new.keys().find(|t| !old.contains_key(*t)).map(|t| format!("table {t} is new in the new cluster"))
}

/// The label of the backup an upgrade from `major` takes (part of its file names):
/// gc finds by it the dump that keeps an unused cluster's data.
fn upgrade_label(major: u32) -> String {
    format!("pg{major}-upgrade")
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

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
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
        // (current, target, target image's major) → decision
        let cases: Vec<(Option<Cluster>, Cluster, u32, Decision)> = vec![
            // First switch: a new cluster, nothing to carry.
            (None, cl(p17, None), 17, Decision::Keep),
            // Same cluster, same major.
            (Some(cl(p15, Some(15))), cl(p15, Some(15)), 15, Decision::Keep),
            // The current cluster never started: nothing to carry.
            (Some(cl(p15, None)), cl(p17, None), 17, Decision::Keep),
            (Some(cl(p15, Some(15))), cl(p17, None), 17, up(None)),
            // An earlier 17 cluster (upgraded, then rolled back from) is older than 15's data.
            (Some(cl(p15, Some(15))), cl(p17, Some(17)), 17, up(Some("/d/postgres-17.replaced-T"))),
            (Some(cl(p17, Some(17))), cl(p15, Some(15)), 15, Decision::Reuse { from: 17, to: 15 }),
        ];
        for (cur, target, to, want) in cases {
            assert_eq!(decide(cur.as_ref(), &target, to, "T"), want, "{cur:?} → {target:?}");
        }
        assert!(refused(decide(Some(&cl(p17, Some(17))), &cl(p15, None), 15, "T"), "downgrade"));
        assert!(refused(decide(None, &cl(p17, Some(16)), 17, "T"), "holds a Postgres 16 cluster"));
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

    #[test]
    fn table_sums_compare() {
        let a = parse_table_sums("public.users|2|123\npublic.events|5|99\n").unwrap();
        let cases = [
            ("public.users|2|123\npublic.events|5|99\n", None),
            ("public.users|2|123\n", Some("table public.events is missing")),
            ("public.users|2|123\npublic.events|4|99\n", Some("has 4 rows, was 5")),
            ("public.users|2|124\npublic.events|5|99\n", Some("public.users's contents differ")),
            ("public.users|2|123\npublic.events|5|99\npublic.x|0|0\n", Some("public.x is new")),
        ];
        for (new, want) in cases {
            let d = first_difference(&a, &parse_table_sums(new).unwrap());
            match want {
                None => assert_eq!(d, None, "{new}"),
                Some(w) => assert!(d.as_deref().is_some_and(|d| d.contains(w)), "{new}: {d:?}"),
            }
        }
        assert!(parse_table_sums("no separators\n").is_err());
    }
}
