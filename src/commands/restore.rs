//! `masctl restore` and `masctl import synapse`: data into the stack (see
//! `jobs/restore.rs` and `jobs/import/`).

use std::time::Duration;

use anyhow::Result;

use crate::cli::{Global, ImportSynapse};
use crate::context::Context;
use crate::jobs::import::{self, Options, Source};
use crate::jobs::restore;
use crate::ops::switch::{SwitchOptions, Switched, switch};
use crate::ui;

pub async fn restore(ctx: &Context, backup: Option<&str>, json: bool, timeout: Duration) -> Result<()> {
    if json {
        crate::jobs::output_to_stderr();
    }
    let done = restore::run(&ctx.layout, backup, timeout).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&done)?);
    } else {
        for d in &done.databases {
            println!("restored {} from {} ({})", d.database, d.file, d.schema);
        }
        println!(
            "the state before is kept and backed up to {} — `masctl restore {}` brings it back",
            ui_files(&done.backup_before),
            crate::ops::switch_backups::set_of(&done.backup_before).unwrap_or_default()
        );
    }
    Ok(())
}

/// `masctl restore --from REPO [SNAPSHOT]`. On a host with nothing switched to
/// yet, the configured stack is deployed first (there is nothing on it to lose).
pub async fn restore_from(g: &Global, from: &str, wanted: Option<&str>, json: bool, timeout: Duration) -> Result<()> {
    if json {
        crate::jobs::output_to_stderr();
    }
    let ctx = Context::for_state(g)?;
    if crate::generation::generations::Generations::new(&ctx.layout).current()?.is_none() {
        ui::step("nothing has been switched to on this host: deploying the configured stack first");
        let options =
            SwitchOptions { dry_run: false, timeout, force: false, no_backup: true, reset_declared_passwords: false };
        switch(&Context::with_config(g)?, options).await?;
    }
    let done = crate::ops::offsite::restore_from(&ctx.layout, from, wanted, timeout).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&done)?);
        return Ok(());
    }
    for d in &done.databases {
        println!("restored {} from {} ({})", d.database, d.file, d.schema);
    }
    println!(
        "snapshot {} of {}: {} secret(s) and {} media file(s) put in place",
        done.snapshot,
        done.repository,
        done.secrets.len(),
        done.media_files
    );
    println!(
        "the state before is kept and backed up to {}, and in {} — `masctl restore {}` brings the databases back",
        ui_files(&done.backup_before),
        done.secrets_before.display(),
        crate::ops::switch_backups::set_of(&done.backup_before).unwrap_or_default()
    );
    Ok(())
}

fn ui_files(files: &[std::path::PathBuf]) -> String {
    files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
}

pub async fn import_synapse(g: &Global, a: ImportSynapse) -> Result<()> {
    if a.json {
        crate::jobs::output_to_stderr();
    }
    let ctx = Context::with_config(g)?;
    let server_name = ctx.config().server_name.get_ref().clone();
    let mut src = match &a.from_playbook {
        Some(dir) => Source::playbook(dir, a.dump.clone()),
        None => Source {
            homeserver: a.homeserver.clone().expect("clap requires --homeserver without --from-playbook"),
            database: a.dump.clone(),
            signing_key: None,
            media: None,
            mounts: vec![],
            playbook: None,
        },
    };
    src.signing_key = a.signing_key.clone().or(src.signing_key);
    src.media = a.media.clone().or(src.media);
    let timeout = Duration::from_secs(a.timeout);
    let done = import::run(&ctx.layout, &server_name, &src, Options { replace: a.replace }).await?;
    let mut generation = None;
    if a.write_config && !done.changes.is_empty() {
        import::write_config(&ctx.config_path, &done.changes)?;
        ui::step(format!("wrote the settings into {}; switching to it", ctx.config_path.display()));
        if let Switched::Done { generation: n, .. } = switch(
            &Context::with_config(g)?,
            SwitchOptions { dry_run: false, timeout, force: false, no_backup: false, reset_declared_passwords: false },
        )
        .await?
        {
            generation = Some(n);
        }
    } else {
        ui::step("starting the stack");
        import::start(&ctx.layout, timeout).await?;
    }
    if a.json {
        let mut v = serde_json::to_value(&done)?;
        v["config_written"] = serde_json::json!(a.write_config && !done.changes.is_empty());
        v["generation"] = serde_json::json!(generation);
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "imported {}: {} user(s), {}, signing key {}, {} media file(s)",
        done.server_name, done.users, done.schema, done.signing_key, done.media_files
    );
    if !done.changes.is_empty() && !a.write_config {
        println!("add to {} (or run again with --write-config), then `masctl switch`:\n", ctx.config_path.display());
        println!("{}", done.config_changes.trim_end());
    }
    Ok(())
}
