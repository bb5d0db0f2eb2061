//! `switch` and `rollback`: make a generation current and running, or go back.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::generation;
use crate::activate::handover::{self, Facts, Verdict};
use crate::activate::{Activator, Plan, switch_with_rollback, unit_dir};
use crate::context::Context;
use crate::docker::{Engine, ExecOutput};
use crate::eval::Manifest;
use crate::generations::{self, Generation, Generations};
use crate::layout::Layout;
use crate::service::Service;
use crate::spec::read_spec;
use crate::systemd::Systemd;
use crate::ui;

pub enum Switched {
    /// `--dry-run`: what a switch would do.
    Planned(Plan),
    Done {
        generation: u32,
        /// Whether anything was stopped, started or restarted.
        changed: bool,
        client_url: String,
    },
}

/// Refuses to hand logins from Synapse to MAS when that would lock users out
/// (see [`handover`]); with `force`, warns instead.
async fn guard_handover(
    layout: &Layout,
    engine: &Engine,
    from: Option<&Generation>,
    to: &Manifest,
    force: bool,
) -> Result<()> {
    let from_manifest = from.map(|g| g.manifest()).transpose()?;
    let from_mas = from_manifest.as_ref().map(|m| &m.mas);
    if !handover::hands_over(from_mas, &to.mas) {
        return Ok(());
    }
    let synapse_users = match &from_manifest {
        // Nothing has run here: a new Synapse has nobody to lose.
        None => Some(0),
        Some(m) => match m.services.get(&Service::Postgres) {
            Some(spec) => synapse_users(engine, &read_spec(spec)?.container).await,
            None => None,
        },
    };
    let facts = Facts { migrated: layout.mas_migrated().exists(), synapse_users };
    match handover::check(from_mas, &to.mas, facts) {
        Verdict::Allow => Ok(()),
        Verdict::Refuse(why) if force => {
            ui::warn(format!("{why} — switching anyway because of --force"));
            Ok(())
        }
        Verdict::Refuse(why) => bail!("{why}"),
    }
}

/// How many users Synapse's database holds (0 when it has no database or schema
/// yet); `None` when Postgres does not answer.
async fn synapse_users(engine: &Engine, postgres: &str) -> Option<u64> {
    let psql = |db: &str, sql: &str| -> Vec<String> {
        ["psql", "-h", "/run/postgresql", "-U", "postgres", "-d", db, "-tAc", sql].map(String::from).to_vec()
    };
    let ask = |cmd: Vec<String>| async move {
        match engine.exec_in(postgres, &cmd, &[], ExecOutput::Capture).await {
            Ok((0, out)) => out.trim().parse::<u64>().ok(),
            _ => None,
        }
    };
    if ask(psql("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'synapse'")).await? == 0 {
        return Some(0);
    }
    // query_to_xml runs the count only when the table exists (a plain subquery
    // would fail to plan without it).
    let count = "SELECT CASE WHEN to_regclass('public.users') IS NULL THEN 0 ELSE \
(xpath('/row/c/text()', query_to_xml('SELECT count(*) AS c FROM users', false, true, '')))[1]::text::bigint END";
    ask(psql("synapse", count)).await
}

/// Builds the configured generation and activates it (rolling back if it fails).
pub async fn switch(ctx: &Context, dry_run: bool, timeout: Duration, force: bool) -> Result<Switched> {
    let layout = &ctx.layout;
    let c = ctx.config()?;
    generation::check_images(c, &ctx.images)?;
    let engine = Engine::connect().await?;
    if let Some(why) = engine.foreign_network(c.instance.get_ref()).await? {
        return Err(c.at(c.instance.span(), format!("instance: {why}")));
    }
    let _lock = generations::lock(layout, "switch")?;
    let (store_path, manifest) = generation::build(ctx, &engine).await?;
    let gens = Generations::new(layout);
    let current = gens.current()?;
    guard_handover(layout, &engine, current.as_ref(), &manifest, force).await?;
    generation::check_mas_config(&engine, &manifest).await?;
    super::pg_upgrade::before_switch(ctx, &engine, current.as_ref(), &manifest, dry_run).await?;
    let systemd = Systemd::connect().await?;
    let a = Activator { layout, systemd: &systemd, engine: &engine, unit_dir: unit_dir(), timeout };
    if dry_run {
        return Ok(Switched::Planned(a.plan_for(&manifest)?));
    }
    let target = match &current {
        Some(c) if c.target == store_path => c.clone(),
        _ => gens.add(&store_path)?,
    };
    let plan = switch_with_rollback(&a, &target, current.as_ref()).await?;
    Ok(Switched::Done { generation: target.number, changed: !plan.is_noop(), client_url: manifest.client_url })
}

/// Switches back to generation `to` (default: the one before the current); its number.
pub async fn rollback(ctx: &Context, to: Option<u32>, timeout: Duration, force: bool) -> Result<u32> {
    let layout = &ctx.layout;
    let _lock = generations::lock(layout, "rollback")?;
    let gens = Generations::new(layout);
    let current = gens.current()?.context("nothing has been switched to yet")?;
    let target = match to {
        Some(n) => gens.get(n)?,
        None => gens.list()?.into_iter().rfind(|g| g.number < current.number).with_context(|| {
            format!("generation {} is the oldest; there is nothing to roll back to", current.number)
        })?,
    };
    if target.number == current.number {
        bail!("generation {} is already current", target.number);
    }
    let engine = Engine::connect().await?;
    // Images of an old generation may have been removed from Docker by hand.
    for (service, id) in &target.manifest()?.images {
        if engine.inspect(id).await?.is_none() {
            bail!(
                "image {id} of {service} (generation {}) is no longer in Docker; switch to a config instead",
                target.number
            );
        }
    }
    guard_handover(layout, &engine, Some(&current), &target.manifest()?, force).await?;
    let systemd = Systemd::connect().await?;
    let a = Activator { layout, systemd: &systemd, engine: &engine, unit_dir: unit_dir(), timeout };
    switch_with_rollback(&a, &target, Some(&current)).await?;
    Ok(target.number)
}
