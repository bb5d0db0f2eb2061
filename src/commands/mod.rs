//! One module per command family; each turns parsed arguments into calls on the core
//! and the edges, and prints results to stdout.

pub mod image;
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
        other => stack::run(&cli.global, other).await,
    }
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
