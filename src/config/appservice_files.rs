//! `[[synapse.appservices]]` registration files: read and checked when the config
//! is loaded, before anything on the host changes (each on its own and against the
//! others); the bytes read are what a switch copies into `secrets/`.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};

use super::{Config, at};
use crate::appservice::registration::{self, Pos, Refusal};
use crate::appservice::{Loaded, cross_check, double_puppet};

fn located(file: &Path, p: Pos, msg: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{}:{}:{}: {msg}", file.display(), p.line, p.col)
}

/// Every registration, parsed and cross-checked; errors name the registration
/// file's line and column, or the config's `path` when the file cannot be read.
pub fn load(c: &Config, path: &Path, text: &str) -> Result<Vec<Loaded>> {
    let mut loaded = Vec::new();
    for a in &c.synapse.appservices {
        let file = PathBuf::from(a.path.get_ref());
        let body = std::fs::read_to_string(&file).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "does not exist".to_string(),
                _ => format!("cannot be read ({e})"),
            };
            at(path, text, a.path.span(), format!("synapse.appservices.path {} {why}", file.display()))
        })?;
        let reg = registration::parse(&body).map_err(|Refusal { pos, msg }| located(&file, pos, msg))?;
        loaded.push(Loaded::new(file, body, reg));
    }
    let reserved_ids: &[&str] = if c.synapse.double_puppet.enabled { &[double_puppet::ID] } else { &[] };
    // A bot's sender_localpart must not be a declared user's (nor masctl's own):
    // Synapse would hand the account to the appservice.
    let declared = c.users.iter().map(|u| u.localpart.get_ref().as_str());
    let reserved_lps: Vec<&str> =
        [double_puppet::SENDER_LOCALPART, crate::declared_users::MASCTL_ADMIN].into_iter().chain(declared).collect();
    let all: Vec<_> = loaded.iter().map(|l| (l.path.clone(), l.reg.clone())).collect();
    cross_check(&all, reserved_ids, &reserved_lps).map_err(|(i, pos, msg)| located(&all[i].0, pos, msg))?;
    Ok(loaded)
}
