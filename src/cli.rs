//! Command-line definitions (clap). Behaviour lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "masctl",
    version,
    about = "Deploy Postgres, Synapse and Matrix Authentication Service the NixOS way",
    long_about = "masctl builds pinned, reproducible container images and systemd units into \
immutable generations, activates them atomically and rolls back when a new one is unhealthy."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// More detail on stderr (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// State root: store, cache, generations, secrets, service data
    #[arg(
        long,
        global = true,
        env = "MASCTL_ROOT",
        default_value = "/var/lib/masctl"
    )]
    pub root: PathBuf,
    /// Image declarations directory [default: ./images, else the installed share/masctl/images]
    #[arg(long, global = true, env = "MASCTL_IMAGES")]
    pub images: Option<PathBuf>,
    /// Input cache [default: <root>/cache]
    #[arg(long, global = true, env = "MASCTL_CACHE")]
    pub cache: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build, load, pull and list the stack's container images
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Resolve a declaration into its lock (every input pinned by sha256), using the
    /// host's apt and pip with their configured mirrors
    Lock {
        /// Image names (files images/<name>.toml)
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Build images from their locks into the store and print their IDs
    Build {
        #[arg(required = true)]
        names: Vec<String>,
        /// Build again from scratch and fail unless the archives are byte-identical
        #[arg(long)]
        check: bool,
        /// Directory for a recipe's named input, e.g. --input mas-dist=./dist
        #[arg(long = "input", value_name = "NAME=DIR", value_parser = parse_input)]
        inputs: Vec<(String, PathBuf)>,
    },
    /// Load built images into Docker (building first if needed) and verify their IDs;
    /// upstream images are pulled by digest
    Load {
        #[arg(required = true)]
        names: Vec<String>,
        #[arg(long = "input", value_name = "NAME=DIR", value_parser = parse_input)]
        inputs: Vec<(String, PathBuf)>,
    },
    /// Pull an image by digest (repo[:tag]@sha256:…); anything else is refused
    Pull { reference: String },
    /// Declared images: IDs, sizes, whether built and loaded
    List {
        /// Print a JSON array for scripts
        #[arg(long)]
        json: bool,
    },
}

fn parse_input(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), PathBuf::from(v))),
        _ => Err(format!("expected NAME=DIR, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn input_parse_table() {
        assert_eq!(
            parse_input("a=/x").unwrap(),
            ("a".into(), PathBuf::from("/x"))
        );
        for bad in ["a", "=x", "a="] {
            assert!(parse_input(bad).is_err(), "{bad}");
        }
    }
}
