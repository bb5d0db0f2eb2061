//! Images for the stack: locked, built into the store, loaded into Docker or pulled
//! by digest, and listed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::context::Context;
use crate::docker::Engine;
use crate::generation::store::Store;
use crate::image::build::{Builder, Built, base_packages};
use crate::image::decl::{ImagesDir, PythonInputs};
use crate::image::fetch::{Cache, Sources, exists, fetch_url, http};
use crate::image::lock::{LOCK_VERSION, Lock, WheelPin, merge_keeping};
use crate::image::mirrors;
use crate::image::reference::Reference;
use crate::image::{resolve_apt, resolve_pip};
use crate::{fsutil, ui};

/// Where images come from: their declarations, the store that holds built archives,
/// and the cache of fetched inputs.
pub struct ImageSource {
    images: ImagesDir,
    store: Store,
    cache: Cache,
    /// Input directories named in the config (`[images.inputs]`).
    inputs: BTreeMap<String, PathBuf>,
}

/// One declared image, as `masctl image list` shows it.
#[derive(Serialize)]
pub struct Row {
    pub name: String,
    pub kind: &'static str,
    pub id: Option<String>,
    pub archive: Option<String>,
    pub size: Option<u64>,
    pub loaded: bool,
    pub reference: Option<String>,
}

impl ImageSource {
    pub fn new(images: ImagesDir, store: Store, cache: PathBuf) -> ImageSource {
        ImageSource { images, store, cache: Cache::new(cache), inputs: BTreeMap::new() }
    }

    /// With the config's input directories, when the command has a config.
    pub fn of(ctx: &Context) -> ImageSource {
        let mut s = ImageSource::new(ctx.images.clone(), Store::new(ctx.layout.store()), ctx.cache.clone());
        if let Some(c) = ctx.loaded_config() {
            s.inputs = c.images.inputs.iter().map(|(k, v)| (k.clone(), PathBuf::from(v.get_ref()))).collect();
        }
        s
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
        self.load(&mut b, engine, image).await
    }

    /// A builder; `inputs` name the directories of a recipe's `[[copy]]` entries.
    /// A builder; `inputs` (from `--input`) add to and override the config's.
    pub fn builder(&self, inputs: Vec<(String, PathBuf)>) -> Builder<'_> {
        let mut all = self.inputs.clone();
        all.extend(inputs);
        Builder {
            images: &self.images,
            store: &self.store,
            cache: &self.cache,
            inputs: all,
            sources: Sources::default(),
        }
    }

    /// Builds `name` into the store (with `check`, twice, comparing bytes); its ID.
    pub fn build(&self, b: &mut Builder<'_>, name: &str, check: bool) -> Result<String> {
        let built = b.build(name)?;
        if check {
            ui::step(format!("{name}: building again to check reproducibility"));
            b.check(name, &built)?;
            ui::step(format!("{name}: reproducible, archives are byte-identical"));
        }
        Ok(built.id)
    }

    /// The pinned packages of `lock` that none of the live mirrors serves any more.
    fn gone(&self, lock: &Lock) -> Result<BTreeSet<String>> {
        let mirrors = mirrors::debian_mirrors()?;
        let agent = http();
        let bar = ui::count_bar(lock.debs.len() as u64, "checking pins");
        let mut gone = BTreeSet::new();
        for d in &lock.debs {
            if !mirrors.iter().any(|m| exists(&agent, &format!("{m}/{}", d.path))) {
                gone.insert(d.path.clone());
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(gone)
    }

    /// Resolves a declaration into its lock file with the host's apt and pip. With
    /// `update`, an existing lock changes only where the mirrors dropped a pinned
    /// package (Debian keeps only current versions): those are resolved again.
    pub fn lock(&self, name: &str, update: bool) -> Result<()> {
        let decl = self.images.load(name)?;
        if decl.is_upstream() {
            bail!("{name} is an upstream image pinned by digest in {name}.toml; there is nothing to lock");
        }
        let path = self.images.lock_path(name);
        let old = match update {
            true => Some(Lock::read(&path).with_context(|| format!("--update needs the lock it updates ({name})"))?),
            false => None,
        };
        if let Some(old) = &old
            && old.inputs != decl.lock_inputs_hash()
        {
            bail!(
                "{} was made for another {name}.toml: run `masctl image lock {name}` without --update",
                path.display()
            );
        }
        let gone = match &old {
            Some(old) => self.gone(old)?,
            None => BTreeSet::new(),
        };
        if old.is_some() && gone.is_empty() {
            ui::step(format!("{name}: every pinned package is still on the mirrors; {} is unchanged", path.display()));
            return Ok(());
        }
        let mut lock = Lock {
            version: LOCK_VERSION,
            inputs: decl.lock_inputs_hash(),
            resolved: Some(crate::timestamp::compact(std::time::SystemTime::now())),
            ..Default::default()
        };
        if let Some(debian) = &decl.debian {
            let base = base_packages(&self.images, &decl)?;
            let sp = ui::spinner(&format!("resolving {} Debian packages with apt", debian.packages.len()));
            lock.debs = resolve_apt::resolve(debian, &base)?;
            sp.finish_and_clear();
        }
        if let Some(old) = old {
            for g in &gone {
                ui::step(format!("{name}: {g} is gone from the mirrors; resolved again"));
            }
            lock.debs = merge_keeping(&old.debs, lock.debs, &gone);
            // PyPI keeps every release: the wheels stay as they were.
            lock.wheels = old.wheels;
            return self.write_lock(name, &lock);
        }
        if let Some(py) = &decl.python {
            lock.wheels = self.resolve_wheels(py)?;
        }
        self.write_lock(name, &lock)
    }

    /// Resolves Python requirements with pip and fetches each wheel: the index gave
    /// hashes, sizes come from the files themselves, which also warms the cache for
    /// the build.
    fn resolve_wheels(&self, py: &PythonInputs) -> Result<Vec<WheelPin>> {
        let sp = ui::spinner("resolving Python requirements with pip");
        let resolved = resolve_pip::resolve(py)?;
        sp.finish_and_clear();
        let agent = http();
        let bar = ui::count_bar(resolved.len() as u64, "wheels");
        let mut wheels = Vec::new();
        for (mut pin, url) in resolved {
            bar.set_message(pin.filename().to_string());
            let data = fetch_url(&agent, &url)?;
            pin.size = data.len() as u64;
            let sha = self.cache.insert(&data)?;
            if sha != pin.sha256 {
                bail!("{} downloaded with sha256 {sha}, the index said {}", pin.filename(), pin.sha256);
            }
            wheels.push(pin);
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(wheels)
    }

    fn write_lock(&self, name: &str, lock: &Lock) -> Result<()> {
        let path = self.images.lock_path(name);
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

    /// Builds (if needed) and loads a declared image into Docker, or pulls an upstream
    /// one; verifies what Docker holds and returns the ID.
    pub async fn load(&self, b: &mut Builder<'_>, engine: &Engine, name: &str) -> Result<String> {
        let decl = self.images.load(name)?;
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

    /// Every declared image: built? loaded? (Without Docker, nothing shows as loaded.)
    pub async fn list(&self) -> Result<Vec<Row>> {
        let engine = match Engine::connect().await {
            Ok(e) => Some(e),
            Err(e) => {
                ui::warn(format!("{e:#}; showing nothing as loaded"));
                None
            }
        };
        let b = self.builder(Vec::new());
        let mut rows = Vec::new();
        for name in self.images.names()? {
            let decl = self.images.load(&name)?;
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
        Ok(rows)
    }
}

/// Pulls `reference` (which must pin a digest); returns the pinned form and the ID.
pub async fn pull(reference: &str) -> Result<(String, String)> {
    let r = Reference::parse(reference)?;
    let engine = Engine::connect().await?;
    let state = engine.pull(&r).await?;
    Ok((r.pinned(), state.id))
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
