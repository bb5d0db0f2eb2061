//! `masctl generations` and `masctl diff`: what was switched to, and what changed.

use anyhow::{Context as _, Result};

use crate::context::Context;
use crate::generation::generations::{Generation, Generations};

/// Every generation, oldest first, and the number of the current one.
pub fn list(ctx: &Context) -> Result<(Vec<Generation>, Option<u32>)> {
    let gens = Generations::new(&ctx.layout);
    let current = gens.current()?.map(|c| c.number);
    Ok((gens.list()?, current))
}

/// How generation `b` (default: the current) differs from `a` (default: the one
/// before `b`): their numbers and the lines.
pub fn diff(ctx: &Context, a: Option<u32>, b: Option<u32>) -> Result<(u32, u32, Vec<String>)> {
    let gens = Generations::new(&ctx.layout);
    let current = gens.current()?.context("nothing has been switched to yet")?;
    let gb = match b {
        Some(n) => gens.get(n)?,
        None => current,
    };
    let ga = match a {
        Some(n) => gens.get(n)?,
        None => gens
            .list()?
            .into_iter()
            .rfind(|x| x.number < gb.number)
            .with_context(|| format!("no generation before {}", gb.number))?,
    };
    Ok((ga.number, gb.number, ga.manifest()?.diff(&gb.manifest()?)))
}
