//! `data/` of an export: the running Synapse schema, verified dumps under the
//! chart's database names, and the media store as an archive with checksums.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use sha2::{Digest, Sha256};

use crate::docker::OneShot;
use crate::export::ess::input::DbSchema;
use crate::jobs::backup::{self, Destination};
use crate::jobs::{JobContext, JobSpec};
use crate::service::{Database, Service};

/// `schema <version> compat <compat>` as the job prints it.
pub fn parse_schema(out: &str) -> Option<DbSchema> {
    let line = out.lines().find(|l| l.starts_with("schema "))?;
    let mut w = line.split_whitespace();
    let version = w.nth(1)?.parse().ok()?;
    let compat_version = match (w.next(), w.next()) {
        (Some("compat"), Some(c)) => c.parse().ok(),
        _ => None,
    };
    Some(DbSchema { version, compat_version })
}

/// Reads `schema_version` / `schema_compat_version` with psql in the Postgres image.
pub async fn schema(ctx: &JobContext<'_>) -> Result<Option<DbSchema>> {
    let m = &ctx.manifest;
    let (host, port, db, user, pgpass) = match &m.external_postgres {
        Some(e) => {
            let l = e.databases.get(&Database::Synapse).context("the manifest has no login for synapse")?;
            (e.host.clone(), e.port, l.database.clone(), l.user.clone(), crate::secrets::EXTERNAL_PGPASS)
        }
        None => (
            Service::Postgres.container(&m.instance),
            5432,
            Database::Synapse.name().into(),
            "postgres".into(),
            "postgres-superuser-pgpass",
        ),
    };
    let q = "SELECT 'schema ' || v.version || coalesce(' compat ' || c.compat_version, '') FROM schema_version v \
LEFT JOIN schema_compat_version c ON true";
    let script = format!("set -e\npsql -At -h {host} -p {port} -U {user} -d {db} -c \"{q}\"\n");
    let job = OneShot {
        image: m.images[&Service::Postgres].clone(),
        user: Service::Postgres.user(),
        entrypoint: Some(vec!["sh".into(), "-c".into(), script]),
        cmd: vec![],
        binds: vec![crate::spec::Bind::secret(ctx.layout.secret(pgpass), "pgpass")],
        network: Some(m.instance.clone()),
        env: vec!["PGPASSFILE=/run/secrets/pgpass".into()],
    };
    let (code, out) = ctx.run("masctl export: Synapse schema", JobSpec::new("export-schema", job)).await?;
    Ok(if code == 0 { parse_schema(&out) } else { None })
}

/// Verified `pg_dump -Fc` dumps into `data/`, one per database;
/// handed back to root, who owns the rest of the export.
pub async fn dumps(ctx: &JobContext<'_>, data: &Path) -> Result<Vec<PathBuf>> {
    // masctl's names (`synapse`, `mas`): RUNBOOK.md restores them under the chart's.
    let name = |db: Database| format!("{db}.dump");
    let dest = Destination { dir: data.to_path_buf(), name: &name };
    let files = backup::dump_into(ctx.layout, &ctx.systemd, &ctx.manifest, &dest).await?;
    for p in files.iter().map(PathBuf::as_path).chain([data]) {
        std::os::unix::fs::chown(p, Some(0), Some(0)).with_context(|| format!("chown {}", p.display()))?;
    }
    Ok(files)
}

/// Every regular file under `root`, relative to it, sorted.
fn files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for e in std::fs::read_dir(root.join(&rel)).with_context(|| format!("reading {}", root.join(&rel).display()))? {
            let e = e?;
            let (t, r) = (e.file_type()?, rel.join(e.file_name()));
            if t.is_dir() {
                todo.push(r);
            } else if t.is_file() {
                out.push(r);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// `data/media.tar` (paths relative to the media store) and `data/media.sha256`
/// (`sha256sum -c` format, one line per file); the number of files.
pub fn media(media_store: &Path, data: &Path) -> Result<usize> {
    let list = if media_store.is_dir() { files(media_store)? } else { vec![] };
    let bar = crate::ui::count_bar(list.len() as u64, "media files");
    let tar_path = data.join("media.tar");
    let mut tar = tar::Builder::new(BufWriter::new(std::fs::File::create(&tar_path)?));
    let mut sums = String::new();
    for rel in &list {
        let abs = media_store.join(rel);
        tar.append_path_with_name(&abs, rel).with_context(|| format!("archiving {}", abs.display()))?;
        sums.push_str(&format!("{}  {}\n", sha256_file(&abs)?, rel.display()));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut w = tar.into_inner()?;
    w.flush()?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::write(data.join("media.sha256"), sums)?;
    if list.is_empty() && media_store.is_dir() {
        crate::ui::detail("the media store is empty");
    } else if !media_store.is_dir() {
        bail!("no media store at {}", media_store.display());
    }
    Ok(list.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_schema_line() {
        let cases = [
            ("schema 92 compat 84\n", Some(DbSchema { version: 92, compat_version: Some(84) })),
            ("noise\nschema 90\n", Some(DbSchema { version: 90, compat_version: None })),
            ("", None),
            ("schema x", None),
        ];
        for (out, want) in cases {
            assert_eq!(parse_schema(out), want, "{out:?}");
        }
    }

    #[test]
    fn archives_media_with_checksums() {
        let d = tempfile::tempdir().unwrap();
        let (store, data) = (d.path().join("media"), d.path().join("data"));
        std::fs::create_dir_all(store.join("local_content/ab")).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(store.join("local_content/ab/cd"), b"hello").unwrap();
        assert_eq!(media(&store, &data).unwrap(), 1);
        let sums = std::fs::read_to_string(data.join("media.sha256")).unwrap();
        assert_eq!(sums, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824  local_content/ab/cd\n");
        assert!(media(&d.path().join("none"), &data).is_err());
    }
}
