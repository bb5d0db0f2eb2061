//! `masctl switch | rollback | status | generations | diff | gc`.

use std::time::{Duration, SystemTime};

use anyhow::Result;

use crate::context::{ConfiguredContext, Context};
use crate::declared_users::Step;
use crate::ops::switch::{RollbackOptions, SwitchOptions, Switched};
use crate::ops::{gc as gc_op, history, status as status_op, switch as switch_op};
use crate::{timestamp, ui};

/// At most the first 12 characters, as a short hash.
fn short(hash: &str) -> &str {
    crate::ui::abbrev(hash, 12)
}

pub async fn switch(ctx: &ConfiguredContext, opts: SwitchOptions) -> Result<()> {
    match switch_op::switch(ctx, opts).await? {
        Switched::Planned(plan, users) => {
            for line in plan.describe(true) {
                println!("{}", ui::paint_line(&line));
            }
            if plan.is_noop() {
                println!("no changes");
            }
            match users {
                Ok(steps) => steps.iter().for_each(|s| println!("{}", s.describe())),
                Err(why) => ui::warn(format!("cannot tell which declared users exist: {why}")),
            }
        }
        Switched::Done { generation, changed, client_url, users } => {
            for s in &users {
                match s {
                    Step::Drift { .. } => ui::warn(s.describe()),
                    _ => ui::step(format!("{}: done", s.describe())),
                }
            }
            if changed {
                ui::step(format!("switched to generation {generation}"));
            } else {
                ui::step(format!("generation {generation} is current and running; nothing changed"));
            }
            println!("Synapse answers at {client_url}");
        }
    }
    Ok(())
}

pub async fn rollback(ctx: &Context, opts: RollbackOptions, json: bool) -> Result<()> {
    if json {
        crate::jobs::output_to_stderr();
    }
    let done = switch_op::rollback(ctx, opts).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&done)?);
        return Ok(());
    }
    if let Some(r) = &done.restored {
        println!(
            "restored {} from backup {} (taken before generation {})",
            crate::service::names(&r.databases),
            r.set,
            done.from
        );
        if let Some(b) = &r.backup_before {
            println!("the state before is in backup {b} — `masctl restore {b}` brings it back");
        }
    }
    ui::step(format!("rolled back to generation {}", done.generation));
    Ok(())
}

pub async fn status(ctx: &Context, json: bool) -> Result<()> {
    let Some(report) = status_op::status(ctx).await? else {
        if json {
            println!(
                "{}",
                serde_json::json!({"generation": null, "units": [], "containers": [], "matches_current": false})
            );
        } else {
            println!("nothing has been switched to yet (state root {})", ctx.layout.root().display());
        }
        return Ok(());
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("generation {} ({})", report.generation.unwrap_or(0), short(report.hash.as_deref().unwrap_or("")));
    for u in &report.units {
        println!("  {:<44} {:<10} {}", u.name, u.active_state, u.sub_state);
    }
    for c in &report.containers {
        let img = c.image.as_deref().unwrap_or("-");
        let health = c.health.map_or("absent", |h| h.as_str());
        println!("  {:<44} {:<10} {}", c.name, health, &img[..img.len().min(19)]);
    }
    for b in report.backups.iter().flatten() {
        match b.age_secs {
            Some(age) => println!(
                "  last backup to {}: {} ago",
                b.repository,
                ui::human_duration(std::time::Duration::from_secs(age))
            ),
            None => println!("  last backup to {}: never", b.repository),
        }
    }
    println!(
        "{}",
        if report.matches_current {
            "running as the current generation says"
        } else {
            "NOT matching the current generation"
        }
    );
    Ok(())
}

pub fn generations(ctx: &Context, json: bool) -> Result<()> {
    let (all, current) = history::list(ctx)?;
    let records = crate::ops::switch_backups::records(&ctx.layout);
    let record = |n: u32| records.iter().find(|r| r.generation == n);
    if json {
        let rows: Vec<_> = all
            .iter()
            .map(|g| {
                serde_json::json!({
                    "number": g.number,
                    "created": g.created.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                    "hash": g.hash(),
                    "current": Some(g.number) == current,
                    // The backup taken before the switch into it (a stateful image changed).
                    "backup_before": record(g.number),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    for g in &all {
        let mark = if Some(g.number) == current { "  (current)" } else { "" };
        let data = record(g.number).map_or(String::new(), |r| format!("  {}", crate::ops::switch_backups::describe(r)));
        println!("{:>4}  {}  {}{mark}{data}", g.number, timestamp::date_time(g.created), short(&g.hash()));
    }
    Ok(())
}

pub fn diff(ctx: &Context, a: Option<u32>, b: Option<u32>) -> Result<()> {
    let (a, b, lines) = history::diff(ctx, a, b)?;
    println!("generation {a} -> {b}");
    if lines.is_empty() {
        println!("  identical");
    }
    for l in lines {
        println!("{}", ui::paint_line(&format!("  {l}")));
    }
    Ok(())
}

pub async fn gc(ctx: &Context, keep: Option<usize>, older_than: Option<Duration>) -> Result<()> {
    let (generations, entries) = gc_op::gc(ctx, keep, older_than).await?;
    ui::step(format!("deleted {generations} generations and {entries} store entries"));
    Ok(())
}
