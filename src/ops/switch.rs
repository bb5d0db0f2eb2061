//! `switch` and `rollback`: make a generation current and running, or go back.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::generation;
use crate::activate::{Activator, Plan, switch_with_rollback, unit_dir};
use crate::context::Context;
use crate::docker::Engine;
use crate::generations::{self, Generations};
use crate::systemd::Systemd;

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

/// Builds the configured generation and activates it (rolling back if it fails).
pub async fn switch(ctx: &Context, dry_run: bool, timeout: Duration) -> Result<Switched> {
    let layout = &ctx.layout;
    generation::check_images(ctx.config()?, &ctx.images)?;
    let _lock = generations::lock(layout, "switch")?;
    let engine = Engine::connect().await?;
    let (store_path, manifest) = generation::build(ctx, &engine).await?;
    generation::check_mas_config(&engine, &manifest).await?;
    let systemd = Systemd::connect().await?;
    let a = Activator { layout, systemd: &systemd, engine: &engine, unit_dir: unit_dir(), timeout };
    let gens = Generations::new(layout);
    let current = gens.current()?;
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
pub async fn rollback(ctx: &Context, to: Option<u32>, timeout: Duration) -> Result<u32> {
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
    let systemd = Systemd::connect().await?;
    let a = Activator { layout, systemd: &systemd, engine: &engine, unit_dir: unit_dir(), timeout };
    switch_with_rollback(&a, &target, Some(&current)).await?;
    Ok(target.number)
}
