//! One module per command family: each parses what clap gave it, calls one
//! operation (`ops/`, `jobs/`) and prints the result to stdout.

mod export;
mod image;
mod jobs;
mod restore;
mod stack;
mod tokens;
mod trial;
mod users;

use std::time::Duration;

use anyhow::Result;

use crate::cli::{Cli, Command, ConfigCommand, ExportCommand, ImportCommand};
use crate::context::Context;

pub async fn run(cli: Cli) -> Result<()> {
    let g = &cli.global;
    let secs = Duration::from_secs;
    match cli.command {
        Command::Switch { dry_run, timeout, force, no_backup, reset_declared_passwords } => {
            let opts = crate::ops::switch::SwitchOptions {
                dry_run,
                timeout: secs(timeout),
                force,
                no_backup,
                reset_declared_passwords,
            };
            stack::switch(&Context::with_config(g)?, opts).await
        }
        Command::Rollback { to, timeout, force, restore_data, json } => {
            let opts = crate::ops::switch::RollbackOptions { to, timeout: secs(timeout), force, restore_data };
            stack::rollback(&Context::for_state(g)?, opts, json).await
        }
        Command::Status { json } => stack::status(&Context::for_state(g)?, json).await,
        Command::Generations { json } => stack::generations(&Context::for_state(g)?, json),
        Command::Diff { a, b } => stack::diff(&Context::for_state(g)?, a, b),
        Command::Gc { keep, older_than } => stack::gc(&Context::for_state(g)?, keep, older_than).await,
        Command::Logs { service, follow, lines, all } => {
            crate::ops::logs::logs(&Context::for_state(g)?, &service, follow, lines, all).await
        }
        Command::Config(ConfigCommand::Check) => crate::ops::build::check_config(&Context::with_config(g)?),
        Command::Try { down, json } => trial::run(&Context::with_config(g)?, g, down, json).await,
        Command::Image(cmd) => image::run(&Context::for_state(g)?, cmd).await,
        Command::Syn2mas(cmd) => jobs::syn2mas(&Context::for_state(g)?, cmd).await,
        Command::RegisterUser { name, admin, emails, password_file } => {
            jobs::register_user(&Context::for_state(g)?, &name, admin, &emails, password_file.as_deref()).await
        }
        Command::RegistrationToken(cmd) => tokens::run(&Context::for_state(g)?, cmd).await,
        Command::User { json, cmd } => users::run(&Context::for_state(g)?, cmd, json).await,
        Command::Doctor { json } => jobs::doctor(&Context::for_state(g)?, json).await,
        Command::Export(ExportCommand::Ess(args)) => export::ess(&Context::with_config(g)?, args).await,
        Command::Backup { json, scheduled } => jobs::backup(&Context::for_state(g)?, json, scheduled).await,
        Command::Backups { json, remote: false, .. } => jobs::backups(&Context::for_state(g)?, json),
        Command::Backups { json, remote: true, from } => {
            jobs::remote_backups(&Context::for_state(g)?, from.as_deref(), json).await
        }
        Command::Restore { backup, from: None, json, timeout } => {
            restore::restore(&Context::for_state(g)?, backup.as_deref(), json, secs(timeout)).await
        }
        Command::Restore { backup, from: Some(from), json, timeout } => {
            restore::restore_from(g, &from, backup.as_deref(), json, secs(timeout)).await
        }
        Command::Import(ImportCommand::Synapse(args)) => restore::import_synapse(g, args).await,
        Command::MasCli { args } => crate::jobs::mas_cli::run(&Context::for_state(g)?.layout, &args).await,
        // The main processes of units: they get `--root` and a spec, no config.
        Command::Supervise { spec } => std::process::exit(crate::supervision::supervise::run(&spec).await?),
        Command::Job { spec } => std::process::exit(crate::jobs::run_spec(&spec).await?),
        Command::Completions { shell } => {
            // Rendered to memory first: clap_complete panics on a closed stdout.
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "masctl", &mut buf);
            std::io::Write::write_all(&mut std::io::stdout(), &buf)?;
            Ok(())
        }
        Command::Man => {
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut std::io::stdout())?;
            Ok(())
        }
    }
}
