//! A root filesystem directory (e.g. from debootstrap) turned into a one-layer image
//! with the same deterministic writer as recipes use.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};

use super::layer::write_layer;
use super::oci::{self, LayerWithOrigin, RunConfig};
use super::tree::{Kind, Node, Tree};

fn walk(root: &Path, rel: &str, tree: &mut Tree, inodes: &mut BTreeMap<(u64, u64), String>) -> Result<()> {
    let dir = if rel.is_empty() { root.to_path_buf() } else { root.join(rel) };
    let mut names: Vec<_> = fs::read_dir(&dir)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let r = if rel.is_empty() {
            name.to_string_lossy().into_owned()
        } else {
            format!("{rel}/{}", name.to_string_lossy())
        };
        let p = root.join(&r);
        let m = fs::symlink_metadata(&p).with_context(|| format!("reading {}", p.display()))?;
        let mode = m.mode() & 0o7777;
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink(fs::read_link(&p)?.to_string_lossy().into_owned())
        } else if ft.is_file() {
            if m.nlink() > 1 {
                if let Some(first) = inodes.get(&(m.dev(), m.ino())) {
                    tree.insert(
                        &r,
                        Node { kind: Kind::Hardlink(first.clone()), mode, uid: m.uid().into(), gid: m.gid().into() },
                    )?;
                    continue;
                }
                inodes.insert((m.dev(), m.ino()), r.clone());
            }
            Kind::File(fs::read(&p)?)
        } else {
            continue; // devices, sockets, FIFOs: the runtime provides /dev
        };
        let is_dir = kind == Kind::Dir;
        tree.insert(&r, Node { kind, mode, uid: m.uid().into(), gid: m.gid().into() })?;
        if is_dir {
            walk(root, &r, tree, inodes)?;
        }
    }
    Ok(())
}

pub fn tree_from_dir(root: &Path) -> Result<Tree> {
    let mut tree = Tree::new();
    walk(root, "", &mut tree, &mut BTreeMap::new())?;
    Ok(tree)
}

/// Writes `<dir>` as an image archive to `out`; returns the image ID.
pub fn archive_dir(root: &Path, run: &RunConfig, repo: &str, tag: &str, out: &Path) -> Result<String> {
    let tree = tree_from_dir(root)?;
    let layer = write_layer(&tree)?;
    let layers = [LayerWithOrigin { layer: &layer, comment: format!("imported from {}", root.display()) }];
    let json = oci::image_json(run, &layers)?;
    let f = fs::File::create(out)?;
    oci::write_archive(std::io::BufWriter::new(f), &json, &layers, repo, tag)?;
    Ok(format!("sha256:{}", json.config_digest))
}
