//! Deterministic layer tars: byte order of full paths (parents first), fixed mtime,
//! numeric owners with empty names, real modes, hard links kept within the layer.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

use super::tree::{Kind, MTIME, Tree};

/// A finished layer: its uncompressed tar bytes and their digest (the `diff_id`).
pub struct Layer {
    pub tar: Vec<u8>,
    pub digest: String,
}

impl Layer {
    pub fn size(&self) -> u64 {
        self.tar.len() as u64
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// For each hard-link group, the path that carries the data is the one that sorts
/// first, so a link never points forward in the archive.
fn hardlink_holders(tree: &Tree) -> BTreeMap<String, String> {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (p, n) in tree.iter() {
        if let Kind::Hardlink(t) = &n.kind {
            groups.entry(t.as_str()).or_default().push(p.as_str());
        }
    }
    let mut holder_of = BTreeMap::new();
    for (target, links) in groups {
        let holder = links.iter().copied().chain([target]).min().unwrap_or(target);
        for p in links.into_iter().chain([target]) {
            holder_of.insert(p.to_string(), holder.to_string());
        }
    }
    holder_of
}

pub fn write_layer(tree: &Tree) -> Result<Layer> {
    let holders = hardlink_holders(tree);
    let mut b = tar::Builder::new(Vec::with_capacity(tree.content_size() as usize + tree.len() * 1024));
    for (path, node) in tree.iter() {
        let mut h = Header::new_gnu();
        h.set_mtime(MTIME);
        h.set_uid(node.uid);
        h.set_gid(node.gid);
        h.set_mode(node.mode);
        let holder = holders.get(path);
        let data_node = match (&node.kind, holder) {
            // The group's first path carries the data of the link target.
            (Kind::Hardlink(t), Some(hd)) if hd == path => tree.get(t),
            _ => Some(node),
        };
        match (holder, &node.kind) {
            (Some(hd), _) if hd != path => {
                h.set_entry_type(EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, path, hd).with_context(|| format!("writing hard link {path}"))?;
            }
            _ => match data_node.map(|n| &n.kind) {
                Some(Kind::Dir) => {
                    h.set_entry_type(EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, format!("{path}/"), std::io::empty())?;
                }
                Some(Kind::File(data)) => {
                    if let Some(dn) = data_node {
                        h.set_mode(dn.mode);
                    }
                    h.set_entry_type(EntryType::Regular);
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path, data.as_slice()).with_context(|| format!("writing {path}"))?;
                }
                Some(Kind::Symlink(target)) => {
                    h.set_entry_type(EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, path, target).with_context(|| format!("writing symlink {path}"))?;
                }
                Some(Kind::Hardlink(_)) | None => {
                    anyhow::bail!("hard link {path} points at nothing in its layer")
                }
            },
        }
    }
    let tar = b.into_inner()?;
    let digest = sha256_hex(&tar);
    Ok(Layer { tar, digest })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::tree::Node;

    fn entries(tar: &[u8]) -> Vec<(String, EntryType, u32, u64, Option<String>)> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.entry_type(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn empty_layer_is_the_well_known_digest() {
        let l = write_layer(&Tree::new()).unwrap();
        assert_eq!(l.digest, "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef");
    }

    #[test]
    fn order_modes_and_links() {
        let mut t = Tree::new();
        t.insert("tmp", Node::dir(0o1777)).unwrap();
        t.insert("usr/bin/dash", Node::file("#!", 0o755)).unwrap();
        t.insert("usr/bin/sh", Node::symlink("dash")).unwrap();
        t.insert("usr/bin/a-b", Node::file("x", 0o4755)).unwrap();
        let got = entries(&write_layer(&t).unwrap().tar);
        let want = [
            ("tmp/", EntryType::Directory, 0o1777, None),
            ("usr/", EntryType::Directory, 0o755, None),
            ("usr/bin/", EntryType::Directory, 0o755, None),
            ("usr/bin/a-b", EntryType::Regular, 0o4755, None),
            ("usr/bin/dash", EntryType::Regular, 0o755, None),
            ("usr/bin/sh", EntryType::Symlink, 0o777, Some("dash")),
        ];
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.0.as_str(), g.1, g.2, g.4.as_deref()), (w.0, w.1, w.2, w.3));
            assert_eq!(g.3, MTIME);
        }
    }

    #[test]
    fn hard_link_never_points_forward() {
        let mut t = Tree::new();
        // The target sorts after the link: the writer swaps their roles.
        t.insert("usr/bin/z-real", Node::file("data", 0o755)).unwrap();
        t.insert("usr/bin/a-link", Node { kind: Kind::Hardlink("usr/bin/z-real".into()), mode: 0o755, uid: 0, gid: 0 })
            .unwrap();
        let layer = write_layer(&t).unwrap();
        let got = entries(&layer.tar);
        assert_eq!(got[2].0, "usr/bin/a-link");
        assert_eq!(got[2].1, EntryType::Regular);
        assert_eq!(got[3].0, "usr/bin/z-real");
        assert_eq!(got[3].1, EntryType::Link);
        assert_eq!(got[3].4.as_deref(), Some("usr/bin/a-link"));
    }

    #[test]
    fn same_tree_same_bytes_and_long_paths_survive() {
        let mut t = Tree::new();
        let long = format!("usr/lib/python3/dist-packages/{}/mod.py", "x".repeat(150));
        t.insert(&long, Node::file("print(1)", 0o644)).unwrap();
        let a = write_layer(&t).unwrap();
        let b = write_layer(&t.clone()).unwrap();
        assert_eq!(a.tar, b.tar);
        assert!(entries(&a.tar).iter().any(|e| e.0 == long));
    }
}
