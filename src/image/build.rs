//! From a declaration and its lock to one archive in the store.
//!
//! Layers: the base image's layers, then this image's packages, then its wheels;
//! declared files go into the topmost of its own layers. The store entry is named
//! by the hash of every input, so an unchanged image is found without building.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::decl::{ImageDecl, ImagesDir};
use super::fetch::{Cache, Sources};
use super::layer::{Layer, write_layer};
use super::lock::{Lock, Pin};
use super::oci::{self, LayerWithOrigin};
use super::tree::{Node, Tree};
use super::{deb, synth, wheel};
use crate::generation::store::Store;
use crate::ui;

/// Bumped whenever the builder would lay out the same inputs differently.
const BUILDER: &str = "masctl-image-builder/1";
pub const ARCHIVE: &str = "image.tar";
const META: &str = "image.json";
/// Image archives are store entries `<input hash>-image-<name>`.
const ENTRY_PREFIX: &str = "image-";

fn entry(name: &str) -> String {
    format!("{ENTRY_PREFIX}{name}")
}

/// Whether a store entry's kind (see [`crate::generation::store::Store::kind`]) is an image archive.
pub fn is_image_entry(kind: &str) -> bool {
    kind.starts_with(ENTRY_PREFIX)
}

/// The image ID an image store entry holds, if its metadata is readable.
pub fn id_in_entry(dir: &Path) -> Option<String> {
    read_built(dir).ok().flatten().map(|b| b.id)
}

pub struct Builder<'a> {
    pub images: &'a ImagesDir,
    pub store: &'a Store,
    pub cache: &'a Cache,
    /// Directories given with `--input NAME=DIR` for `[[copy]]` entries.
    pub inputs: BTreeMap<String, PathBuf>,
    pub sources: Sources,
}

/// A built image as recorded next to its archive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Built {
    pub name: String,
    /// `sha256:<config digest>`, the image ID on Docker's classic store.
    pub id: String,
    pub manifest_digest: String,
    pub repo_tag: String,
    pub diff_ids: Vec<String>,
    /// Uncompressed bytes of all layers.
    pub size: u64,
    #[serde(skip)]
    pub archive: PathBuf,
}

/// Layers of an image and its flattened root (to subtract from what sits above).
struct Stack {
    layers: Vec<(Layer, String)>,
    flat: Tree,
}

fn hash_path(h: &mut Sha256, path: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_dir() {
        let mut names: Vec<_> = fs::read_dir(path)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
        names.sort();
        for n in names {
            h.update(n.as_encoded_bytes());
            h.update([0]);
            hash_path(h, &path.join(&n))?;
        }
    } else if meta.is_symlink() {
        h.update(b"link:");
        h.update(fs::read_link(path)?.as_os_str().as_encoded_bytes());
    } else {
        use std::os::unix::fs::PermissionsExt;
        h.update(format!("file:{:o}:", meta.permissions().mode() & 0o111).as_bytes());
        h.update(fs::read(path)?);
    }
    h.update([0xff]);
    Ok(())
}

/// Adds a local file or directory (recursively, sorted) at `to`.
fn copy_into(tree: &mut Tree, from: &Path, to: &str, mode: Option<u32>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::symlink_metadata(from).with_context(|| format!("copy source {}", from.display()))?;
    if meta.is_dir() {
        tree.insert(to, Node::dir(0o755))?;
        let mut names: Vec<_> = fs::read_dir(from)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
        names.sort();
        for n in names {
            copy_into(tree, &from.join(&n), &format!("{to}/{}", n.to_string_lossy()), None)?;
        }
    } else if meta.is_symlink() {
        tree.insert(to, Node::symlink(fs::read_link(from)?.to_string_lossy().into_owned()))?;
    } else {
        let exec = meta.permissions().mode() & 0o111 != 0;
        let m = mode.unwrap_or(if exec { 0o755 } else { 0o644 });
        tree.insert(to, Node::file(fs::read(from)?, m))?;
    }
    Ok(())
}

impl Builder<'_> {
    fn copy_source(&self, c: &super::decl::Copy) -> Result<PathBuf> {
        match &c.input {
            Some(name) => {
                let dir = self.inputs.get(name).cloned().unwrap_or_else(|| self.images.dir.join(name));
                if !dir.exists() {
                    bail!("input {name:?} not found at {}: pass --input {name}=DIR", dir.display());
                }
                Ok(dir.join(&c.from))
            }
            None => Ok(self.images.dir.join(&c.from)),
        }
    }

    fn lock_for(&self, name: &str, decl: &ImageDecl) -> Result<Lock> {
        if decl.debian.is_none() && decl.python.is_none() {
            return Ok(Lock::default());
        }
        let path = self.images.lock_path(name);
        if !path.exists() {
            bail!("{} does not exist: run `masctl image lock {name}`", path.display());
        }
        let lock = Lock::read(&path)?;
        if lock.inputs != decl.lock_inputs_hash() {
            bail!("{} is out of date with {name}.toml: run `masctl image lock {name}`", path.display());
        }
        Ok(lock)
    }

    /// The hash naming the store entry: every input of this image and of its bases.
    pub fn input_hash(&self, name: &str) -> Result<String> {
        let decl = self.images.load(name)?;
        let lock = self.lock_for(name, &decl)?;
        let mut h = Sha256::new();
        h.update(BUILDER);
        h.update(name);
        h.update(serde_json::to_vec(&decl)?);
        h.update(serde_json::to_vec(&lock.pins().iter().map(|p| &p.sha256).collect::<Vec<_>>())?);
        if let Some(base) = &decl.base {
            h.update(self.input_hash(base)?);
        }
        for c in &decl.copy {
            h.update(c.to.as_bytes());
            hash_path(&mut h, &self.copy_source(c)?)?;
        }
        Ok(hex::encode(h.finalize()))
    }

    /// The store entry of an already built image, if there is one.
    pub fn find(&self, name: &str) -> Result<Option<Built>> {
        match self.store.get(&self.input_hash(name)?, &entry(name)) {
            Some(dir) => read_built(&dir),
            None => Ok(None),
        }
    }

    /// Builds (or finds) the image. `check` builds again into a scratch directory and
    /// fails unless the two archives are byte-identical.
    pub fn build(&mut self, name: &str) -> Result<Built> {
        let hash = self.input_hash(name)?;
        let entry = entry(name);
        if let Some(b) = self.store.get(&hash, &entry).map(|d| read_built(&d)).transpose()?.flatten() {
            ui::detail(format!("{name}: already in the store"));
            return Ok(b);
        }
        let decl = self.images.load(name)?;
        if decl.is_upstream() {
            bail!("{name} is an upstream image: use `masctl image pull` (or `image load`, which pulls it)");
        }
        let stack = self.stack(name)?;
        let dir = self.store.add_dir(&hash, &entry, |tmp| write_image(tmp, name, &decl, &stack).map(|_| ()))?;
        read_built(&dir)?.context("store entry written without its metadata")
    }

    /// Builds the archive again from scratch (no store lookup) and compares bytes.
    pub fn check(&mut self, name: &str, built: &Built) -> Result<()> {
        let decl = self.images.load(name)?;
        let stack = self.stack(name)?;
        let scratch = tempfile::tempdir()?;
        let again = write_image(scratch.path(), name, &decl, &stack)?;
        let (a, b) = (fs::read(&built.archive)?, fs::read(scratch.path().join(ARCHIVE))?);
        if a != b {
            bail!("{name} is not reproducible: the rebuilt archive differs (image {} vs {})", built.id, again.id);
        }
        Ok(())
    }

    fn stack(&mut self, name: &str) -> Result<Stack> {
        let decl = self.images.load(name)?;
        let mut stack = match &decl.base {
            Some(base) => self.stack(base)?,
            None => Stack { layers: Vec::new(), flat: Tree::new() },
        };
        let lock = self.lock_for(name, &decl)?;
        let pins = lock.pins();
        self.cache.fetch_missing(name, &pins, &mut self.sources)?;

        let mut own: Vec<(Tree, String)> = Vec::new();
        if !lock.debs.is_empty() {
            let mut t = self.unpack_debs(name, &lock, &pins)?;
            if stack.layers.is_empty() {
                synth::root_skeleton(&mut t)?;
            }
            own.push((t, format!("{name}: {} Debian packages", lock.debs.len())));
        }
        if !lock.wheels.is_empty() {
            let py = decl.python.as_ref().context("wheels locked without [python]")?;
            let mut t = Tree::new();
            let bar = ui::count_bar(lock.wheels.len() as u64, "wheels");
            for (w, pin) in lock.wheels.iter().zip(pins.iter().skip(lock.debs.len())) {
                bar.set_message(w.filename().to_string());
                let data = self.cache.read(pin)?;
                wheel::install(&data, w.filename(), &py.interpreter, &mut t)
                    .with_context(|| format!("installing {}", w.filename()))?;
                bar.inc(1);
            }
            bar.finish_and_clear();
            own.push((t, format!("{name}: {} Python wheels", lock.wheels.len())));
        }
        if own.is_empty() {
            own.push((Tree::new(), format!("{name}: files")));
        }
        // Declared files sit in the topmost own layer; with the layers below visible,
        // so that e.g. `/bin/sh` is linked where dash is.
        let mut view = stack.flat.clone();
        for (t, _) in &own {
            view.overlay(t)?;
        }
        let before = view.clone();
        synth::declared_files(&decl, &mut view)?;
        for c in &decl.copy {
            copy_into(&mut view, &self.copy_source(c)?, &c.to, c.mode)?;
        }
        let top_tree = own.last_mut().map(|(t, _)| t).expect("non-empty");
        top_tree.overlay(&view.minus(&before))?;

        let patterns = decl.remove_patterns();
        for (mut t, comment) in own {
            t.remove_matching(&patterns);
            let delta = t.minus(&stack.flat);
            stack.flat.overlay(&delta)?;
            let layer = write_layer(&delta)?;
            ui::detail(format!("{comment}: layer sha256:{} ({})", layer.digest, ui::human_bytes(layer.size())));
            stack.layers.push((layer, comment));
        }
        Ok(stack)
    }

    /// Unpacks the locked packages (decompression in parallel, merged in lock order).
    fn unpack_debs(&self, name: &str, lock: &Lock, pins: &[Pin]) -> Result<Tree> {
        let bar = ui::count_bar(lock.debs.len() as u64, "unpack");
        let results: Vec<Result<Tree>> = std::thread::scope(|s| {
            let chunks: Vec<Vec<usize>> = (0..2).map(|k| (k..lock.debs.len()).step_by(2).collect()).collect();
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|idx| {
                    let bar = &bar;
                    s.spawn(move || {
                        idx.into_iter()
                            .map(|i| {
                                let pin = &pins[i];
                                let d = &lock.debs[i];
                                let data = self.cache.read(pin)?;
                                let mut t = Tree::new();
                                let c =
                                    deb::unpack(&data, &mut t).with_context(|| format!("unpacking {}", pin.label))?;
                                if c.package != d.name || c.version != d.version {
                                    bail!("{} contains {} {}, not what the lock says", pin.label, c.package, c.version);
                                }
                                bar.inc(1);
                                Ok((i, t))
                            })
                            .collect::<Result<Vec<_>>>()
                    })
                })
                .collect();
            let mut all: Vec<Result<Tree>> = (0..lock.debs.len()).map(|_| Ok(Tree::new())).collect();
            for h in handles {
                match h.join().expect("unpack thread panicked") {
                    Ok(v) => {
                        for (i, t) in v {
                            all[i] = Ok(t);
                        }
                    }
                    Err(e) => return vec![Err(e)],
                }
            }
            all
        });
        bar.finish_and_clear();
        let mut tree = Tree::new();
        for r in results {
            tree.overlay(&r?)?;
        }
        ui::detail(format!("{name}: {} paths from {} packages", tree.len(), lock.debs.len()));
        Ok(tree)
    }
}

fn read_built(dir: &Path) -> Result<Option<Built>> {
    let meta = dir.join(META);
    if !meta.exists() {
        return Ok(None);
    }
    let mut b: Built =
        serde_json::from_slice(&fs::read(&meta)?).with_context(|| format!("reading {}", meta.display()))?;
    b.archive = dir.join(ARCHIVE);
    Ok(Some(b))
}

/// Writes `image.tar` and `image.json` into `dir`.
fn write_image(dir: &Path, name: &str, decl: &ImageDecl, stack: &Stack) -> Result<Built> {
    let run = decl.config.clone().unwrap_or_default().to_run_config();
    let layers: Vec<LayerWithOrigin> =
        stack.layers.iter().map(|(l, c)| LayerWithOrigin { layer: l, comment: c.clone() }).collect();
    let json = oci::image_json(&run, &layers)?;
    let repo = format!("masctl/{name}");
    let tag = json.config_digest[..16].to_string();
    let file = fs::File::create(dir.join(ARCHIVE))?;
    let w = oci::write_archive(std::io::BufWriter::new(file), &json, &layers, &repo, &tag)?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let built = Built {
        name: name.to_string(),
        id: format!("sha256:{}", json.config_digest),
        manifest_digest: format!("sha256:{}", json.manifest_digest),
        repo_tag: format!("{repo}:{tag}"),
        diff_ids: layers.iter().map(|l| format!("sha256:{}", l.layer.digest)).collect(),
        size: layers.iter().map(|l| l.layer.size()).sum(),
        archive: dir.join(ARCHIVE),
    };
    fs::write(dir.join(META), serde_json::to_vec_pretty(&built)?)?;
    Ok(built)
}

/// Names of the Debian packages an image's bases already have, and those its bases
/// exclude (an exclusion holds for everything built on top).
pub fn base_packages(images: &ImagesDir, decl: &ImageDecl) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut next = decl.base.clone();
    while let Some(b) = next {
        let d = images.load(&b)?;
        if let Some(deb) = &d.debian {
            out.extend(deb.exclude.iter().cloned());
        }
        let lock_path = images.lock_path(&b);
        if lock_path.exists() {
            out.extend(Lock::read(&lock_path)?.debs.into_iter().map(|p| p.name));
        } else if d.debian.is_some() {
            bail!("lock {b} (the base) first: {} does not exist", lock_path.display());
        }
        next = d.base;
    }
    Ok(out)
}
