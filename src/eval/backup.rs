//! `[backup]` → what the backup job reads from the manifest, and the store entry
//! holding the config as written (part of every backup set).

use anyhow::{Context as _, Result};

use super::{Entry, Inputs};
use crate::generation::manifest::{BackupPlan, Keep, RepoPlan};
use crate::offsite::RepoUrl;
use crate::secrets;

/// The plan and its entry; None without `[backup]`.
pub fn plan(inp: &Inputs) -> Result<Option<(BackupPlan, Entry)>> {
    let Some(b) = &inp.config.backup else { return Ok(None) };
    let image = inp.restic_image.context("[backup] needs the restic image")?;
    let mut entry = Entry::new("backup-config");
    entry.add("masctl.toml", inp.config.origin.text.as_bytes());
    let mut repositories = Vec::new();
    for r in &b.repositories {
        let name = r.url.get_ref().clone();
        let url = RepoUrl::parse(&name).map_err(|why| anyhow::anyhow!("backup.repository.url {name:?} {why}"))?;
        repositories.push(RepoPlan {
            password_secret: secrets::backup_secret(&name, secrets::BackupFile::Password),
            ssh_key_secret: r.ssh_key_file.as_ref().map(|_| secrets::backup_secret(&name, secrets::BackupFile::SshKey)),
            known_hosts_secret: r
                .known_hosts_file
                .as_ref()
                .map(|_| secrets::backup_secret(&name, secrets::BackupFile::KnownHosts)),
            name,
            url,
        });
    }
    let plan = BackupPlan {
        image: image.to_string(),
        schedule: b.schedule,
        keep: Keep { daily: b.keep_daily, weekly: b.keep_weekly, monthly: b.keep_monthly },
        repositories,
        config_file: format!("{}/masctl.toml", entry.path(inp.layout)),
    };
    Ok(Some((plan, entry)))
}
