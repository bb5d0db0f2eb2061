//! `switch` and `rollback`: make a generation current and running, or go back.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::switch_backups::{self, PreSwitch};
use super::{build, declared_users};
use crate::activate::handover::{self, Facts, Verdict};
use crate::activate::{Activator, Plan, unit_dir};
use crate::context::{ConfiguredContext, Context};
use crate::declared_users::Step;
use crate::docker::Engine;
use crate::generation::generations::{self, Generation, Generations};
use crate::generation::layout::Layout;
use crate::generation::manifest::Manifest;
use crate::jobs::JobContext;
use crate::service::Service;
use crate::spec::read_spec;
use crate::systemd::Systemd;
use crate::ui;

pub enum Switched {
    /// `--dry-run`: what a switch would do, and what it would do for `[[users]]`
    /// (`None`: it cannot tell, the reason given).
    Planned(Plan, std::result::Result<Vec<Step>, String>),
    Done {
        generation: u32,
        /// Whether anything was stopped, started or restarted.
        changed: bool,
        client_url: String,
        /// What was done (or reported) for `[[users]]`.
        users: Vec<Step>,
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
    let ask = |db: &'static str, sql: &'static str| async move {
        match engine.psql(postgres, db, sql).await {
            Ok((0, out)) => out.trim().parse::<u64>().ok(),
            _ => None,
        }
    };
    if ask("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'synapse'").await? == 0 {
        return Some(0);
    }
    // query_to_xml runs the count only when the table exists (a plain subquery
    // would fail to plan without it).
    let count = "SELECT CASE WHEN to_regclass('public.users') IS NULL THEN 0 ELSE \
(xpath('/row/c/text()', query_to_xml('SELECT count(*) AS c FROM users', false, true, '')))[1]::text::bigint END";
    ask("synapse", count).await
}

/// How `masctl switch` was asked to switch.
#[derive(Debug, Clone, Copy)]
pub struct SwitchOptions {
    /// Build and plan only: nothing on the host changes.
    pub dry_run: bool,
    /// How long the health gate waits.
    pub timeout: Duration,
    /// Switch although the handover guard or Synapse's pending background updates
    /// refuse (it warns instead).
    pub force: bool,
    /// Skip the backup before a stateful image changes (a warning instead).
    pub no_backup: bool,
    /// Set existing declared users' passwords from their password files again.
    pub reset_declared_passwords: bool,
}

/// Builds the configured generation and activates it (rolling back if it fails).
/// A change of a stateful image takes a verified backup first, unless `no_backup`.
pub async fn switch(ctx: &ConfiguredContext, opts: SwitchOptions) -> Result<Switched> {
    let SwitchOptions { dry_run, timeout, force, no_backup, .. } = opts;
    let layout = &ctx.layout;
    let c = ctx.config();
    build::check_images(c, &ctx.images)?;
    let engine = Engine::connect().await?;
    if let Some(why) = engine.foreign_network(c.instance.get_ref()).await? {
        return Err(c.at(c.instance.span(), format!("instance: {why}")));
    }
    let _lock = generations::lock(layout, "switch")?;
    let (store_path, manifest) = build::build(ctx, &engine).await?;
    let gens = Generations::new(layout);
    let current = gens.current()?;
    guard_handover(layout, &engine, current.as_ref(), &manifest, force).await?;
    build::check_mas_config(&engine, &manifest).await?;
    if !dry_run {
        super::background_updates::before_switch(&engine, current.as_ref(), &manifest, timeout, force).await?;
    }
    let upgrade_backup = super::pg_upgrade::before_switch(ctx, &engine, current.as_ref(), &manifest, dry_run).await?;
    let systemd = Systemd::connect().await?;
    let a = Activator { layout, systemd: &systemd, engine: &engine, unit_dir: unit_dir(), timeout };
    if dry_run {
        let users = preview_users(ctx, &engine, current.as_ref(), &manifest, opts.reset_declared_passwords).await;
        return Ok(Switched::Planned(a.plan_for(&manifest)?, users.map_err(|e| format!("{e:#}"))));
    }
    let pre = match &current {
        Some(c) if c.target != store_path => {
            switch_backups::before_switch(layout, c, &manifest, no_backup, upgrade_backup).await?
        }
        _ => None,
    };
    let target = match &current {
        Some(c) if c.target == store_path => c.clone(),
        _ => gens.add(&store_path)?,
    };
    let pre = pre.map(|p| switch_backups::PreSwitch { generation: target.number, ..p });
    if let Some(p) = &pre {
        switch_backups::save(layout, p)?;
    }
    let plan = switch_with_rollback(&a, &target, current.as_ref(), pre.as_ref()).await?;
    let inputs = declared_users::inputs(c);
    let delegating = manifest.mas.delegating;
    let users = declared_users::ensure(layout, inputs, delegating, opts.reset_declared_passwords, true)
        .await
        .with_context(|| format!("generation {} is running, but creating the declared users failed", target.number))?;
    Ok(Switched::Done { generation: target.number, changed: !plan.is_noop(), client_url: manifest.client_url, users })
}

/// What a switch would do for `[[users]]`, changing nothing: asked of the running
/// generation when it handles logins as the new one will; else every declared user
/// would be created (a server whose logins move has its users elsewhere).
async fn preview_users(
    ctx: &ConfiguredContext,
    engine: &Engine,
    current: Option<&Generation>,
    to: &Manifest,
    reset: bool,
) -> Result<Vec<Step>> {
    let inputs = declared_users::inputs(ctx.config());
    let running = match current {
        Some(g) => Some(g.manifest()?).filter(|m| m.mas.delegating == to.mas.delegating),
        None => None,
    };
    let Some(m) = running else {
        let none: Vec<_> = inputs.iter().map(|u| crate::declared_users::Step::Create(u.localpart.clone())).collect();
        return Ok(none);
    };
    if m.mas.delegating {
        return declared_users::ensure(&ctx.layout, inputs, true, reset, false).await;
    }
    let pg = m.services.get(&Service::Postgres).context("no Postgres of masctl's own: cannot read Synapse's users")?;
    declared_users::preview_from_synapse_db(engine, &read_spec(pg)?.container, &m.server_name, &inputs, reset).await
}

/// What a rollback did.
#[derive(Debug, serde::Serialize)]
pub struct RolledBack {
    pub generation: u32,
    pub from: u32,
    /// With `--restore-data`: the backup restored.
    pub restored: Option<switch_backups::DataRestored>,
}

/// How `masctl rollback` was asked to roll back.
#[derive(Debug, Clone, Copy)]
pub struct RollbackOptions {
    /// The generation to go back to [default: the one before the current].
    pub to: Option<u32>,
    /// How long the health gate waits.
    pub timeout: Duration,
    /// Roll back although the handover guard refuses (it warns instead).
    pub force: bool,
    /// Restore the backup taken before the switch into the current generation.
    pub restore_data: bool,
}

/// Switches back to generation `to` (default: the one before the current). Across
/// a switch that changed a stateful image, warns that the databases may be newer
/// than the old images and refuses when the old Synapse cannot serve them; with
/// `restore_data`, restores the backup taken before that switch first.
pub async fn rollback(ctx: &Context, opts: RollbackOptions) -> Result<RolledBack> {
    let RollbackOptions { to, timeout, force, restore_data } = opts;
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
    let restored = data_for_rollback(layout, &current, &target, restore_data).await?;
    let systemd = Systemd::connect().await?;
    let a = Activator { layout, systemd: &systemd, engine: &engine, unit_dir: unit_dir(), timeout };
    switch_with_rollback(&a, &target, Some(&current), None).await?;
    Ok(RolledBack { generation: target.number, from: current.number, restored })
}

/// The data side of a rollback from `current` to `target`: a warning, a refusal
/// when the old images cannot serve the databases, or (`restore`) the backup
/// taken before the switch into `current`, restored.
async fn data_for_rollback(
    layout: &Layout,
    current: &Generation,
    target: &Generation,
    restore: bool,
) -> Result<Option<switch_backups::DataRestored>> {
    let Some(rec) = switch_backups::crossing(layout, current, target)? else {
        if restore {
            bail!(
                "generations {} and {} run the same Postgres, Synapse and MAS images: there is no data to restore (drop --restore-data, or see `masctl restore`)",
                current.number,
                target.number
            );
        }
        return Ok(None);
    };
    let ctx = JobContext {
        layout,
        manifest: current.manifest()?,
        systemd: Systemd::connect().await?,
        number: current.number,
    };
    let old = target.manifest()?;
    if restore {
        ctx.require_active(&[Service::Postgres], Duration::from_secs(60)).await?;
        return Ok(Some(switch_backups::restore_before(&ctx, &rec, &old).await?));
    }
    let services: Vec<String> = rec.services.iter().map(|s| s.to_string()).collect();
    let hint = match &rec.set {
        Some(set) => format!(
            "`masctl rollback --restore-data` restores backup {set}, taken before generation {}",
            rec.generation
        ),
        None => format!("no backup was taken before generation {} (--no-backup)", rec.generation),
    };
    ui::warn(format!(
        "generation {} changed the image of {}: the databases may have been migrated to a schema the older images of generation {} do not serve; {hint}",
        rec.generation,
        services.join(", "),
        target.number
    ));
    // Refuse what cannot start (Postgres down: nothing to check, the gate decides).
    if ctx.require_active(&[Service::Postgres], Duration::from_secs(5)).await.is_ok()
        && let Some(why) = switch_backups::unservable(&ctx, &rec, &old).await?
    {
        bail!("generation {} cannot run on the current data: {why}; {hint}", target.number);
    }
    Ok(None)
}

/// Switches to `target`; if it fails and `previous` exists, switches back to it and
/// reports both. The error says what failed and where the system is now. `data` is
/// the backup taken before this switch changed a stateful image: when `previous`
/// cannot run on what `target` migrated, it is restored before `previous` starts.
pub async fn switch_with_rollback(
    a: &Activator<'_>,
    target: &Generation,
    previous: Option<&Generation>,
    data: Option<&PreSwitch>,
) -> Result<Plan> {
    match a.activate(target).await? {
        Ok(plan) => Ok(plan),
        Err(failure) => {
            eprintln!("{}", failure.logs.trim_end());
            let Some(prev) = previous.filter(|p| p.number != target.number) else {
                bail!(
                    "generation {} did not come up ({} failed) and there is no earlier generation to go back to",
                    target.number,
                    failure.units.join(", ")
                );
            };
            ui::step(format!("generation {} failed; rolling back to generation {}", target.number, prev.number));
            let restored = match data {
                Some(rec) => match switch_backups::before_automatic_rollback(a.layout, rec, target, prev).await {
                    Ok(note) => note.map(|n| format!("; {n}")).unwrap_or_default(),
                    Err(e) => {
                        ui::warn(format!("restoring the data from before the switch failed: {e:#}"));
                        format!("; restoring the data from before the switch failed ({e:#})")
                    }
                },
                None => String::new(),
            };
            match a.activate(prev).await? {
                Ok(_) => bail!(
                    "generation {} did not come up ({} failed); rolled back to generation {}, which is running{restored}",
                    target.number,
                    failure.units.join(", "),
                    prev.number
                ),
                Err(again) => bail!(
                    "generation {} did not come up ({} failed), and rolling back to generation {} failed too ({}){restored}",
                    target.number,
                    failure.units.join(", "),
                    prev.number,
                    again.units.join(", ")
                ),
            }
        }
    }
}
