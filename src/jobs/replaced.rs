//! The databases a restore, an import or a data rollback replaces are kept by
//! rename (`masctl_old_<db>`): untouched, they are the way back while the restored
//! stack starts. Once it is up, a transient unit dumps each one, verifies the dump
//! by a restore into a scratch database and only then drops it, off the command's
//! critical path. The next command that replaces, copies or backs up data waits for
//! that unit, and backs up (then drops) anything it left behind; until then the
//! kept databases stay where they are.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use super::{JobContext, backup};
use crate::docker::Engine;
use crate::generation::layout::Layout;
use crate::service::{Database, Service};
use crate::systemd::ActiveState;
use crate::ui;
use crate::unit_name::UnitName;

/// The job: back up the kept databases as the set `set` (`<stamp>-<label>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replaced {
    pub root: PathBuf,
    pub set: String,
}

/// What a swap leaves: the replaced databases, kept until [`Kept::back_up_later`].
#[must_use = "the replaced databases stay until they are backed up"]
#[derive(Debug)]
pub struct Kept {
    /// The backup set they will be in.
    pub set: String,
    pub files: Vec<PathBuf>,
}

impl Kept {
    /// `label` names the set (`pre-restore`), stamped now: the state it holds is
    /// the one just before the swap.
    pub fn new(layout: &Layout, dbs: &[Database], label: &str) -> Kept {
        let set = format!("{}-{label}", crate::timestamp::compact(SystemTime::now()));
        let files = dbs.iter().map(|d| layout.backups().join(file_name(*d, &set))).collect();
        Kept { set, files }
    }

    /// Starts the unit that backs them up and drops them; returns the files it writes.
    pub async fn back_up_later(self, ctx: &JobContext<'_>) -> Result<Vec<PathBuf>> {
        let unit = unit(&ctx.manifest.instance);
        // An ended run of it stays loaded ("active (exited)") until released.
        ctx.systemd.release_transient(&unit).await;
        let job = super::Job::Replaced(Box::new(Replaced { root: ctx.layout.root().to_path_buf(), set: self.set }));
        super::start_as(ctx.layout, &ctx.systemd, &unit, "masctl: backup of the replaced databases", job).await?;
        ui::step(format!(
            "the replaced databases are kept and backed up by {unit} (`journalctl -u {unit}`); \
the next restore or import waits for it"
        ));
        Ok(self.files)
    }
}

fn file_name(db: Database, set: &str) -> String {
    format!("{db}-{set}.dump")
}

/// The one unit that backs up an instance's replaced databases.
pub fn unit(instance: &str) -> UnitName {
    UnitName::transient("replaced-backup", instance)
}

/// The job's body.
pub async fn run(spec: &Replaced) -> Result<()> {
    let layout = Layout::new(&spec.root);
    let ctx = JobContext::load(&layout).await?;
    back_up(&ctx, &spec.set).await.map(|_| ())
}

/// Each kept database: a verified dump into the set, then the database dropped.
async fn back_up(ctx: &JobContext<'_>, set: &str) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for db in kept(ctx).await? {
        let file = backup::dump_replaced(ctx.layout, &ctx.systemd, &ctx.manifest, db, &file_name(db, set)).await?;
        ui::step(format!("verified backup {} of the replaced {db} database", file.display()));
        psql(ctx, &format!("DROP DATABASE {}", backup::Source::Replaced.database(db))).await?;
        files.push(file);
    }
    Ok(files)
}

/// The replaced databases the server still holds.
async fn kept(ctx: &JobContext<'_>) -> Result<Vec<Database>> {
    let names = psql(ctx, "SELECT datname FROM pg_database").await?;
    let names: Vec<&str> = names.lines().map(str::trim).collect();
    Ok(Database::ALL.into_iter().filter(|d| names.contains(&backup::Source::Replaced.database(*d).as_str())).collect())
}

/// Before a command replaces or copies data: the backup of what an earlier one
/// replaced is waited for, and whatever it left is backed up (then dropped) now;
/// if that fails, nothing goes on.
pub async fn settle(ctx: &JobContext<'_>) -> Result<()> {
    if ctx.manifest.external_postgres.is_some() {
        // masctl never restores into an external server, so it keeps nothing there.
        return Ok(());
    }
    let unit = unit(&ctx.manifest.instance);
    let state = ctx.systemd.unit_state(&unit).await?;
    match state.active_state {
        ActiveState::Activating => {
            ui::step(format!("waiting for the backup of the databases an earlier restore replaced ({unit})"));
            let code = super::attach(&ctx.systemd, &unit, &state.invocation_id).await?;
            if code != 0 {
                ui::warn(format!("{unit} failed (exit {code}); its databases are backed up now"));
            }
        }
        ActiveState::Active | ActiveState::Failed => ctx.systemd.release_transient(&unit).await,
        _ => {}
    }
    if kept(ctx).await?.is_empty() {
        return Ok(());
    }
    ui::step("backing up the databases an earlier restore replaced first");
    let set = format!("{}-replaced", crate::timestamp::compact(SystemTime::now()));
    back_up(ctx, &set).await.context(
        "the databases an earlier restore replaced (masctl_old_*) could not be backed up; they are kept, \
and nothing else was changed",
    )?;
    Ok(())
}

async fn psql(ctx: &JobContext<'_>, sql: &str) -> Result<String> {
    let host = Service::Postgres.container(&ctx.manifest.instance);
    let (code, out) = Engine::connect().await?.psql(&host, "postgres", sql).await?;
    if code != 0 {
        bail!("{sql:?} failed: {}", out.trim());
    }
    Ok(out)
}

/// Backup files, for a message.
pub fn shown(files: &[PathBuf]) -> String {
    files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
}
