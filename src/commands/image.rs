//! `masctl image …`: lock, build, load, pull, list.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::cli::{Global, ImageCommand};
use crate::docker::Engine;
use crate::image::build::{Builder, Built, base_packages};
use crate::image::decl::ImagesDir;
use crate::image::fetch::{Cache, Sources, fetch_url, http};
use crate::image::lock::{LOCK_VERSION, Lock};
use crate::image::reference::Reference;
use crate::image::{resolve_apt, resolve_pip};
use crate::store::Store;
use crate::{fsutil, ui};

pub struct Ctx {
    images: ImagesDir,
    store: Store,
    cache: Cache,
}

impl Ctx {
    /// The state root as every command resolves it (`--root`, the config's, the default).
    pub fn new(g: &Global) -> Result<Ctx> {
        Ok(Ctx::with_root(g, super::stack::layout_for(g)?.root()))
    }

    pub fn with_root(g: &Global, root: &std::path::Path) -> Ctx {
        Ctx {
            images: super::images_dir(g),
            store: Store::new(root.join("store")),
            cache: Cache::new(g.cache.clone().unwrap_or_else(|| root.join("cache"))),
        }
    }

    /// Makes `image` (a recipe name or a pinned reference) present in Docker and
    /// returns its ID: built and loaded, or pulled by digest.
    pub async fn ensure(&self, engine: &Engine, image: &str) -> Result<String> {
        if image.contains('@') {
            let r = Reference::parse(image)?;
            if let Some(s) = engine.inspect(&r.pinned()).await? {
                return Ok(s.id);
            }
            return Ok(engine.pull(&r).await?.id);
        }
        let mut b = self.builder(Vec::new());
        load(self, &mut b, engine, image).await
    }

    fn builder(&self, inputs: Vec<(String, std::path::PathBuf)>) -> Builder<'_> {
        Builder {
            images: &self.images,
            store: &self.store,
            cache: &self.cache,
            inputs: inputs.into_iter().collect::<BTreeMap<_, _>>(),
            sources: Sources::default(),
        }
    }
}

pub async fn run(g: &Global, cmd: ImageCommand) -> Result<()> {
    let ctx = Ctx::new(g)?;
    match cmd {
        ImageCommand::Lock { names } => names.iter().try_for_each(|n| lock(&ctx, n)),
        ImageCommand::Build { names, check, inputs } => {
            let mut b = ctx.builder(inputs);
            for n in &names {
                let built = b.build(n)?;
                if check {
                    ui::step(format!("{n}: building again to check reproducibility"));
                    b.check(n, &built)?;
                    ui::step(format!("{n}: reproducible, archives are byte-identical"));
                }
                println!("{n} {}", built.id);
            }
            Ok(())
        }
        ImageCommand::Load { names, inputs } => {
            let engine = Engine::connect().await?;
            let mut b = ctx.builder(inputs);
            for n in &names {
                let id = load(&ctx, &mut b, &engine, n).await?;
                println!("{n} {id}");
            }
            Ok(())
        }
        ImageCommand::Pull { reference } => {
            let r = Reference::parse(&reference)?;
            let engine = Engine::connect().await?;
            let state = engine.pull(&r).await?;
            println!("{} {}", r.pinned(), state.id);
            Ok(())
        }
        ImageCommand::List { json } => list(&ctx, json).await,
    }
}

fn lock(ctx: &Ctx, name: &str) -> Result<()> {
    let decl = ctx.images.load(name)?;
    if decl.is_upstream() {
        bail!("{name} is an upstream image pinned by digest in {name}.toml; there is nothing to lock");
    }
    let mut lock = Lock { version: LOCK_VERSION, inputs: decl.lock_inputs_hash(), ..Default::default() };
    if let Some(debian) = &decl.debian {
        let base = base_packages(&ctx.images, &decl)?;
        let sp = ui::spinner(&format!("resolving {} Debian packages with apt", debian.packages.len()));
        lock.debs = resolve_apt::resolve(debian, &base)?;
        sp.finish_and_clear();
    }
    if let Some(py) = &decl.python {
        let sp = ui::spinner("resolving Python requirements with pip");
        let resolved = resolve_pip::resolve(py)?;
        sp.finish_and_clear();
        // The index gave hashes; sizes come from the files themselves, which also
        // warms the cache for the build.
        let agent = http();
        let bar = ui::count_bar(resolved.len() as u64, "wheels");
        for (mut pin, url) in resolved {
            bar.set_message(pin.filename().to_string());
            let data = fetch_url(&agent, &url)?;
            pin.size = data.len() as u64;
            let sha = ctx.cache.insert(&data)?;
            if sha != pin.sha256 {
                bail!("{} downloaded with sha256 {sha}, the index said {}", pin.filename(), pin.sha256);
            }
            lock.wheels.push(pin);
            bar.inc(1);
        }
        bar.finish_and_clear();
    }
    let path = ctx.images.lock_path(name);
    fsutil::write_atomic(&path, lock.to_toml()?.as_bytes(), 0o644)?;
    ui::step(format!(
        "{name}: locked {} packages and {} wheels ({}) into {}",
        lock.debs.len(),
        lock.wheels.len(),
        ui::human_bytes(lock.total_size()),
        path.display()
    ));
    Ok(())
}

async fn load(ctx: &Ctx, b: &mut Builder<'_>, engine: &Engine, name: &str) -> Result<String> {
    let decl = ctx.images.load(name)?;
    if let Some(up) = &decl.upstream {
        let r = Reference::parse(&up.reference)?;
        if let Some(s) = engine.inspect(&r.pinned()).await? {
            ui::detail(format!("{name}: already pulled"));
            return Ok(s.id);
        }
        return Ok(engine.pull(&r).await?.id);
    }
    let built = b.build(name)?;
    if let Some(s) = engine.inspect(&built.id).await? {
        verify_loaded(&built, &s.id, &s.layers)?;
        ui::detail(format!("{name}: already loaded"));
        return Ok(built.id);
    }
    let sp = ui::spinner(&format!("loading {name} into Docker"));
    engine.load(&built.archive).await?;
    sp.finish_and_clear();
    let s = engine
        .inspect(&built.id)
        .await?
        .with_context(|| format!("Docker accepted the archive of {name} but has no image {}", built.id))?;
    verify_loaded(&built, &s.id, &s.layers)?;
    Ok(built.id)
}

fn verify_loaded(built: &Built, id: &str, layers: &[String]) -> Result<()> {
    if id != built.id || layers != built.diff_ids {
        bail!(
            "{}: Docker holds {id} with layers {layers:?}, but the build is {} with {:?}",
            built.name,
            built.id,
            built.diff_ids
        );
    }
    Ok(())
}

#[derive(Serialize)]
struct Row {
    name: String,
    kind: &'static str,
    id: Option<String>,
    archive: Option<String>,
    size: Option<u64>,
    loaded: bool,
    reference: Option<String>,
}

async fn list(ctx: &Ctx, json: bool) -> Result<()> {
    let engine = match Engine::connect().await {
        Ok(e) => Some(e),
        Err(e) => {
            ui::warn(format!("{e:#}; showing nothing as loaded"));
            None
        }
    };
    let b = ctx.builder(Vec::new());
    let mut rows = Vec::new();
    for name in ctx.images.names()? {
        let decl = ctx.images.load(&name)?;
        let row = if let Some(up) = &decl.upstream {
            let r = Reference::parse(&up.reference)?;
            let state = match &engine {
                Some(e) => e.inspect(&r.pinned()).await?,
                None => None,
            };
            Row {
                name,
                kind: "upstream",
                id: state.as_ref().map(|s| s.id.clone()),
                archive: None,
                size: None,
                loaded: state.is_some(),
                reference: Some(up.reference.clone()),
            }
        } else {
            // A recipe whose lock or inputs are missing is listed as not built.
            let built = b.find(&name).unwrap_or(None);
            let loaded = match (&engine, &built) {
                (Some(e), Some(bt)) => e.inspect(&bt.id).await?.is_some(),
                _ => false,
            };
            Row {
                name,
                kind: "recipe",
                id: built.as_ref().map(|b| b.id.clone()),
                archive: built.as_ref().map(|b| b.archive.display().to_string()),
                size: built.as_ref().map(|b| b.size),
                loaded,
                reference: None,
            }
        };
        rows.push(row);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:<12} {:<9} {:<20} {:>10}  STATE", "NAME", "KIND", "ID", "SIZE");
    for r in rows {
        let id =
            r.id.as_deref()
                .map_or("-".to_string(), |i| i.trim_start_matches("sha256:")[..12.min(i.len() - 7)].to_string());
        let size = r.size.map_or("-".into(), ui::human_bytes);
        let state = match (r.archive.is_some() || r.kind == "upstream", r.loaded) {
            (_, true) => "loaded",
            (true, false) if r.kind == "recipe" => "built",
            _ => "not built",
        };
        println!("{:<12} {:<9} {:<20} {:>10}  {state}", r.name, r.kind, id, size);
    }
    Ok(())
}
