//! `masctl switch | rollback | status | generations | diff | gc`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::activate::{Activator, read_spec, switch_with_rollback, unit_dir};
use crate::cli::{Command, Global};
use crate::config;
use crate::docker::Engine;
use crate::eval::{self, Inputs, Manifest};
use crate::generations::{self, Generation, Generations};
use crate::layout::Layout;
use crate::store::Store;
use crate::systemd::Systemd;
use crate::{secrets, ui};

use super::image::Ctx;

pub async fn run(g: &Global, cmd: Command) -> Result<()> {
    match cmd {
        Command::Switch { dry_run, timeout } => switch(g, dry_run, Duration::from_secs(timeout)).await,
        Command::Rollback { to, timeout } => rollback(g, to, Duration::from_secs(timeout)).await,
        Command::Status { json } => status(g, json).await,
        Command::Generations { json } => list_generations(g, json),
        Command::Diff { a, b } => diff(g, a, b),
        Command::Gc { keep, older_than } => gc(g, keep, older_than).await,
        Command::Logs { service, follow, lines, all } => logs(g, &service, follow, lines, all).await,
        _ => unreachable!("dispatched in commands::run"),
    }
}

/// The state root: `--root`/`MASCTL_ROOT`, else the config's, else the default.
pub fn layout_for(g: &Global) -> Result<Layout> {
    if let Some(r) = &g.root {
        // Links and units name paths under the root: it must be absolute.
        return Ok(Layout::new(std::path::absolute(r).with_context(|| format!("state root {}", r.display()))?));
    }
    if g.config.exists() {
        return Ok(Layout::new(config::load(&g.config)?.state_root.get_ref()));
    }
    Ok(Layout::new(super::DEFAULT_ROOT))
}

fn masctl_exe() -> Result<String> {
    let exe = std::env::current_exe().context("locating the masctl binary")?;
    Ok(exe.display().to_string())
}

/// Evaluates the config into a generation in the store. Returns its store path and manifest.
pub async fn build_generation(g: &Global, layout: &Layout, engine: &Engine) -> Result<(PathBuf, Manifest)> {
    let c = &config::load(&g.config)?;
    let ctx = Ctx::with_root(g, layout.root());
    let mut images = BTreeMap::new();
    for (service, image) in service_images(c) {
        let id = ctx.ensure(engine, image).await.with_context(|| format!("image for {service}"))?;
        images.insert(service.to_string(), id);
    }
    let mut created = secrets::ensure(layout)?;
    if c.mas_enabled() && secrets::ensure_rsa_key(layout, engine, &images["synapse"]).await? {
        created.push("mas-signing-rsa.pem");
    }
    if !created.is_empty() {
        ui::step(format!("generated secrets: {}", created.join(", ")));
    }
    let exe = masctl_exe()?;
    let ev = eval::evaluate(&Inputs { config: c, images: &images, layout, masctl: &exe })?;
    let store = Store::new(layout.store());
    let mut last = PathBuf::new();
    for entry in &ev.entries {
        last = store.add_dir(&entry.hash(), &entry.name, |dir| {
            for (path, data) in &entry.files {
                let p = dir.join(path);
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&p, data)?;
            }
            Ok(())
        })?;
    }
    Ok((last, ev.manifest))
}

/// (service, image) for every service the config runs.
pub fn service_images(c: &config::Config) -> Vec<(&'static str, &str)> {
    let mut v =
        vec![("postgres", c.images.postgres.get_ref().as_str()), ("synapse", c.images.synapse.get_ref().as_str())];
    if c.mas_enabled() {
        v.push(("mas", c.images.mas.get_ref().as_str()));
        v.push(("proxy", c.images.proxy.get_ref().as_str()));
    }
    v
}

/// `mas-cli config check` against the generation's MAS config, in a one-shot
/// container, so a config MAS would refuse never reaches the host.
async fn check_mas_config(engine: &Engine, manifest: &Manifest) -> Result<()> {
    let Some(spec_path) = manifest.services.get("mas") else { return Ok(()) };
    let spec = read_spec(spec_path)?;
    let job = crate::docker::OneShot::like(&spec, eval::mas_cli(&["config", "check"]), None);
    let sp = ui::spinner("checking the MAS configuration (mas-cli config check)");
    let code = engine.run_once(&job, "mas-config-check").await?;
    sp.finish_and_clear();
    if code != 0 {
        bail!("mas-cli config check refused the generated MAS configuration (exit {code}); nothing was changed");
    }
    Ok(())
}

fn activator<'a>(layout: &'a Layout, systemd: &'a Systemd, engine: &'a Engine, timeout: Duration) -> Activator<'a> {
    Activator { layout, systemd, engine, unit_dir: unit_dir(), timeout }
}

async fn switch(g: &Global, dry_run: bool, timeout: Duration) -> Result<()> {
    // Parse first: a bad config changes nothing, not even the lock file.
    config::load(&g.config)?;
    let layout = layout_for(g)?;
    let _lock = generations::lock(&layout, "switch")?;
    let engine = Engine::connect().await?;
    let (store_path, manifest) = build_generation(g, &layout, &engine).await?;
    check_mas_config(&engine, &manifest).await?;
    let systemd = Systemd::connect().await?;
    let a = activator(&layout, &systemd, &engine, timeout);
    let gens = Generations::new(&layout);
    let current = gens.current()?;
    if dry_run {
        let plan = a.plan_for(&manifest)?;
        for line in plan.describe(true) {
            println!("{}", ui::paint_line(&line));
        }
        if plan.is_noop() {
            println!("no changes");
        }
        return Ok(());
    }
    let target = match &current {
        Some(c) if c.target == store_path => c.clone(),
        _ => gens.add(&store_path)?,
    };
    let plan = switch_with_rollback(&a, &target, current.as_ref()).await?;
    if plan.is_noop() {
        ui::step(format!("generation {} is current and running; nothing changed", target.number));
    } else {
        ui::step(format!("switched to generation {}", target.number));
    }
    println!("Synapse answers at {}", manifest.client_url);
    Ok(())
}

async fn rollback(g: &Global, to: Option<u32>, timeout: Duration) -> Result<()> {
    let layout = layout_for(g)?;
    let _lock = generations::lock(&layout, "rollback")?;
    let gens = Generations::new(&layout);
    let current = gens.current()?.context("nothing has been switched to yet")?;
    let target = match to {
        Some(n) => gens.get(n)?,
        None => gens.list()?.into_iter().rfind(|g| g.number < current.number).with_context(|| {
            format!("generation {} is the oldest; there is nothing to roll back to", current.number)
        })?,
    };
    if target.number == current.number {
        bail!("generation {} is already current", target.number);
    }
    let engine = Engine::connect().await?;
    // Images of an old generation may have been removed from Docker by hand.
    for (service, id) in &target.manifest()?.images {
        if engine.inspect(id).await?.is_none() {
            bail!(
                "image {id} of {service} (generation {}) is no longer in Docker; switch to a config instead",
                target.number
            );
        }
    }
    let systemd = Systemd::connect().await?;
    let a = activator(&layout, &systemd, &engine, timeout);
    switch_with_rollback(&a, &target, Some(&current)).await?;
    ui::step(format!("rolled back to generation {}", target.number));
    Ok(())
}

#[derive(Serialize)]
struct UnitRow {
    name: String,
    load_state: String,
    active_state: String,
    sub_state: String,
}

#[derive(Serialize)]
struct ContainerRow {
    name: String,
    service: String,
    image: Option<String>,
    expected_image: String,
    running: bool,
    health: Option<String>,
}

#[derive(Serialize)]
struct StatusReport {
    generation: Option<u32>,
    hash: Option<String>,
    units: Vec<UnitRow>,
    containers: Vec<ContainerRow>,
    images: BTreeMap<String, String>,
    /// Units active and every container running its generation's image, healthy.
    matches_current: bool,
    client_url: Option<String>,
}

async fn status(g: &Global, json: bool) -> Result<()> {
    let layout = layout_for(g)?;
    let gens = Generations::new(&layout);
    let Some(current) = gens.current()? else {
        if json {
            println!(
                "{}",
                serde_json::json!({"generation": null, "units": [], "containers": [], "matches_current": false})
            );
        } else {
            println!("nothing has been switched to yet (state root {})", layout.root().display());
        }
        return Ok(());
    };
    let manifest = current.manifest()?;
    let systemd = Systemd::connect().await?;
    let engine = Engine::connect().await?;
    let mut units = Vec::new();
    for name in manifest.units.keys() {
        let s = systemd.unit_state(name).await?;
        units.push(UnitRow {
            name: s.name,
            load_state: s.load_state,
            active_state: s.active_state,
            sub_state: s.sub_state,
        });
    }
    let mut containers = Vec::new();
    let mut all_serve = true;
    for (service, spec_path) in &manifest.services {
        let spec = read_spec(spec_path)?;
        let st = engine.container_state(&spec.container).await?;
        all_serve &= st.as_ref().is_some_and(|s| s.serves(&spec));
        containers.push(ContainerRow {
            name: spec.container.clone(),
            service: service.clone(),
            image: st.as_ref().map(|s| s.image.clone()),
            expected_image: spec.image.clone(),
            running: st.as_ref().is_some_and(|s| s.running),
            health: st.map(|s| s.health),
        });
    }
    let matches_current = all_serve && units.iter().all(|u| u.active_state == "active");
    let report = StatusReport {
        generation: Some(current.number),
        hash: Some(current.hash()),
        units,
        containers,
        images: manifest.images.clone(),
        matches_current,
        client_url: Some(manifest.client_url.clone()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("generation {} ({})", current.number, &current.hash()[..12.min(current.hash().len())]);
    for u in &report.units {
        println!("  {:<28} {:<10} {}", u.name, u.active_state, u.sub_state);
    }
    for c in &report.containers {
        let img = c.image.as_deref().unwrap_or("-");
        println!("  {:<28} {:<10} {}", c.name, c.health.as_deref().unwrap_or("absent"), &img[..img.len().min(19)]);
    }
    println!(
        "{}",
        if report.matches_current {
            "running as the current generation says"
        } else {
            "NOT matching the current generation"
        }
    );
    Ok(())
}

fn fmt_time(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let out = std::process::Command::new("date").args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%d %H:%M:%S"]).output();
    out.ok().map_or(secs.to_string(), |o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn list_generations(g: &Global, json: bool) -> Result<()> {
    let layout = layout_for(g)?;
    let gens = Generations::new(&layout);
    let current = gens.current()?.map(|c| c.number);
    let all = gens.list()?;
    if json {
        let rows: Vec<_> = all
            .iter()
            .map(|g| {
                serde_json::json!({
                    "number": g.number,
                    "created": g.created.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                    "hash": g.hash(),
                    "current": Some(g.number) == current,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    for gen_ in &all {
        let mark = if Some(gen_.number) == current { "  (current)" } else { "" };
        println!("{:>4}  {}  {}{mark}", gen_.number, fmt_time(gen_.created), &gen_.hash()[..12.min(gen_.hash().len())]);
    }
    Ok(())
}

async fn logs(g: &Global, service: &str, follow: bool, lines: u32, all: bool) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let layout = layout_for(g)?;
    let current = Generations::new(&layout).current()?.context("nothing has been switched to yet")?;
    let m = current.manifest()?;
    if !m.services.contains_key(service) {
        bail!(
            "no service {service:?} in generation {} (known: {})",
            current.number,
            m.services.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let unit = eval::unit_name(service);
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

/// `a.b.c` → value, for comparing configs key by key.
pub fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// Lines describing how `b` differs from `a`.
pub fn diff_manifests(a: &Manifest, b: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    let units: BTreeSet<&String> = a.units.keys().chain(b.units.keys()).collect();
    for u in units {
        match (a.units.get(u), b.units.get(u)) {
            (Some(x), Some(y)) if x != y => out.push(format!("unit changed: {u}")),
            (None, Some(_)) => out.push(format!("unit added: {u}")),
            (Some(_), None) => out.push(format!("unit removed: {u}")),
            _ => {}
        }
    }
    let services: BTreeSet<&String> = a.images.keys().chain(b.images.keys()).collect();
    for s in services {
        let (x, y) = (a.images.get(s), b.images.get(s));
        if x != y {
            out.push(format!("image {s}: {} -> {}", x.map_or("-", |v| v), y.map_or("-", |v| v)));
        }
    }
    let (mut ca, mut cb) = (BTreeMap::new(), BTreeMap::new());
    flatten("", &a.config, &mut ca);
    flatten("", &b.config, &mut cb);
    let keys: BTreeSet<&String> = ca.keys().chain(cb.keys()).collect();
    for k in keys {
        let (x, y) = (ca.get(k), cb.get(k));
        if x != y {
            out.push(format!("config {k}: {} -> {}", x.map_or("-", |v| v), y.map_or("-", |v| v)));
        }
    }
    out
}

fn diff(g: &Global, a: Option<u32>, b: Option<u32>) -> Result<()> {
    let layout = layout_for(g)?;
    let gens = Generations::new(&layout);
    let current = gens.current()?.context("nothing has been switched to yet")?;
    let gb = match b {
        Some(n) => gens.get(n)?,
        None => current.clone(),
    };
    let ga = match a {
        Some(n) => gens.get(n)?,
        None => gens
            .list()?
            .into_iter()
            .rfind(|x| x.number < gb.number)
            .with_context(|| format!("no generation before {}", gb.number))?,
    };
    let lines = diff_manifests(&ga.manifest()?, &gb.manifest()?);
    println!("generation {} -> {}", ga.number, gb.number);
    if lines.is_empty() {
        println!("  identical");
    }
    for l in lines {
        println!("{}", ui::paint_line(&format!("  {l}")));
    }
    Ok(())
}

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

async fn gc(g: &Global, keep: Option<usize>, older_than: Option<Duration>) -> Result<()> {
    let layout = layout_for(g)?;
    let _lock = generations::lock(&layout, "gc")?;
    let gens = Generations::new(&layout);
    let all = gens.list()?;
    let current = gens.current()?.map(|c| c.number);
    let cutoff = older_than.map(|d| SystemTime::now() - d);
    let victims = gc_victims(&all, current, keep, cutoff);
    for n in &victims {
        gens.remove(&gens.get(*n)?)?;
    }
    // Everything a remaining generation refers to stays.
    // Compared by entry name (`<hash>-<name>`), not by full path: the root may be
    // spelled differently now than when the generation was made.
    let entry_name = |p: &std::path::Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut live: BTreeSet<String> = BTreeSet::new();
    let mut live_images: BTreeSet<String> = BTreeSet::new();
    for gen_ in gens.list()? {
        live.insert(entry_name(&gen_.target));
        let m = gen_.manifest()?;
        live.extend(m.refs.iter().map(|r| entry_name(std::path::Path::new(r))));
        live_images.extend(m.images.values().cloned());
    }
    let mut removed = 0;
    let mut dead_images = Vec::new();
    if let Ok(rd) = std::fs::read_dir(layout.store()) {
        for e in rd {
            let p = e?.path();
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let kind = name.split_once('-').map(|(_, k)| k).unwrap_or("");
            let keep_it = if kind.starts_with("image-") {
                let meta: Option<serde_json::Value> =
                    std::fs::read(p.join("image.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
                let id = meta.and_then(|m| m["id"].as_str().map(String::from)).unwrap_or_default();
                // Image archives are build cache as much as roots: keep those in use.
                let used = live_images.contains(&id);
                if !used && !id.is_empty() {
                    dead_images.push(id);
                }
                used || name.starts_with(".tmp-")
            } else {
                // `-masctl` entries are binaries `masctl try` runs hosts from.
                live.contains(&name) || name.starts_with(".tmp-") || kind == "masctl"
            };
            if !keep_it {
                make_writable(&p);
                std::fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
                removed += 1;
            }
        }
    }
    if let Ok(engine) = Engine::connect().await {
        for id in dead_images {
            let _ = engine.remove_image(&id).await;
        }
    }
    ui::step(format!("deleted {} generations and {removed} store entries", victims.len()));
    Ok(())
}

fn make_writable(p: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    for e in walk(p) {
        if let Ok(m) = std::fs::symlink_metadata(&e)
            && !m.is_symlink()
        {
            let _ = std::fs::set_permissions(&e, std::fs::Permissions::from_mode(m.permissions().mode() | 0o200));
        }
    }
}

fn walk(p: &std::path::Path) -> Vec<PathBuf> {
    let mut out = vec![p.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn diff_lists_units_images_and_config_keys() {
        let m = |unit_hash: &str, img: &str, level: &str| Manifest {
            format: 1,
            server_name: "e.com".into(),
            instance: "masctl".into(),
            config: serde_json::json!({"server_name": "e.com", "synapse": {"log_level": level}}),
            images: [("synapse".to_string(), img.to_string())].into(),
            services: BTreeMap::new(),
            units: [("masctl-synapse.service".to_string(), unit_hash.to_string())].into(),
            refs: vec![],
            client_url: String::new(),
            databases: vec!["synapse".into()],
            mas: Default::default(),
        };
        assert!(diff_manifests(&m("1", "a", "INFO"), &m("1", "a", "INFO")).is_empty());
        let d = diff_manifests(&m("1", "a", "INFO"), &m("2", "b", "DEBUG"));
        assert_eq!(
            d,
            [
                "unit changed: masctl-synapse.service",
                "image synapse: a -> b",
                "config synapse.log_level: \"INFO\" -> \"DEBUG\"",
            ]
        );
    }
}
