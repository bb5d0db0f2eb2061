//! `masctl try [--down]`.

use anyhow::Result;

use crate::cli::Global;
use crate::context::ConfiguredContext;
use crate::ops::trial::{self, Verbosity};
use crate::ui;

pub async fn run(ctx: &ConfiguredContext, g: &Global, down: bool, json: bool) -> Result<()> {
    if down {
        let host = trial::down(ctx).await?;
        ui::step(format!("removed {host} and its service containers; data stays in {}", ctx.layout.root().display()));
        return Ok(());
    }
    let t = trial::up(ctx, Verbosity { quiet: g.quiet, verbose: g.verbose }).await?;
    if json {
        println!("{}", serde_json::to_value(&t)?);
    } else {
        println!("Synapse answers at {} (generation {} in {})", t.client_url, t.generation, t.host);
        println!("Look inside: docker exec -it {} masctl status;  remove it: masctl try --down", t.host);
    }
    Ok(())
}
