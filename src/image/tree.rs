//! An in-memory root filesystem: what a layer will contain, before it is a tar.
//!
//! Paths are relative, `/`-separated, with no leading `/` or `./` (`usr/bin/python3.11`).
//! A `BTreeMap` keeps them in byte order of the full path, the order layers are written
//! in: a path's prefix sorts before it, so parents always precede their children.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

/// The fixed modification time of every entry (epoch + 1 s, as Nix and Jib use).
pub const MTIME: u64 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    /// A hard link to another path of the same tree (kept as typeflag `1`).
    Hardlink(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

impl Node {
    pub fn dir(mode: u32) -> Self {
        Node { kind: Kind::Dir, mode, uid: 0, gid: 0 }
    }
    pub fn file(data: impl Into<Vec<u8>>, mode: u32) -> Self {
        Node { kind: Kind::File(data.into()), mode, uid: 0, gid: 0 }
    }
    pub fn symlink(target: impl Into<String>) -> Self {
        Node { kind: Kind::Symlink(target.into()), mode: 0o777, uid: 0, gid: 0 }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

/// Directories merged into `/usr` (Debian's merged-/usr layout); packages that still
/// ship files under the old names are rewritten so that the top-level links work.
const MERGED_USR: [&str; 4] = ["bin", "sbin", "lib", "lib64"];

/// Turns a path as found in an archive (`./usr/bin/x`, `/etc/`, `usr/lib`) into the
/// tree's form, or `None` for the root itself. `..` components are refused.
pub fn normalize(path: &str) -> Result<Option<String>> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => bail!("path {path:?} leaves the image root"),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(parts.join("/")))
}

/// Maps `bin/x` to `usr/bin/x` (and likewise for the other merged directories).
pub fn merge_usr(path: &str) -> String {
    for top in MERGED_USR {
        if path == top {
            return format!("usr/{top}");
        }
        if let Some(rest) = path.strip_prefix(top).and_then(|r| r.strip_prefix('/')) {
            return format!("usr/{top}/{rest}");
        }
    }
    path.to_string()
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }

    /// Inserts a node, creating missing parent directories (0755, root). A directory
    /// over a directory keeps the first one's attributes unless `replace_dir_attrs`;
    /// anything else replaces what was there (later packages win, like dpkg without
    /// diversions).
    pub fn insert(&mut self, path: &str, node: Node) -> Result<()> {
        let Some(path) = normalize(path)? else {
            return Ok(());
        };
        self.ensure_parents(&path);
        match (self.nodes.get(&path), &node.kind) {
            (Some(old), Kind::Dir) if old.kind == Kind::Dir => {}
            (Some(old), _) if old.kind == Kind::Dir && node.kind != Kind::Dir => {
                // A file replacing a directory removes the directory's contents too.
                self.remove_subtree(&path);
                self.nodes.insert(path, node);
            }
            _ => {
                self.nodes.insert(path, node);
            }
        }
        Ok(())
    }

    fn ensure_parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            let parent = &path[..end + i];
            match self.nodes.get(parent) {
                Some(n) if n.kind == Kind::Dir => {}
                _ => {
                    self.nodes.insert(parent.to_string(), Node::dir(0o755));
                }
            }
            end += i + 1;
        }
    }

    /// Removes a path and everything below it.
    pub fn remove_subtree(&mut self, path: &str) {
        let prefix = format!("{path}/");
        self.nodes.retain(|p, _| p != path && !p.starts_with(&prefix));
    }

    /// Removes every path matching one of the glob patterns (`usr/share/doc/**`).
    /// Hard links whose target is removed become regular files, so nothing dangles.
    pub fn remove_matching(&mut self, patterns: &[glob::Pattern]) -> usize {
        if patterns.is_empty() {
            return 0;
        }
        let doomed: Vec<String> =
            self.nodes.keys().filter(|p| patterns.iter().any(|g| g.matches(p))).cloned().collect();
        for p in &doomed {
            self.remove_subtree(p);
        }
        self.resolve_dangling_hardlinks(&doomed);
        doomed.len()
    }

    fn resolve_dangling_hardlinks(&mut self, removed: &[String]) {
        if removed.is_empty() {
            return;
        }
        let dangling: Vec<String> = self
            .nodes
            .iter()
            .filter_map(|(p, n)| match &n.kind {
                Kind::Hardlink(t) if !self.nodes.contains_key(t) => Some(p.clone()),
                _ => None,
            })
            .collect();
        // Nothing left to copy the data from: a removed target takes its link with it.
        for p in dangling {
            self.nodes.remove(&p);
        }
    }

    /// Merges `other` on top of this tree (used to flatten for inspection and tests).
    pub fn overlay(&mut self, other: &Tree) -> Result<()> {
        for (p, n) in &other.nodes {
            self.insert(p, n.clone())?;
        }
        Ok(())
    }

    /// Keeps only entries that `lower` does not already have identically, plus the
    /// parent directories they need. Used so an image's layer does not repeat its base.
    pub fn minus(&self, lower: &Tree) -> Tree {
        let mut out = Tree::new();
        for (p, n) in &self.nodes {
            if n.kind == Kind::Dir {
                continue;
            }
            if lower.nodes.get(p) != Some(n) {
                out.ensure_parents(p);
                out.nodes.insert(p.clone(), n.clone());
            }
        }
        // Copy real directory attributes (e.g. /tmp 1777) for the parents kept.
        for (p, n) in &self.nodes {
            if n.kind == Kind::Dir && (out.nodes.contains_key(p) || lower.nodes.get(p) != Some(n)) {
                out.ensure_parents(p);
                out.nodes.insert(p.clone(), n.clone());
            }
        }
        out
    }

    /// Sum of regular file sizes (what the layer costs, less tar headers).
    pub fn content_size(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| match &n.kind {
                Kind::File(d) => d.len() as u64,
                _ => 0,
            })
            .sum()
    }

    #[cfg(test)]
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_table() {
        let cases = [
            ("./usr/bin/x", Some("usr/bin/x")),
            ("/etc/", Some("etc")),
            ("usr//lib/./a", Some("usr/lib/a")),
            ("./", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).unwrap().as_deref(), want, "{input}");
        }
        assert!(normalize("usr/../../etc").is_err());
    }

    #[test]
    fn merge_usr_table() {
        let cases = [
            ("bin/dash", "usr/bin/dash"),
            ("lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libc.so.6"),
            ("lib64", "usr/lib64"),
            ("sbin/ldconfig", "usr/sbin/ldconfig"),
            ("binary/x", "binary/x"),
            ("libexec/x", "libexec/x"),
            ("usr/bin/x", "usr/bin/x"),
            ("etc/passwd", "etc/passwd"),
        ];
        for (input, want) in cases {
            assert_eq!(merge_usr(input), want, "{input}");
        }
    }

    #[test]
    fn insert_creates_parents_and_later_file_wins() {
        let mut t = Tree::new();
        t.insert("./usr/share/a", Node::file("one", 0o644)).unwrap();
        t.insert("usr/share/a", Node::file("two", 0o600)).unwrap();
        assert_eq!(t.get("usr").unwrap().kind, Kind::Dir);
        assert_eq!(t.get("usr/share").unwrap().mode, 0o755);
        assert_eq!(t.get("usr/share/a").unwrap(), &Node::file("two", 0o600));
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn dir_over_dir_keeps_first_attributes() {
        let mut t = Tree::new();
        t.insert("tmp", Node::dir(0o1777)).unwrap();
        t.insert("tmp", Node::dir(0o755)).unwrap();
        assert_eq!(t.get("tmp").unwrap().mode, 0o1777);
    }

    #[test]
    fn remove_matching_takes_subtrees_and_dangling_hardlinks() {
        let mut t = Tree::new();
        t.insert("usr/share/doc/a/copyright", Node::file("c", 0o644)).unwrap();
        t.insert("usr/share/man/man1/x.1.gz", Node::file("m", 0o644)).unwrap();
        t.insert("usr/bin/x", Node::file("x", 0o755)).unwrap();
        t.insert(
            "usr/bin/y",
            Node { kind: Kind::Hardlink("usr/share/man/man1/x.1.gz".into()), mode: 0o644, uid: 0, gid: 0 },
        )
        .unwrap();
        let pats: Vec<_> = ["usr/share/doc", "usr/share/man"].iter().map(|p| glob::Pattern::new(p).unwrap()).collect();
        t.remove_matching(&pats);
        let left: Vec<_> = t.paths().collect();
        assert_eq!(left, ["usr", "usr/bin", "usr/bin/x", "usr/share"]);
    }

    #[test]
    fn minus_keeps_only_new_entries_and_their_parents() {
        let mut base = Tree::new();
        base.insert("usr/lib/libc.so.6", Node::file("libc", 0o755)).unwrap();
        base.insert("tmp", Node::dir(0o1777)).unwrap();
        let mut img = base.clone();
        img.insert("usr/lib/libpq.so.5", Node::file("pq", 0o644)).unwrap();
        let d = img.minus(&base);
        let left: Vec<_> = d.paths().collect();
        assert_eq!(left, ["usr", "usr/lib", "usr/lib/libpq.so.5"]);
    }
}
