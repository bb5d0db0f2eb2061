//! `masctl logs`: a service's (or a Synapse worker's) journal, by default only its
//! unit's current run.

use std::os::unix::process::CommandExt;

use anyhow::{Context as _, Result, bail};

use crate::context::Context;
use crate::generation::generations::Generations;
use crate::systemd::Systemd;

/// Replaces this process with `journalctl`; returns only if that fails.
pub async fn logs(ctx: &Context, service: &str, follow: bool, lines: u32, all: bool) -> Result<()> {
    let current = Generations::new(&ctx.layout).current()?.context("nothing has been switched to yet")?;
    let m = current.manifest()?;
    let Some((unit, _)) = m.unit(service) else {
        bail!(
            "no service {service:?} in generation {} (known: {})",
            current.number,
            m.units().iter().map(|(u, _)| u.name()).collect::<Vec<_>>().join(", ")
        );
    };
    let unit = unit.unit_name();
    let mut cmd = std::process::Command::new("journalctl");
    cmd.args(["-u", &unit, "-n", &lines.to_string(), "--no-pager", "-o", "short-iso"]);
    if !all {
        let state = Systemd::connect().await?.unit_state(&unit).await?;
        if !state.invocation_id.is_empty() && state.invocation_id.bytes().any(|b| b != b'0') {
            cmd.arg(format!("_SYSTEMD_INVOCATION_ID={}", state.invocation_id));
        }
    }
    if follow {
        cmd.arg("-f");
    }
    Err(cmd.exec()).context("running journalctl")
}
