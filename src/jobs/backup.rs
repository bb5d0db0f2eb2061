//! Database dumps into `backups/`, each verified by restoring it into a scratch
//! database before it counts as a backup.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

use super::{JobContext, JobSpec};
use crate::docker::OneShot;
use crate::eval::Manifest;
use crate::generations;
use crate::layout::Layout;
use crate::service::Service;
use crate::systemd::Systemd;
use crate::timestamp;

const POSTGRES: Service = Service::Postgres;

/// Dump, check the archive lists, restore into a scratch database, drop it. Runs in
/// the Postgres image (dash, pg_dump, pg_restore, psql); the password comes from a
/// mounted pgpass file, never the command line.
fn script(host: &str, db: &str, file: &str) -> String {
    format!(
        "set -e\n\
pg_dump -h {host} -U postgres -Fc -f /backups/{file}.tmp {db}\n\
pg_restore --list /backups/{file}.tmp > /dev/null\n\
psql -q -h {host} -U postgres -d postgres -c 'DROP DATABASE IF EXISTS masctl_verify' \
-c \"CREATE DATABASE masctl_verify TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'\"\n\
pg_restore -h {host} -U postgres -d masctl_verify --no-owner --exit-on-error /backups/{file}.tmp\n\
psql -q -h {host} -U postgres -d postgres -c 'DROP DATABASE masctl_verify'\n\
echo verified {file}\n"
    )
}

/// `masctl backup`: every database, under the state lock.
pub async fn manual(layout: &Layout) -> Result<Vec<PathBuf>> {
    let _lock = generations::lock(layout, "backup")?;
    let ctx = JobContext::load(layout).await?;
    run(layout, &ctx.systemd, &ctx.manifest, "manual").await
}

/// Dumps each database; returns the verified files. A failed dump leaves nothing.
pub async fn run(layout: &Layout, systemd: &Systemd, manifest: &Manifest, label: &str) -> Result<Vec<PathBuf>> {
    let dir = layout.backups();
    std::fs::create_dir_all(&dir)?;
    std::os::unix::fs::chown(&dir, Some(POSTGRES.uid()), Some(POSTGRES.uid()))?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let host = POSTGRES.container(&manifest.instance);
    let mut made = Vec::new();
    // One stamp for every database: the dumps of one run form a set (`masctl restore`).
    let stamp = timestamp::compact(SystemTime::now());
    for db in &manifest.databases {
        let file = format!("{db}-{stamp}-{label}.dump");
        let job = OneShot {
            image: manifest.images[&POSTGRES].clone(),
            user: POSTGRES.user(),
            entrypoint: Some(vec!["sh".into(), "-c".into(), script(&host, db, &file)]),
            cmd: vec![],
            binds: vec![
                format!("{}:/backups", dir.display()),
                format!("{}:/run/secrets/pgpass:ro", layout.secret("postgres-superuser-pgpass").display()),
            ],
            network: Some(manifest.instance.clone()),
            env: vec!["PGPASSFILE=/run/secrets/pgpass".into()],
        };
        let tmp = dir.join(format!("{file}.tmp"));
        let dest = dir.join(&file);
        // The unit itself renames a verified dump (or removes a failed one), so a
        // dropped session cannot leave a verified backup under its temporary name.
        let mut spec = JobSpec::new("backup", job);
        spec.rename_on_success.push((tmp.display().to_string(), dest.display().to_string()));
        spec.remove_on_failure.push(tmp.display().to_string());
        let (code, _) = super::run(layout, systemd, &format!("masctl backup of {db}"), spec).await?;
        if code != 0 {
            bail!("the backup of {db} failed (exit {code}); see its output above");
        }
        let size = std::fs::metadata(&dest).with_context(|| format!("{} is missing", dest.display()))?.len();
        if size == 0 {
            bail!("the backup of {db} is empty");
        }
        made.push(dest);
    }
    Ok(made)
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
