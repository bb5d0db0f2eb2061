//! Off-host backups as operations: `masctl backup` (dump, verify, push to every
//! repository), `masctl backups --remote`, and `masctl restore --from`, which
//! fetches a snapshot whole and checks it before it replaces anything.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::generation::generations;
use crate::generation::layout::Layout;
use crate::generation::manifest::BackupPlan;
use crate::jobs::offsite::{self, Pushed, SetTags, Snapshot};
use crate::jobs::restore::{self, BackupSet, RestoredDb};
use crate::jobs::{JobContext, backup};
use crate::service::{Database, Service};
use crate::{timestamp, ui};

/// What `masctl backup` did.
#[derive(Debug, Serialize)]
pub struct BackedUp {
    pub files: Vec<PathBuf>,
    pub pushed: Vec<Pushed>,
}

/// Dumps and verifies every database, then pushes the set to each repository of
/// the generation's `[backup]`. Every repository is tried; any that fails makes
/// the whole run fail (after the others), so a timer's unit fails loudly.
pub async fn backup(layout: &Layout, scheduled: bool) -> Result<BackedUp> {
    let _lock = generations::lock(layout, "backup")?;
    let ctx = JobContext::load(layout).await?;
    // What an earlier restore replaced gets its backup too, before this one's.
    crate::jobs::replaced::settle(&ctx).await?;
    let label = if scheduled { "scheduled" } else { "manual" };
    let files = backup::run(layout, &ctx.systemd, &ctx.manifest, label).await?;
    let Some(plan) = ctx.manifest.backup.clone() else {
        if scheduled {
            bail!("generation {} has no [backup]: nothing to push", ctx.number);
        }
        return Ok(BackedUp { files, pushed: vec![] });
    };
    let tags = tags(&ctx, &files).await?;
    let mut pushed = Vec::new();
    let mut failed = Vec::new();
    for repo in &plan.repositories {
        ui::step(format!("pushing set {} to {}", tags.set, repo.name));
        match offsite::push(&ctx, &plan, repo, &files, &tags).await {
            Ok(p) => {
                offsite::record(layout, &p)?;
                ui::step(format!(
                    "snapshot {} in {}: {} added ({} new, {} changed, {} unchanged files)",
                    short(&p.snapshot),
                    p.repository,
                    ui::human_bytes(p.added_bytes),
                    p.files_new,
                    p.files_changed,
                    p.files_unmodified
                ));
                pushed.push(p);
            }
            Err(e) => {
                ui::warn(format!("{e:#}"));
                failed.push(repo.name.clone());
            }
        }
    }
    if !failed.is_empty() {
        bail!("the backup was verified but could not be pushed to {}", failed.join(", "));
    }
    Ok(BackedUp { files, pushed })
}

fn short(id: &str) -> &str {
    crate::ui::abbrev(id, 8)
}

/// The set's tags: its id (from its files' names), the generation, and what its
/// databases need of the images that will serve them.
async fn tags(ctx: &JobContext<'_>, files: &[PathBuf]) -> Result<SetTags> {
    let names: Vec<String> = files.iter().filter_map(|f| Some(f.file_name()?.to_string_lossy().into_owned())).collect();
    let set = restore::sets(&names).pop().context("the backup made no set")?;
    let mut t = SetTags { set: set.id, generation: ctx.number, ..Default::default() };
    if ctx.manifest.external_postgres.is_none() {
        if let Some(s) = restore::synapse_schema(ctx, Database::Synapse.name()).await? {
            (t.synapse_schema, t.synapse_compat) = (Some(s.version), s.compat);
        }
        if ctx.manifest.databases.contains(&Database::Mas) {
            t.mas_migration = restore::mas_migrations(ctx, Database::Mas.name()).await?.last().copied();
        }
    }
    Ok(t)
}

fn plan_of(ctx: &JobContext) -> Result<BackupPlan> {
    ctx.manifest.backup.clone().with_context(|| {
        format!(
            "generation {} has no [backup]: add [[backup.repository]] to the config and `masctl switch`",
            ctx.number
        )
    })
}

/// One repository's snapshots, for `masctl backups --remote`.
#[derive(Debug, Serialize)]
pub struct RemoteList {
    pub repository: String,
    pub snapshots: Vec<Snapshot>,
}

/// The snapshots of every repository (or of the one `from` names).
pub async fn snapshots(layout: &Layout, from: Option<&str>) -> Result<Vec<RemoteList>> {
    let ctx = JobContext::load(layout).await?;
    let plan = plan_of(&ctx)?;
    let repos = match from {
        Some(f) => vec![offsite::find_repo(&plan, f)?.clone()],
        None => plan.repositories.clone(),
    };
    let mut out = Vec::new();
    for repo in &repos {
        out.push(RemoteList { repository: repo.name.clone(), snapshots: offsite::snapshots(&ctx, &plan, repo).await? });
    }
    Ok(out)
}

/// What `masctl restore --from` did.
#[derive(Debug, Serialize)]
pub struct RestoredFrom {
    pub repository: String,
    pub snapshot: String,
    pub set: String,
    /// The backup of this host's state before the restore.
    pub backup_before: Vec<PathBuf>,
    pub databases: Vec<RestoredDb>,
    /// Secrets replaced by the snapshot's; this host's own are kept in `secrets_before`.
    pub secrets: Vec<String>,
    pub secrets_before: PathBuf,
    pub media_files: u64,
    pub generation: u32,
}

/// Fetches a snapshot whole, checks it against the images (its tags before the
/// fetch, its dumps loaded into scratch databases after), and only then stops
/// what uses the databases, swaps them in, puts the server's secrets (its signing
/// key…) and media in place and starts the generation again.
pub async fn restore_from(
    layout: &Layout,
    from: &str,
    wanted: Option<&str>,
    timeout: Duration,
) -> Result<RestoredFrom> {
    let _lock = generations::lock(layout, "restore")?;
    let ctx = JobContext::load(layout).await?;
    ctx.refuse_external_postgres("masctl restore --from", "restore the dumps of the snapshot with pg_restore there")?;
    ctx.require_active(&[Service::Postgres], Duration::from_secs(60)).await?;
    let plan = plan_of(&ctx)?;
    let repo = offsite::find_repo(&plan, from)?.clone();
    let snapshots = offsite::snapshots(&ctx, &plan, &repo).await?;
    let snap = offsite::pick(&snapshots, wanted, &repo.name)?.clone();
    ui::step(format!(
        "restoring snapshot {} (set {}, generation {}) from {}",
        short(&snap.id),
        snap.tags.set,
        snap.tags.generation,
        repo.name
    ));
    check_tags(&ctx, &snap).await?;

    // Removed however the restore ends: it holds the snapshot's secrets.
    let staging = tempfile::Builder::new().prefix(".restore-staging-").tempdir_in(layout.root())?;
    let set_dir = offsite::fetch(&ctx, &plan, &repo, &snap, staging.path()).await?;
    let set = fetched_set(&set_dir, &ctx.manifest.databases)?;
    for d in &set.dumps {
        place_dump(&set_dir.join("dumps").join(&d.file), &layout.backups().join(&d.file))?;
    }
    // Fetched and checked; the databases are loaded and checked before anything is replaced.
    let stamp = timestamp::compact(SystemTime::now());
    let secrets_before = layout.backups().join(format!("secrets-before-{stamp}"));
    let (restored, (secrets, media_files)) = restore::replace_with(&ctx, &set, timeout, || {
        let secrets = place_secrets(&set_dir.join("secrets"), &layout.secrets(), &secrets_before)?;
        let media = merge_dir(&set_dir.join("media"), &layout.data("synapse").join("media"))?;
        ui::step(format!("put {} secret(s) and {media} media file(s) in place; starting the stack", secrets.len()));
        Ok((secrets, media))
    })
    .await?;
    Ok(RestoredFrom {
        repository: repo.name,
        snapshot: snap.id,
        set: restored.set,
        backup_before: restored.backup_before,
        databases: restored.databases,
        secrets,
        secrets_before,
        media_files,
        generation: restored.generation,
    })
}

/// A snapshot newer than the images can serve is refused before it is fetched.
async fn check_tags(ctx: &JobContext<'_>, snap: &Snapshot) -> Result<()> {
    let t = &snap.tags;
    if let (Some(version), Some(image)) = (t.synapse_schema, ctx.manifest.images.get(&Service::Synapse)) {
        let serves = restore::image_synapse_schema(ctx.layout, image).await?;
        restore::synapse_servable(restore::SynapseSchema { version, compat: t.synapse_compat }, serves)
            .map_err(|e| anyhow::anyhow!("refusing snapshot {}: {e}", short(&snap.id)))?;
    }
    if let Some(m) = t.mas_migration.filter(|_| ctx.manifest.databases.contains(&Database::Mas)) {
        let live = restore::mas_migrations(ctx, Database::Mas.name()).await?;
        if live.last().is_some_and(|l| m > *l) {
            bail!(
                "refusing snapshot {}: its MAS database has migration {m}, which the running MAS image does not \
know: it was written by a newer MAS",
                short(&snap.id)
            );
        }
    }
    Ok(())
}

/// The fetched set: one dump of each database the generation runs, the secrets
/// (with the signing key) and the config.
fn fetched_set(dir: &Path, databases: &[Database]) -> Result<BackupSet> {
    let names: Vec<String> = std::fs::read_dir(dir.join("dumps"))
        .with_context(|| format!("the snapshot has no dumps ({})", dir.display()))?
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    let sets = restore::sets(&names);
    let [set] = sets.as_slice() else { bail!("the snapshot holds {} backup sets, not one", sets.len()) };
    if let Some(db) = databases.iter().find(|d| !set.dumps.iter().any(|x| x.database == **d)) {
        bail!("the snapshot has no dump of {db}, which the current generation runs");
    }
    for needed in ["secrets/synapse-signing.key", "config/masctl.toml"] {
        if !dir.join(needed).is_file() {
            bail!("the snapshot has no {needed}");
        }
    }
    Ok(set.clone())
}

/// A fetched dump into `backups/` under its own name (the same set already there is kept).
fn place_dump(from: &Path, to: &Path) -> Result<()> {
    backup::prepare_dir(to.parent().context("the backups directory")?)?;
    if !to.exists() {
        std::fs::rename(from, to).with_context(|| format!("moving {} into {}", from.display(), to.display()))?;
    }
    Ok(())
}

/// The snapshot's secrets in place of this host's, except those bound to this
/// host (its Postgres roles' passwords, its repositories'); each replaced one is
/// kept in `keep` first. Returns the names put in place.
fn place_secrets(from: &Path, secrets: &Path, keep: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(keep)?;
    std::fs::set_permissions(keep, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let mut placed = Vec::new();
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if crate::secrets::host_bound(&name) || !e.file_type()?.is_file() {
            continue;
        }
        let dest = secrets.join(&name);
        if std::fs::read(&dest).ok() == Some(std::fs::read(e.path())?) {
            continue;
        }
        if dest.exists() {
            std::fs::copy(&dest, keep.join(&name))?;
        }
        std::fs::rename(e.path(), &dest)?;
        placed.push(name);
    }
    placed.sort();
    crate::fsutil::fsync_dir(secrets)?;
    Ok(placed)
}

/// Moves every file of `from` that `to` lacks into it (media files never change
/// once written, so one present is kept); returns how many moved.
fn merge_dir(from: &Path, to: &Path) -> Result<u64> {
    if !from.is_dir() {
        return Ok(0);
    }
    if !to.exists() {
        let meta = std::fs::metadata(from)?;
        std::fs::create_dir_all(to)?;
        std::os::unix::fs::chown(
            to,
            Some(std::os::unix::fs::MetadataExt::uid(&meta)),
            Some(std::os::unix::fs::MetadataExt::gid(&meta)),
        )?;
    }
    let mut moved = 0;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            moved += merge_dir(&e.path(), &dest)?;
        } else if !dest.exists() {
            std::fs::rename(e.path(), &dest)?;
            moved += 1;
        }
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, text: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn secrets_keep_the_hosts_own_and_a_copy_of_what_they_replace() {
        let d = tempfile::tempdir().unwrap();
        let (from, to, keep) = (d.path().join("from"), d.path().join("to"), d.path().join("keep"));
        for (name, a, b) in [
            ("synapse-signing.key", Some("ed25519 a_old"), "ed25519 a_new"),
            ("mas-encryption", None, "enc"),
            ("postgres-superuser", Some("pw-b"), "pw-a"),
            ("synapse-macaroon", Some("same"), "same"),
        ] {
            if let Some(a) = a {
                write(&to.join(name), a);
            }
            write(&from.join(name), b);
        }
        let placed = place_secrets(&from, &to, &keep).unwrap();
        assert_eq!(placed, ["mas-encryption", "synapse-signing.key"]);
        assert_eq!(std::fs::read_to_string(to.join("synapse-signing.key")).unwrap(), "ed25519 a_new");
        assert_eq!(std::fs::read_to_string(keep.join("synapse-signing.key")).unwrap(), "ed25519 a_old");
        assert_eq!(std::fs::read_to_string(to.join("postgres-superuser")).unwrap(), "pw-b", "host-bound");
    }

    #[test]
    fn media_merge_adds_and_never_overwrites() {
        let d = tempfile::tempdir().unwrap();
        let (from, to) = (d.path().join("from"), d.path().join("to"));
        write(&from.join("local_content/ab/cd/ef"), "new");
        write(&from.join("local_content/xx/yy/zz"), "theirs");
        write(&to.join("local_content/xx/yy/zz"), "ours");
        assert_eq!(merge_dir(&from, &to).unwrap(), 1);
        assert_eq!(std::fs::read_to_string(to.join("local_content/ab/cd/ef")).unwrap(), "new");
        assert_eq!(std::fs::read_to_string(to.join("local_content/xx/yy/zz")).unwrap(), "ours");
        assert_eq!(merge_dir(&d.path().join("none"), &to).unwrap(), 0);
    }

    #[test]
    fn a_fetched_set_must_be_whole() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        write(&dir.join("dumps/synapse-20261207T100000Z-scheduled.dump"), "x");
        let both = [Database::Synapse, Database::Mas];
        assert!(fetched_set(dir, &both).unwrap_err().to_string().contains("no dump of mas"));
        assert!(fetched_set(dir, &[Database::Synapse]).unwrap_err().to_string().contains("signing.key"));
        write(&dir.join("secrets/synapse-signing.key"), "k");
        write(&dir.join("config/masctl.toml"), "c");
        assert_eq!(fetched_set(dir, &[Database::Synapse]).unwrap().id, "20261207T100000Z-scheduled");
    }
}
