//! `masctl mas-cli …`: any other mas-cli command, as a transient unit.

use anyhow::{Result, bail};

use super::{JobContext, JobSpec};
use crate::generation::layout::Layout;

pub async fn run(layout: &Layout, args: &[String]) -> Result<()> {
    let ctx = JobContext::load(layout).await?;
    let mas = ctx.mas_spec()?;
    let (code, _) = ctx.run("masctl mas-cli", JobSpec::new("mas-cli", ctx.mas_job(&mas, args))).await?;
    if code != 0 {
        bail!("mas-cli {} exited with {code}", args.join(" "));
    }
    Ok(())
}
