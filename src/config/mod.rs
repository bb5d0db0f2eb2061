//! `masctl.toml`: the declarative description of one host's stack.
//!
//! Parsing is serde with unknown keys refused; checks serde cannot express run in
//! [`Config::validate`], and every error names `file:line:column`.

mod appservice_files;
mod backup;
mod password_files;
mod schema;
mod tls_files;
mod validate;

pub use backup::Backup;
pub use password_files::read_password;
pub use schema::*;

use std::path::Path;

use anyhow::{Result, anyhow};

use crate::located;

/// A location-carrying error for a spanned value.
pub fn at(path: &Path, text: &str, span: std::ops::Range<usize>, msg: impl std::fmt::Display) -> anyhow::Error {
    let (line, col) = located::line_col(text, span.start);
    anyhow!("{}:{line}:{col}: {msg}", path.display())
}

pub fn parse(path: &Path, text: &str) -> Result<Config> {
    let mut config: Config = located::parse_toml(path, text)?;
    validate::validate(&config, path, text)?;
    config.origin = Origin { path: path.to_path_buf(), text: text.to_string() };
    Ok(config)
}

/// Parses and validates the config file, and checks the files it names that must
/// be right before a switch (a certificate you bring, external Postgres passwords,
/// appservice registrations, which are read once, here).
pub fn load(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let mut config = parse(path, &text)?;
    tls_files::check(&config, path, &text)?;
    tls_files::check_extra_ca(&config, path, &text)?;
    password_files::check(&config, path, &text)?;
    password_files::check_users(&config, path, &text)?;
    password_files::check_smtp(&config, path, &text)?;
    password_files::check_client_secrets(&config, path, &text)?;
    password_files::check_backup(&config, path, &text)?;
    config.registrations = appservice_files::load(&config, path, &text)?;
    Ok(config)
}
