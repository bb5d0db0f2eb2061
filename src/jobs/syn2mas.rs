//! `masctl syn2mas check | migrate [--dry-run]`: Synapse's users into MAS, with a
//! verified backup first and Synapse started again if the migration fails.

use anyhow::{Context as _, Result, bail};

use super::syn2mas_providers::{MasProvider, unmapped};
use super::{JobContext, JobSpec, backup};
use crate::docker::OneShot;
use crate::generation::generations;
use crate::generation::layout::Layout;
use crate::service::{Database, Service};
use crate::spec::Bind;
use crate::{secrets, ui};

/// What to ask of syn2mas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Check,
    /// Migrate into MAS and roll it back; Synapse keeps running.
    DryRun,
    Migrate,
}

/// Where the syn2mas job finds Synapse's database password (a pgpass file).
const SYN2MAS_PGPASS: &str = "/run/secrets/synapse-pgpass";

/// syn2mas connects to Synapse's database with `database.args.{host,port,user,
/// password,dbname}` only: it ignores Synapse's `passfile`. Its driver (sqlx) looks
/// a password up in a pgpass file once, at start-up, from `PGPASSFILE` and matches
/// the line against `PGUSER` — so the password reaches it through the environment
/// as a path, never as a value.
pub fn syn2mas_env(user: &str) -> Vec<String> {
    vec![format!("PGPASSFILE={SYN2MAS_PGPASS}"), format!("PGUSER={user}")]
}

/// Words for syn2mas's exit codes.
pub fn explain_syn2mas(code: i32) -> &'static str {
    match code {
        0 => "no problems found",
        10 => "syn2mas found errors that block the migration (listed above); fix them and run the check again",
        11 => "syn2mas found only warnings (listed above); review them — they do not block the migration",
        _ => "syn2mas failed (see its output above)",
    }
}

pub async fn run(layout: &Layout, step: Step) -> Result<()> {
    let _lock = generations::lock(layout, "syn2mas")?;
    let ctx = JobContext::load(layout).await?;
    if !ctx.mas_enabled() || !ctx.migration_in_progress() {
        bail!(
            "syn2mas needs the current generation ({}) to run MAS with migration_in_progress = true: set [mas] enabled = true \
and migration_in_progress = true, then `masctl switch`",
            ctx.number
        );
    }
    check_providers(&ctx).await?;
    let (mut job, synapse_configs) = syn2mas_job(&ctx)?;
    let args = |rest: &[&str]| -> Vec<String> {
        let mut v = vec!["syn2mas".to_string()];
        for c in &synapse_configs {
            v.extend(["--synapse-config".to_string(), c.clone()]);
        }
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    };
    match step {
        Step::Check => {
            job.cmd.extend(args(&["check"]));
            let (code, _) = ctx.run("masctl syn2mas check", JobSpec::new("syn2mas-check", job)).await?;
            match code {
                0 => ui::step(explain_syn2mas(0)),
                11 => ui::warn(explain_syn2mas(11)),
                c => bail!("{} (exit {c})", explain_syn2mas(c)),
            }
            Ok(())
        }
        Step::DryRun => {
            job.cmd.extend(args(&["migrate", "--dry-run"]));
            let (code, _) = ctx.run("masctl syn2mas migrate --dry-run", JobSpec::new("syn2mas-dry-run", job)).await?;
            if code != 0 {
                bail!("the dry run failed: {} (exit {code})", explain_syn2mas(code));
            }
            ui::step("dry run complete: MAS imported Synapse's users and discarded them again; Synapse kept running");
            Ok(())
        }
        Step::Migrate => {
            job.cmd.extend(args(&["migrate"]));
            migrate(&ctx, job).await
        }
    }
}

/// Refuses (before syn2mas runs) when Synapse signs users in through a provider no
/// MAS provider maps with `synapse_idp_id`: syn2mas would stop half-way on them.
async fn check_providers(ctx: &JobContext<'_>) -> Result<()> {
    let sql = "SELECT auth_provider, count(*) FROM user_external_ids GROUP BY auth_provider ORDER BY auth_provider";
    let rows = super::restore::query(ctx, Database::Synapse.name(), sql).await?;
    let recorded: Vec<(&str, u64)> =
        rows.lines().filter_map(|l| l.rsplit_once('|')).map(|(p, n)| (p, n.trim().parse().unwrap_or(0))).collect();
    let list = ctx.manifest.config["mas"]["upstream_oauth2"]["providers"].as_array().cloned().unwrap_or_default();
    let mas: Vec<MasProvider> = list
        .iter()
        .map(|p| MasProvider { id: p["id"].as_str().unwrap_or(""), synapse_idp_id: p["synapse_idp_id"].as_str() })
        .collect();
    let missing = unmapped(&recorded, &mas);
    if missing.is_empty() {
        return Ok(());
    }
    let why: Vec<String> = missing.iter().map(|m| m.to_string()).collect();
    bail!(
        "{}: give a [[mas.upstream_oauth2.providers]] entry that synapse_idp_id, then `masctl switch`; nothing was migrated",
        why.join("; ")
    )
}

/// The MAS container syn2mas runs in, with Synapse's database password and
/// configuration mounted, and the Synapse configuration files to name to it.
fn syn2mas_job(ctx: &JobContext) -> Result<(OneShot, Vec<String>)> {
    let layout = ctx.layout;
    let mas = ctx.mas_spec()?;
    let mut job = ctx.mas_job(&mas, &[]);
    // Synapse's role on an external server is the one its administrator made.
    let (pgpass, user) = match ctx.manifest.external_postgres.as_ref().and_then(|e| e.databases.get(&Database::Synapse))
    {
        Some(login) => (secrets::EXTERNAL_MAS_SYNAPSE_PGPASS, login.user.as_str()),
        None => ("mas-synapse-pgpass", Database::Synapse.name()),
    };
    job.binds.push(Bind::ro(layout.secret(pgpass), SYN2MAS_PGPASS));
    job.env.extend(syn2mas_env(user));
    let pre_mas = "/etc/mas/synapse-pre-mas.yaml".to_string();
    let mut synapse_configs = vec![pre_mas];
    if ctx.manifest.config["synapse"]["imported_password_config"] == true {
        // The imported password_config (with the pepper), merged over the rest as Synapse does.
        let bind = Bind::secret(layout.secret(secrets::MAS_SYNAPSE_PASSWORD_CONFIG), secrets::SYNAPSE_PASSWORD_CONFIG);
        synapse_configs.push(bind.inside.clone());
        job.binds.push(bind);
    }
    Ok((job, synapse_configs))
}

/// The migration itself: a verified backup first, then a unit that stops Synapse
/// (and its workers), migrates, and starts Synapse again if that fails.
async fn migrate(ctx: &JobContext<'_>, job: OneShot) -> Result<()> {
    let layout = ctx.layout;
    ui::step("backing up the databases first");
    let files =
        backup::run(layout, &ctx.systemd, &ctx.manifest, "pre-syn2mas").await.context("no backup, no migration")?;
    for f in &files {
        ui::step(format!("verified backup {}", f.display()));
    }
    // Its workers too: they share its database.
    let synapse = ctx.manifest.synapse_units();
    ui::step(format!("stopping {} and migrating", synapse.join(", ")));
    // The unit stops Synapse first and starts it again if the migration
    // fails, so a dropped session cannot leave Synapse down.
    let mut spec = JobSpec::new("syn2mas-migrate", job);
    spec.stop_before.extend(synapse.clone());
    spec.start_on_failure.extend(synapse.clone());
    // The record that lets a switch hand logins to MAS: the unit itself
    // puts it in place on success, so a dropped session still leaves it.
    let record = layout.mas_migrated();
    let pending = record.with_extension("pending");
    let note = serde_json::json!({
        "server_name": ctx.manifest.server_name,
        "generation": ctx.number,
        "completed": crate::timestamp::date_time(std::time::SystemTime::now()),
        "backups": files,
    });
    crate::fsutil::write_atomic(&pending, &serde_json::to_vec_pretty(&note)?, 0o600)?;
    spec.rename_on_success.push((pending.display().to_string(), record.display().to_string()));
    spec.remove_on_failure.push(pending.display().to_string());
    let outcome = ctx.run("masctl syn2mas migrate", spec).await;
    match outcome {
        Ok((0, _)) => {
            ui::step("migration complete; Synapse stays stopped until MAS takes over logins.");
            println!(
                "next: set migration_in_progress = false under [mas] in your masctl.toml, then run `masctl switch`"
            );
            Ok(())
        }
        other => {
            let main = Service::Synapse.unit_name();
            let restarted = ctx.systemd.unit_state(&main).await.is_ok_and(|s| s.active_state.is_up());
            let why = match other {
                Ok((code, _)) => format!("{} (exit {code})", explain_syn2mas(code)),
                Err(e) => format!("{e:#}"),
            };
            bail!(
                "syn2mas migrate failed: {why}; {main} {}; backups: {}",
                if restarted { "is running again" } else { "did NOT start again — check `masctl status`" },
                files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn2mas_finds_synapses_password_through_the_environment() {
        // Synapse's config names only `passfile`, which syn2mas ignores: without
        // these the real mas-cli fails with "password authentication failed".
        let env = syn2mas_env("synapse");
        assert!(env.contains(&format!("PGPASSFILE={SYN2MAS_PGPASS}")), "{env:?}");
        assert!(env.contains(&"PGUSER=synapse".to_string()), "{env:?}");
        assert!(env.iter().all(|e| !e.starts_with("PGPASSWORD")), "a path, never the password itself");
    }

    #[test]
    fn syn2mas_codes_are_explained() {
        assert!(explain_syn2mas(10).contains("block"));
        assert!(explain_syn2mas(11).contains("warnings"));
        assert!(explain_syn2mas(1).contains("failed"));
    }
}
