//! What the commands do, one module per operation, in terms of the core (`eval`,
//! `activate`, `generation`) and the edges (`docker`, `systemd`). Nothing
//! here prints results: the commands do.

pub mod background_updates;
pub mod build;
pub mod declared_users;
pub mod export_ess;
pub mod gc;
pub mod history;
pub mod image;
pub mod logs;
pub mod offsite;
pub mod pg_upgrade;
pub mod registration_tokens;
pub mod status;
pub mod switch;
pub mod switch_backups;
pub mod trial;
