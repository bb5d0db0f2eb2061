//! `masctl gc`: delete old generations, then the store entries and images no
//! remaining generation uses. Never the current generation, secrets or backups; a
//! Postgres cluster no remaining generation uses only when a verified dump holds it.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use anyhow::Result;

use super::trial::BINARY_ENTRY;
use crate::context::Context;
use crate::docker::Engine;
use crate::generation::generations::{self, Generation, Generations};
use crate::generation::store::Store;
use crate::image::build::{id_in_entry, is_image_entry};

/// Which generations gc deletes: never the current, keep the newest `keep`, and
/// with `older_than` only those created before the cutoff.
pub fn gc_victims(
    all: &[Generation],
    current: Option<u32>,
    keep: Option<usize>,
    cutoff: Option<SystemTime>,
) -> Vec<u32> {
    let mut candidates: Vec<&Generation> = all.iter().filter(|g| Some(g.number) != current).collect();
    candidates.sort_by_key(|g| std::cmp::Reverse(g.number));
    let skip = keep.unwrap_or(0);
    candidates.into_iter().skip(skip).filter(|g| cutoff.is_none_or(|c| g.created < c)).map(|g| g.number).collect()
}

/// Returns (generations deleted, store entries deleted).
pub async fn gc(ctx: &Context, keep: Option<usize>, older_than: Option<Duration>) -> Result<(usize, usize)> {
    let layout = &ctx.layout;
    let _lock = generations::lock(layout, "gc")?;
    let gens = Generations::new(layout);
    let all = gens.list()?;
    let current = gens.current()?.map(|c| c.number);
    let cutoff = older_than.map(|d| SystemTime::now() - d);
    let victims = gc_victims(&all, current, keep, cutoff);
    for n in &victims {
        gens.remove(&gens.get(*n)?)?;
    }
    // Everything a remaining generation refers to stays. Compared by entry name, not
    // by full path: the root may be spelled differently now than when it was made.
    let mut live: BTreeSet<String> = BTreeSet::new();
    let mut live_images: BTreeSet<String> = BTreeSet::new();
    let mut remaining = Vec::new();
    for gen_ in gens.list()? {
        live.insert(Store::entry_name(&gen_.target));
        let m = gen_.manifest()?;
        remaining.push(m.clone());
        live.extend(m.refs.iter().map(|r| Store::entry_name(std::path::Path::new(r))));
        live_images.extend(m.images.values().cloned());
    }
    super::pg_upgrade::gc_clusters(layout, &remaining)?;
    let mut dead_images = Vec::new();
    let removed = Store::new(layout.store()).sweep(|path, name| {
        let kind = Store::kind(name);
        if !is_image_entry(kind) {
            // Binaries `masctl try` runs hosts from stay too.
            return live.contains(name) || kind == BINARY_ENTRY;
        }
        // Image archives are build cache as much as roots: keep those in use.
        match id_in_entry(path) {
            Some(id) if live_images.contains(&id) => true,
            Some(id) => {
                dead_images.push(id);
                false
            }
            None => false,
        }
    })?;
    // The input cache keeps every file; only downloads a crash left half-written go.
    Store::new(ctx.cache.clone()).sweep(|_, _| true)?;
    if let Ok(engine) = Engine::connect().await {
        for id in dead_images {
            let _ = engine.remove_image(&id).await;
        }
    }
    Ok((victims.len(), removed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn g(n: u32, age_days: u64) -> Generation {
        Generation {
            number: n,
            target: PathBuf::from(format!("/s/{n}-generation")),
            created: SystemTime::now() - Duration::from_secs(age_days * 86400),
        }
    }

    #[test]
    fn gc_victims_table() {
        let all = vec![g(1, 40), g(2, 35), g(3, 10), g(4, 1), g(5, 0)];
        let month = Some(SystemTime::now() - Duration::from_secs(30 * 86400));
        let cases = [
            (Some(5), None, None, vec![4, 3, 2, 1]),
            (Some(5), Some(2), None, vec![2, 1]),
            (Some(5), None, month, vec![2, 1]),
            (Some(2), Some(1), month, vec![1]),
            (Some(3), Some(10), None, vec![]),
        ];
        for (current, keep, cutoff, want) in cases {
            assert_eq!(gc_victims(&all, current, keep, cutoff), want, "{current:?} {keep:?}");
        }
    }
}
