//! `masctl syn2mas | register-user | doctor | backup | backups`: one-off jobs, each
//! as a transient systemd unit (see `jobs/`).

use anyhow::{Result, bail};

use crate::cli::Syn2masCommand;
use crate::context::Context;
use crate::jobs::doctor::Level;
use crate::jobs::register_user::NewUser;
use crate::jobs::syn2mas::Step;
use crate::jobs::{backup, doctor as doctor_job, register_user as register_job, syn2mas as syn2mas_job};
use crate::ui;

pub async fn syn2mas(ctx: &Context, cmd: Syn2masCommand) -> Result<()> {
    let step = match cmd {
        Syn2masCommand::Check => Step::Check,
        Syn2masCommand::Migrate { dry_run: true } => Step::DryRun,
        Syn2masCommand::Migrate { dry_run: false } => Step::Migrate,
    };
    syn2mas_job::run(&ctx.layout, step).await
}

pub async fn register_user(
    ctx: &Context,
    name: &str,
    admin: bool,
    emails: &[String],
    password_file: Option<&std::path::Path>,
) -> Result<()> {
    register_job::run(&ctx.layout, &NewUser { name, admin, emails, password_file }).await
}

pub async fn doctor(ctx: &Context, json: bool) -> Result<()> {
    if json {
        // stdout is the JSON report alone; mas-cli doctor's own lines go to stderr.
        crate::jobs::output_to_stderr();
    }
    let findings = doctor_job::run(&ctx.layout).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for f in &findings {
            // The warning sign is narrow in most terminals: pad it to line up.
            let mark = if f.level == Level::Warning { "⚠️ " } else { f.level.mark() };
            println!("{mark} {}", f.message);
        }
    }
    let errors = findings.iter().filter(|f| f.level == Level::Error).count();
    if errors > 0 {
        bail!("doctor found {errors} problem(s)");
    }
    Ok(())
}

pub async fn backup(ctx: &Context, json: bool, scheduled: bool) -> Result<()> {
    if json {
        crate::jobs::output_to_stderr();
    }
    let done = crate::ops::offsite::backup(&ctx.layout, scheduled).await?;
    if json {
        let rows: Vec<_> = done
            .files
            .iter()
            .map(|f| serde_json::json!({"file": f, "size": std::fs::metadata(f).map_or(0, |m| m.len())}))
            .collect();
        // Without [backup] the output stays the list of files it always was.
        let out = match done.pushed.is_empty() {
            true => serde_json::json!(rows),
            false => serde_json::json!({"files": rows, "pushed": done.pushed}),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for f in &done.files {
        println!("{}", f.display());
    }
    for p in &done.pushed {
        println!("{} snapshot {}", p.repository, p.snapshot);
    }
    Ok(())
}

pub async fn remote_backups(ctx: &Context, from: Option<&str>, json: bool) -> Result<()> {
    if json {
        crate::jobs::output_to_stderr();
    }
    let lists = crate::ops::offsite::snapshots(&ctx.layout, from).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&lists)?);
        return Ok(());
    }
    for l in lists {
        println!("{}: {} snapshot(s)", l.repository, l.snapshots.len());
        for s in l.snapshots {
            let t = &s.tags;
            let schema = t.synapse_schema.map_or("-".to_string(), |v| v.to_string());
            let mas = t.mas_migration.map_or("-".to_string(), |v| v.to_string());
            println!(
                "  {}  {}  set {}  generation {}  synapse schema {schema}  mas migration {mas}",
                crate::ui::abbrev(&s.id, 8),
                s.time,
                t.set,
                t.generation
            );
        }
    }
    Ok(())
}

pub fn backups(ctx: &Context, json: bool) -> Result<()> {
    let dir = ctx.layout.backups();
    let list = backup::list(&dir)?;
    let records = crate::ops::switch_backups::records(&ctx.layout);
    // The generation a pre-switch backup precedes.
    let before = |name: &str| {
        records
            .iter()
            .find(|r| r.set.as_deref().is_some_and(|s| name.ends_with(&format!("-{s}.dump"))))
            .map(|r| r.generation)
    };
    if json {
        let rows: Vec<_> = list
            .iter()
            .map(|(n, s)| serde_json::json!({"file": n, "size": s, "before_generation": before(n)}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if list.is_empty() {
        println!("no backups in {}", dir.display());
    } else {
        for (n, s) in list {
            let g = before(&n).map_or(String::new(), |g| format!("  (before generation {g})"));
            println!("{:>10}  {n}{g}", ui::human_bytes(s));
        }
    }
    Ok(())
}
