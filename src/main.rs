//! masctl: a Matrix homeserver stack (Postgres, Synapse, MAS) deployed the NixOS way.

mod activate;
mod admin_http;
mod appservice;
mod ca_bundle;
mod cli;
mod commands;
mod config;
mod context;
mod declared_users;
mod docker;
mod eval;
mod export;
mod fsutil;
mod generation;
mod image;
mod jobs;
mod located;
mod mas_admin;
mod offsite;
mod ops;
mod progress;
mod registration_tokens;
mod secrets;
mod service;
mod spec;
mod supervision;
mod synapse_admin;
mod systemd;
mod timestamp;
mod ui;
mod unit_name;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    ui::set_level(if cli.global.quiet { -1 } else { cli.global.verbose as i8 });
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("masctl: error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // `masctl man | head`: the reader left; that is not an error.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One line: the context chain joined, no backtrace.
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("masctl: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
