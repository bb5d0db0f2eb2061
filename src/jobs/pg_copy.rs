//! The data copy of a Postgres major upgrade, as a transient unit's job: it runs
//! under PID 1, so a dropped session or a killed `masctl switch` does not stop it.
//! It stops the writers (Synapse, MAS), dumps each of the stack's databases (the
//! backup), creates the new cluster beside the old one, loads it through the new
//! server (`pg_dumpall --globals-only`, `pg_restore` of each dump, `pg_dump | psql`
//! for any other database), compares every table on both servers at once, and
//! only then keeps the dumps as verified backups and moves the new cluster into
//! place. Its last act is a
//! result file ([`Copied`]): the next `switch` takes the copy from it instead of
//! starting over. Any failure removes the half-made cluster and starts the writers
//! again: the host is as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use crate::docker::{Engine, ExecOutput, Health};
use crate::generation::layout::Layout;
use crate::generation::manifest::Manifest;
use crate::jobs::backup;
use crate::service::{Database, Service};
use crate::spec::{Bind, read_spec};
use crate::systemd::{Op, Systemd};
use crate::ui;
use crate::unit_name::UnitName;

const POSTGRES: Service = Service::Postgres;

/// What the job is given: both generations' manifests (so it needs nothing else
/// from the caller) and the clusters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgCopy {
    pub root: PathBuf,
    pub from_manifest: Manifest,
    pub target: Manifest,
    pub from_cluster: PathBuf,
    pub to_cluster: PathBuf,
    pub from: u32,
    pub to: u32,
    /// Where a cluster already at `to_cluster` (an older copy) is moved first.
    pub set_aside: Option<PathBuf>,
}

/// A generation's units that write to Postgres: Synapse's processes (workers
/// too) and MAS, those it has.
pub fn writer_units(manifest: &Manifest) -> Vec<UnitName> {
    let mut units = manifest.synapse_units();
    units.push(Service::Mas.unit_name());
    units.retain(|u| manifest.units.contains_key(u));
    units
}

/// What a finished copy leaves for the next `switch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copied {
    pub from_cluster: PathBuf,
    pub to_cluster: PathBuf,
    pub from: u32,
    pub to: u32,
    /// The writers the job stopped, and when (µs since the epoch): one started
    /// after that may have written what the copy lacks.
    pub writers: Vec<UnitName>,
    pub writers_stopped_usec: u64,
    /// The dumps the copy was loaded from, verified by its check: the upgrade's backup.
    pub backups: Vec<PathBuf>,
    pub summary: String,
}

/// The unit an instance's upgrade copy runs as: one name, so a later `switch`
/// finds it.
pub fn unit(instance: &str) -> UnitName {
    UnitName::transient("pg-upgrade", instance)
}

/// Where a finished copy's [`Copied`] is.
pub fn result_path(layout: &Layout) -> PathBuf {
    super::jobs_dir(layout).join("pg-upgrade.result.json")
}

pub fn read_result(layout: &Layout) -> Option<Copied> {
    serde_json::from_slice(&std::fs::read(result_path(layout)).ok()?).ok()
}

/// The job's body: the copy, then its result file.
pub async fn run(spec: &PgCopy) -> Result<()> {
    let layout = Layout::new(&spec.root);
    let engine = Engine::connect().await?;
    let up = Upgrade { layout: &layout, engine: &engine, spec };
    let copied = up.run().await?;
    crate::fsutil::write_atomic(&result_path(&layout), &serde_json::to_vec_pretty(&copied)?, 0o600)?;
    ui::step("the upgrade's copy is done; the switch goes on");
    Ok(())
}

fn now_usec() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

struct Upgrade<'a> {
    layout: &'a Layout,
    engine: &'a Engine,
    spec: &'a PgCopy,
}

impl Upgrade<'_> {
    async fn run(&self) -> Result<Copied> {
        let started = Instant::now();
        let old = POSTGRES.container(&self.spec.from_manifest.instance);
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
        let writers_stopped_usec = now_usec();
        let to_cluster = &self.spec.to_cluster;
        let partial = PathBuf::from(format!("{}.partial", to_cluster.display()));
        let result = self.copy(&systemd, &partial, &old).await;
        let temp = self.temp_container();
        let _ = self.engine.stop_container(&temp, 60).await;
        let _ = self.engine.remove_container(&temp).await;
        match result {
            Ok((summary, backups)) => {
                if let Some(aside) = &self.spec.set_aside {
                    std::fs::rename(to_cluster, aside)
                        .with_context(|| format!("moving {} aside", to_cluster.display()))?;
                    ui::step(format!(
                        "an older Postgres cluster at {} was moved to {} (kept)",
                        to_cluster.display(),
                        aside.display()
                    ));
                }
                std::fs::rename(&partial, to_cluster)
                    .with_context(|| format!("moving the new cluster to {}", to_cluster.display()))?;
                crate::fsutil::fsync_dir(&self.layout.root.join("data"))?;
                ui::step(format!("copied and checked in {:.0?}: {summary}", started.elapsed()));
                Ok(Copied {
                    from_cluster: self.spec.from_cluster.clone(),
                    to_cluster: to_cluster.clone(),
                    from: self.spec.from,
                    to: self.spec.to,
                    writers,
                    writers_stopped_usec,
                    backups,
                    summary,
                })
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

    /// The current generation's writers that are running.
    async fn running_writers(&self, systemd: &Systemd) -> Result<Vec<UnitName>> {
        let mut out = Vec::new();
        for unit in writer_units(&self.spec.from_manifest) {
            if systemd.unit_state(&unit).await?.active_state.is_up() {
                out.push(unit);
            }
        }
        Ok(out)
    }

    fn temp_container(&self) -> String {
        format!("{}-upgrade", POSTGRES.container(&self.spec.target.instance))
    }

    /// One dump of each of the stack's databases — the upgrade's backup and the
    /// copy's source at once — then the new cluster, the copy and the check. The
    /// dumps count as verified backups only once every table restored from them
    /// matches the old server. Returns a summary of what was checked and the backups.
    async fn copy(&self, systemd: &Systemd, partial: &Path, old: &str) -> Result<(String, Vec<PathBuf>)> {
        ui::step(
            "backing up the current state first (the dump is also what the new cluster is loaded from); \
the new cluster is made meanwhile",
        );
        let stamp = crate::timestamp::compact(SystemTime::now());
        let label = upgrade_label(self.spec.from);
        let name = |db: Database| format!("{db}-{stamp}-{label}.dump");
        let t = Instant::now();
        let backups = self.layout.backups();
        let (dumps, new) = tokio::join!(
            async {
                backup::dump_unverified(self.layout, systemd, &self.spec.from_manifest, &backups, &name)
                    .await
                    .context("no backup of the current state, no upgrade")
            },
            self.start_new_cluster(partial)
        );
        let dumps = dumps?;
        let result = match new {
            Ok(new) => {
                ui::step(format!("dumped in {:.0?}", t.elapsed()));
                match self.load_and_check(&new, old, &dumps).await {
                    Ok(summary) => keep_dumps(&backups, &dumps).map(|kept| (summary, kept)),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        if result.is_err() {
            for (_, f) in &dumps {
                let _ = std::fs::remove_file(f);
            }
        }
        result
    }

    /// The copy into the new server, then the check. With the writers stopped the
    /// old server's contents no longer change, so its side of the check is read
    /// while the copy runs.
    async fn load_and_check(&self, new: &str, old: &str, dumps: &[(Database, PathBuf)]) -> Result<String> {
        let old_dbs = self.databases(old).await?;
        let (copied, old_sums) =
            tokio::join!(self.copy_databases(old, new, &old_dbs, dumps), self.all_table_sums(old, &old_dbs));
        copied?;
        self.verify(new, &old_dbs, &old_sums?).await
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
        let mut spec = read_spec(&self.spec.target.services[&POSTGRES])?;
        spec.container = new.clone();
        let data_bind = Bind::rw(&self.spec.to_cluster, "/var/lib/postgresql/data");
        for b in spec.binds.iter_mut().filter(|b| **b == data_bind) {
            b.host = partial.to_path_buf();
        }
        spec.binds.push(Bind::secret(self.layout.secret("postgres-superuser-pgpass"), "pgpass"));
        spec.binds.push(Bind::ro(self.layout.backups(), "/backups"));
        self.engine.remove_container(&new).await?;
        let sp = ui::spinner("creating the new cluster");
        self.engine.create_and_start(&spec, "pg-upgrade").await?;
        let ready = self.wait_healthy(&new).await;
        sp.finish_and_clear();
        ready?;
        Ok(new)
    }

    /// Roles and settings, then each database into the new server: the stack's
    /// own from their dumps (`pg_restore`, two jobs at once), any other straight
    /// from the old server (`pg_dump | psql`).
    async fn copy_databases(
        &self,
        old: &str,
        new: &str,
        old_dbs: &[String],
        dumps: &[(Database, PathBuf)],
    ) -> Result<()> {
        let t = Instant::now();
        let (code, out) = self.sh(new, &globals_script(old)).await?;
        if code != 0 {
            bail!("copying roles and settings failed (exit {code}):\n{}", tail(&out, 20));
        }
        for (i, db) in old_dbs.iter().enumerate() {
            let size = self.psql(old, "postgres", &format!("SELECT pg_size_pretty(pg_database_size('{db}'))")).await?;
            let dump = dumps.iter().find(|(d, _)| d.to_string() == *db).and_then(|(_, f)| f.file_name());
            let (how, script) = match dump {
                Some(file) => ("pg_restore of its dump", restore_script(&file.to_string_lossy())),
                None => ("pg_dump | psql", database_script(old, db)),
            };
            let sp =
                ui::spinner(&format!("copying database {db} ({}, {} of {}; {how})", size.trim(), i + 1, old_dbs.len()));
            let (code, out) = self.sh(new, &script).await?;
            sp.finish_and_clear();
            if code != 0 {
                bail!("copying database {db} failed (exit {code}):\n{}", tail(&out, 20));
            }
            ui::step(format!("copied database {db} ({})", size.trim()));
        }
        ui::step(format!("copied in {:.0?}", t.elapsed()));
        Ok(())
    }

    /// Compares every table of every database (rows and checksums) of the new
    /// server with the old one's sums; returns a summary of what was checked.
    async fn verify(&self, new: &str, old_dbs: &[String], old_sums: &[BTreeMap<String, TableSum>]) -> Result<String> {
        let sp = ui::spinner("checking every table of every database (rows and checksums)");
        let t = Instant::now();
        let new_dbs = self.databases(new).await?;
        if old_dbs != new_dbs {
            sp.finish_and_clear();
            bail!("the new cluster has databases {new_dbs:?}, the old one {old_dbs:?}");
        }
        let (mut tables, mut rows) = (0usize, 0u64);
        for (db, a) in old_dbs.iter().zip(old_sums) {
            let b = self.table_sums(new, db).await?;
            if let Some(diff) = first_difference(a, &b) {
                sp.finish_and_clear();
                bail!("database {db}: {diff}");
            }
            tables += a.len();
            rows += a.values().map(|s| s.rows).sum::<u64>();
        }
        sp.finish_and_clear();
        Ok(format!("{} databases, {tables} tables, {rows} rows checked in {:.0?}", old_dbs.len(), t.elapsed()))
    }

    async fn all_table_sums(&self, container: &str, dbs: &[String]) -> Result<Vec<BTreeMap<String, TableSum>>> {
        let mut all = Vec::new();
        for db in dbs {
            all.push(self.table_sums(container, db).await?);
        }
        Ok(all)
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

/// One of the stack's databases from its dump (made by the old server's
/// `pg_dump -Fc`; the newer `pg_restore` reads it): the database with its owner and
/// settings, then its contents, stopping at the first error.
fn restore_script(file: &str) -> String {
    format!(
        "set -e\n\
pg_restore -h /run/postgresql -U postgres -d postgres --create --exit-on-error -j 2 /backups/{file}\n"
    )
}

/// The checked dumps renamed to their names (from `NAME.tmp`): now verified backups.
fn keep_dumps(dir: &Path, dumps: &[(Database, PathBuf)]) -> Result<Vec<PathBuf>> {
    let mut kept = Vec::new();
    for (_, tmp) in dumps {
        let dest = tmp.with_extension("");
        std::fs::rename(tmp, &dest).with_context(|| format!("renaming {}", tmp.display()))?;
        ui::step(format!("verified backup {} (restored into the new cluster and checked)", dest.display()));
        kept.push(dest);
    }
    crate::fsutil::fsync_dir(dir)?;
    Ok(kept)
}

/// The databases a cluster holds for its users (templates aside).
pub const DATABASES_SQL: &str =
    "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname";

/// Per table of the database: `schema.table|rows|checksum`, the checksum a sum of
/// a 64-bit hash of each row's text (order-free, so no sort of a large table is
/// needed; `hashtextextended` is the hash partitioning relies on, so it is the same
/// in every Postgres version).
pub const TABLE_SUMS_SQL: &str = "SELECT n.nspname || '.' || c.relname, \
(xpath('/row/c/text()', query_to_xml(format('SELECT count(*) || ''|'' || \
coalesce(sum(hashtextextended(t::text, 0)::numeric), 0) AS c FROM %I.%I t', \
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
pub fn upgrade_label(major: u32) -> String {
    format!("pg{major}-upgrade")
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

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
