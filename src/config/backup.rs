//! `[backup]`: scheduled, encrypted off-host backups through restic (the shape;
//! what a schedule and a repository URL mean is `crate::offsite`'s).

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::offsite::Schedule;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// How often the timer masctl generates runs a backup.
    #[serde(default)]
    pub schedule: Schedule,
    /// Snapshots kept per day, week and month (restic's `forget --keep-*`).
    #[serde(default = "keep_daily")]
    pub keep_daily: u32,
    #[serde(default = "keep_weekly")]
    pub keep_weekly: u32,
    #[serde(default = "keep_monthly")]
    pub keep_monthly: u32,
    /// `[[backup.repository]]`: where each backup is pushed, in order.
    #[serde(default, rename = "repository")]
    pub repositories: Vec<Repository>,
}

fn keep_daily() -> u32 {
    7
}
fn keep_weekly() -> u32 {
    4
}
fn keep_monthly() -> u32 {
    6
}

/// One restic repository.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Repository {
    /// An absolute path (a mounted disk), `sftp:user@host:/path` or
    /// `rest:https://host:port/path`.
    pub url: Spanned<String>,
    /// A 0600 file holding the repository's password.
    pub password_file: Spanned<String>,
    /// sftp only: the private key ssh logs in with (a 0600 file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key_file: Option<Spanned<String>>,
    /// sftp only: the server's host key, as a known_hosts file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts_file: Option<Spanned<String>>,
}
