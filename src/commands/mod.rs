//! One module per command family; each turns parsed arguments into calls on the core
//! and the edges, and prints results to stdout.

pub mod image;
pub mod mas;
pub mod stack;
pub mod trial;

use std::path::PathBuf;

use anyhow::Result;

pub const DEFAULT_ROOT: &str = "/var/lib/masctl";

use crate::cli::{Cli, Command, Global};
use crate::image::decl::ImagesDir;

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Image(cmd) => image::run(&cli.global, cmd).await,
        Command::Supervise { spec } => {
            let code = crate::supervise::run(&spec).await?;
            std::process::exit(code);
        }
        Command::Try { down, json } => trial::run(&cli.global, down, json).await,
        Command::Job { spec } => {
            let code = crate::jobs::run_spec(&spec).await?;
            std::process::exit(code);
        }
        cmd @ (Command::Syn2mas(_)
        | Command::RegisterUser { .. }
        | Command::Doctor { .. }
        | Command::Backup
        | Command::Backups { .. }
        | Command::MasCli { .. }) => mas::run(&cli.global, cmd).await,
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
        Command::Config(crate::cli::ConfigCommand::Check) => check_config(&cli.global),
        other => stack::run(&cli.global, other).await,
    }
}

/// `masctl config check`: the config parses, validates, and every image it names is
/// a declared recipe or a pinned reference.
fn check_config(g: &Global) -> Result<()> {
    let c = crate::config::load(&g.config)?;
    let images = images_dir(g);
    for (service, name) in stack::service_images(&c) {
        if !name.contains('@') {
            images.load(name).map_err(|e| anyhow::anyhow!("images.{service}: {e:#}"))?;
        }
    }
    crate::ui::step(format!("{}: ok", g.config.display()));
    Ok(())
}

/// Where image declarations live when `--images` is not given.
pub fn images_dir(global: &Global) -> ImagesDir {
    if let Some(d) = &global.images {
        return ImagesDir { dir: d.clone() };
    }
    let mut candidates = vec![PathBuf::from("images")];
    if let Ok(exe) = std::env::current_exe()
        && let Some(prefix) = exe.parent().and_then(|p| p.parent())
    {
        candidates.push(prefix.join("share/masctl/images"));
    }
    candidates.push(PathBuf::from("/usr/share/masctl/images"));
    let dir = candidates.iter().find(|d| d.join("base.toml").exists()).unwrap_or(&candidates[0]).clone();
    ImagesDir { dir }
}
