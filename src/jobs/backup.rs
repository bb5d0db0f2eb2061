//! Database dumps into `backups/`, each verified by restoring it into a scratch
//! database before it counts as a backup.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

use super::{JobContext, JobSpec};
use crate::docker::OneShot;
use crate::generation::layout::Layout;
use crate::generation::manifest::Manifest;
use crate::service::{Database, Service};
use crate::spec::Bind;
use crate::systemd::Systemd;
use crate::timestamp;

const POSTGRES: Service = Service::Postgres;

/// Dump, check the archive lists, restore into a scratch database, drop it. Runs in
/// the Postgres image (dash, pg_dump, pg_restore, psql); the password comes from a
/// mounted pgpass file, never the command line.
fn script(host: &str, db: Database, from: Source, file: &str) -> String {
    let (src, verify) = (from.database(db), from.verify_database());
    format!(
        "set -e\n\
pg_dump -h {host} -U postgres -Fc -f /backups/{file}.tmp {src}\n\
pg_restore --list /backups/{file}.tmp > /dev/null\n\
psql -q -h {host} -U postgres -d postgres -c 'DROP DATABASE IF EXISTS {verify}' \
-c \"CREATE DATABASE {verify} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'\"\n\
pg_restore -h {host} -U postgres -d {verify} --no-owner --exit-on-error -j 2 /backups/{file}.tmp\n\
psql -q -h {host} -U postgres -d postgres -c 'DROP DATABASE {verify}'\n\
echo verified {file}\n"
    )
}

/// Which database of the server a dump reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The live one.
    Live,
    /// The one a restore replaced, kept by rename until it is backed up (`jobs::replaced`).
    Replaced,
}

impl Source {
    pub fn database(self, db: Database) -> String {
        match self {
            Source::Live => db.name().to_string(),
            Source::Replaced => format!("masctl_old_{db}"),
        }
    }

    /// The scratch database a dump is verified in: a replaced database's backup
    /// runs after its command, beside whatever comes next, so it has its own.
    fn verify_database(self) -> &'static str {
        match self {
            Source::Live => "masctl_verify",
            Source::Replaced => "masctl_verify_replaced",
        }
    }
}

/// Only the dump and the list check: for a caller that verifies the dump itself
/// (an upgrade restores it into the new server and compares every table). The
/// caller has stopped the services for it, so it does not compress (`-Z 0`): on
/// two cores gzip was most of the dump's time and part of the restore's; the file is
/// about as large as the database.
fn unverified_script(host: &str, db: Database, file: &str) -> String {
    format!(
        "set -e\n\
pg_dump -h {host} -U postgres -Fc -Z 0 -f /backups/{file}.tmp {db}\n\
pg_restore --list /backups/{file}.tmp > /dev/null\n\
echo dumped {file}\n"
    )
}

/// The same on an external server, as the database's own role (masctl may not
/// create databases there): dump, check the archive lists, and restore into a
/// throwaway server started in the job's own container from the same image (its
/// data directory under `backups/`, which the job's unit removes whatever happens:
/// the image has no `rm`, and the server dies with the container).
fn external_script(
    host: &str,
    port: u16,
    login: &crate::generation::manifest::DbLogin,
    db: Database,
    file: &str,
) -> String {
    let (database, user) = (&login.database, &login.user);
    format!(
        "set -e\n\
pg_dump -h {host} -p {port} -U {user} -Fc -f /backups/{file}.tmp {database}\n\
pg_restore --list /backups/{file}.tmp > /dev/null\n\
v=/backups/{VERIFY_PREFIX}{db}\n\
initdb -D \"$v\" -U postgres --auth=trust -E UTF8 --locale=C > /dev/null\n\
pg_ctl -D \"$v\" -l \"$v/log\" -w -o \"-c listen_addresses= -k /tmp -c fsync=off\" start > /dev/null \
|| {{ while read -r l; do echo \"$l\"; done < \"$v/log\"; exit 1; }}\n\
psql -q -h /tmp -U postgres -d postgres \
-c \"CREATE DATABASE masctl_verify TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'\"\n\
pg_restore -h /tmp -U postgres -d masctl_verify --no-owner --no-privileges --exit-on-error -j 2 /backups/{file}.tmp\n\
echo verified {file}\n"
    )
}

/// The throwaway server's data directory under `backups/` (not a `.dump`, so
/// never listed as a backup).
const VERIFY_PREFIX: &str = ".verify-";

/// Dumps each database; returns the verified files. A failed dump leaves nothing.
pub async fn run(layout: &Layout, systemd: &Systemd, manifest: &Manifest, label: &str) -> Result<Vec<PathBuf>> {
    // One stamp for every database: the dumps of one run form a set (`masctl restore`).
    let stamp = timestamp::compact(SystemTime::now());
    let dest = Destination { dir: layout.backups(), name: &|db: Database| format!("{db}-{stamp}-{label}.dump") };
    dump_into(layout, systemd, manifest, &dest).await
}

/// Where verified dumps go: a directory and each database's file name in it.
pub struct Destination<'a> {
    pub dir: PathBuf,
    pub name: &'a dyn Fn(Database) -> String,
}

/// Dumps each database into `dest` (made 0700, owned by Postgres's user, so the
/// job's container can write there); returns the verified files.
pub async fn dump_into(
    layout: &Layout,
    systemd: &Systemd,
    manifest: &Manifest,
    dest: &Destination<'_>,
) -> Result<Vec<PathBuf>> {
    let dir = &dest.dir;
    prepare_dir(dir)?;
    let mut made = Vec::new();
    for db in &manifest.databases {
        made.push(
            dump_one(layout, systemd, manifest, dir, (*db, Source::Live), &(dest.name)(*db), Verify::Restore).await?,
        );
    }
    Ok(made)
}

/// A verified dump of the database a restore replaced (`masctl_old_<db>`) into
/// `backups/` as `file`.
pub async fn dump_replaced(
    layout: &Layout,
    systemd: &Systemd,
    manifest: &Manifest,
    db: Database,
    file: &str,
) -> Result<PathBuf> {
    let dir = layout.backups();
    prepare_dir(&dir)?;
    dump_one(layout, systemd, manifest, &dir, (db, Source::Replaced), file, Verify::Restore).await
}

/// A dump directory a job's container (Postgres's user) can write and no one else reads.
pub fn prepare_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::os::unix::fs::chown(dir, Some(POSTGRES.uid()), Some(POSTGRES.uid()))?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok(())
}

/// Whether a dump is verified by its own job or by its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verify {
    /// Restored into a scratch database, then renamed to its name.
    Restore,
    /// Left at `NAME.tmp` for the caller, who renames it once it has verified it.
    ByCaller,
}

/// Dumps each of the stack's own databases (Postgres on this host only) into
/// `dir` as `NAME.tmp`, unverified: the caller verifies them and renames them to
/// their names, or removes them. Returns the `.tmp` files.
pub async fn dump_unverified(
    layout: &Layout,
    systemd: &Systemd,
    manifest: &Manifest,
    dir: &Path,
    name: &dyn Fn(Database) -> String,
) -> Result<Vec<(Database, PathBuf)>> {
    prepare_dir(dir)?;
    let mut made = Vec::new();
    for db in &manifest.databases {
        let file = name(*db);
        made.push((*db, dump_one(layout, systemd, manifest, dir, (*db, Source::Live), &file, Verify::ByCaller).await?));
    }
    Ok(made)
}

async fn dump_one(
    layout: &Layout,
    systemd: &Systemd,
    manifest: &Manifest,
    dir: &Path,
    (db, from): (Database, Source),
    file: &str,
    verify: Verify,
) -> Result<PathBuf> {
    let host = POSTGRES.container(&manifest.instance);
    let ext = manifest.external_postgres.as_ref();
    let (script, pgpass) = match (ext, verify) {
        (Some(_), _) if from == Source::Replaced => bail!("a replaced database is for this host's own Postgres only"),
        (Some(e), Verify::Restore) => {
            let login = e.databases.get(&db).with_context(|| format!("the manifest has no login for {db}"))?;
            (external_script(&e.host, e.port, login, db, file), crate::secrets::EXTERNAL_PGPASS)
        }
        (Some(_), Verify::ByCaller) => bail!("an unverified dump is for this host's own Postgres only"),
        (None, Verify::Restore) => (script(&host, db, from, file), "postgres-superuser-pgpass"),
        (None, Verify::ByCaller) => (unverified_script(&host, db, file), "postgres-superuser-pgpass"),
    };
    let job = OneShot {
        image: manifest.images[&POSTGRES].clone(),
        user: POSTGRES.user(),
        entrypoint: Some(vec!["sh".into(), "-c".into(), script]),
        cmd: vec![],
        binds: vec![Bind::rw(dir, "/backups"), Bind::secret(layout.secret(pgpass), "pgpass")],
        network: Some(manifest.instance.clone()),
        env: vec!["PGPASSFILE=/run/secrets/pgpass".into()],
    };
    let tmp = dir.join(format!("{file}.tmp"));
    let dest = dir.join(file);
    // The unit itself renames a verified dump (or removes a failed one), so a
    // dropped session cannot leave a verified backup under its temporary name.
    let mut spec = JobSpec::new("backup", job);
    let dest = match verify {
        Verify::Restore => {
            spec.rename_on_success.push((tmp.display().to_string(), dest.display().to_string()));
            dest
        }
        Verify::ByCaller => tmp.clone(),
    };
    spec.remove_on_failure.push(tmp.display().to_string());
    spec.extra_networks.extend(ext.and_then(|e| e.network.clone()));
    if ext.is_some() {
        // Left by a job whose unit was killed before its own clean-up.
        let scratch = dir.join(format!("{VERIFY_PREFIX}{db}"));
        if scratch.exists() {
            std::fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()))?;
        }
        spec.remove_dirs_after.push(scratch.display().to_string());
    }
    let description = format!("masctl backup of {db}");
    let run = super::run(layout, systemd, &description, spec);
    let size_of = || std::fs::metadata(&tmp).or_else(|_| std::fs::metadata(&dest)).map_or(0, |m| m.len());
    let (code, captured) = crate::progress::watch(&format!("dump {db}"), last_size(dir, db), size_of, run).await?;
    if code != 0 {
        return Err(super::failed(&format!("the backup of {db}"), code, &captured));
    }
    let size = std::fs::metadata(&dest).with_context(|| format!("{} is missing", dest.display()))?.len();
    if size == 0 {
        bail!("the backup of {db} is empty");
    }
    Ok(dest)
}

/// The size of the newest dump of `db` in `dir`: what the next one is expected to
/// come to, for an ETA (None before the first).
fn last_size(dir: &Path, db: Database) -> Option<u64> {
    let prefix = format!("{db}-");
    list(dir).ok()?.into_iter().rev().find(|(n, _)| n.starts_with(&prefix)).map(|(_, s)| s)
}

/// The verified backup a job that replaces data takes first; `what` names the job
/// in the refusal ("no backup of the current state, no restore").
pub async fn first(ctx: &JobContext<'_>, label: &str, what: &str) -> Result<Vec<PathBuf>> {
    crate::ui::step("backing up the current state first");
    let files = run(ctx.layout, &ctx.systemd, &ctx.manifest, label)
        .await
        .with_context(|| format!("no backup of the current state, no {what}"))?;
    for f in &files {
        crate::ui::step(format!("verified backup {}", f.display()));
    }
    Ok(files)
}

/// Backups on disk, newest last: (file name, bytes).
pub fn list(dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".dump") {
                out.push((name, e.metadata()?.len()));
            }
        }
    }
    out.sort_by(|a, b| a.0.split_once('-').map(|x| x.1).cmp(&b.0.split_once('-').map(|x| x.1)).then(a.0.cmp(&b.0)));
    Ok(out)
}
