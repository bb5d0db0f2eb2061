//! What maintainer scripts and image tooling would have made, synthesized so the
//! rootfs works without running any of them.

use std::collections::BTreeMap;

use anyhow::Result;

use super::decl::{ImageDecl, User};
use super::tree::{Kind, Node, Tree};

/// `/etc/passwd` and `/etc/group` for root, nobody and the declared service users.
pub fn passwd_group(users: &[User]) -> (String, String) {
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/sh\n");
    let mut group = String::from("root:x:0:\n");
    let mut sorted: Vec<&User> = users.iter().collect();
    sorted.sort_by_key(|u| u.uid);
    for u in sorted {
        passwd.push_str(&format!("{}:x:{}:{}:{}:{}:/usr/sbin/nologin\n", u.name, u.uid, u.gid, u.name, u.home));
        group.push_str(&format!("{}:x:{}:\n", u.name, u.gid));
    }
    passwd.push_str("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
    group.push_str("nogroup:x:65534:\n");
    (passwd, group)
}

/// The CA bundle `update-ca-certificates` would build from `/usr/share/ca-certificates`.
pub fn ca_bundle(tree: &Tree) -> Option<Vec<u8>> {
    let mut certs: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for (p, n) in tree.iter() {
        if let (Some(rest), Kind::File(data)) = (p.strip_prefix("usr/share/ca-certificates/"), &n.kind)
            && rest.ends_with(".crt")
        {
            certs.insert(p, data);
        }
    }
    if certs.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for data in certs.values() {
        out.extend_from_slice(data);
        if !data.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    Some(out)
}

/// Root-level skeleton of a bottom layer: merged-/usr links and a sticky `/tmp`.
pub fn root_skeleton(tree: &mut Tree) -> Result<()> {
    for top in ["bin", "sbin", "lib", "lib64"] {
        tree.insert(top, Node::symlink(format!("usr/{top}")))?;
        tree.insert(&format!("usr/{top}"), Node::dir(0o755))?;
    }
    tree.insert("tmp", Node::dir(0o1777))?;
    tree.insert("etc/machine-id", Node::file("uninitialized\n", 0o444))?;
    Ok(())
}

/// Files a declaration asks for directly: users, directories, symlinks, `/bin/sh`.
pub fn declared_files(decl: &ImageDecl, tree: &mut Tree) -> Result<()> {
    if !decl.users.is_empty() {
        let (passwd, group) = passwd_group(&decl.users);
        tree.insert("etc/passwd", Node::file(passwd, 0o644))?;
        tree.insert("etc/group", Node::file(group, 0o644))?;
    }
    if matches!(tree.get("usr/bin/dash").map(|n| &n.kind), Some(Kind::File(_))) {
        // dash's maintainer scripts make this link; its data.tar does not ship it.
        tree.insert("usr/bin/sh", Node::symlink("dash"))?;
    }
    if let Some(bundle) = ca_bundle(tree) {
        tree.insert("etc/ssl/certs/ca-certificates.crt", Node::file(bundle, 0o644))?;
    }
    for d in &decl.dirs {
        let mut n = Node::dir(d.mode);
        n.uid = d.uid.into();
        n.gid = d.gid.into();
        tree.remove_subtree(d.path.trim_start_matches('/'));
        tree.insert(&d.path, n)?;
    }
    for (link, target) in &decl.symlinks {
        tree.insert(link, Node::symlink(target.clone()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_sorted_by_uid() {
        let users = vec![
            User { name: "synapse".into(), uid: 991, gid: 991, home: "/data".into() },
            User { name: "postgres".into(), uid: 999, gid: 999, home: "/var/lib/postgresql".into() },
        ];
        let (p, g) = passwd_group(&users);
        let names: Vec<_> = p.lines().map(|l| l.split(':').next().unwrap()).collect();
        assert_eq!(names, ["root", "synapse", "postgres", "nobody"]);
        assert!(g.contains("postgres:x:999:\n"));
    }

    #[test]
    fn ca_bundle_is_sorted_concatenation() {
        let mut t = Tree::new();
        t.insert("usr/share/ca-certificates/mozilla/B.crt", Node::file("B", 0o644)).unwrap();
        t.insert("usr/share/ca-certificates/mozilla/A.crt", Node::file("A\n", 0o644)).unwrap();
        t.insert("usr/share/ca-certificates/README", Node::file("no", 0o644)).unwrap();
        assert_eq!(ca_bundle(&t).unwrap(), b"A\nB\n");
        assert!(ca_bundle(&Tree::new()).is_none());
    }

    #[test]
    fn dash_gets_its_sh_link() {
        let mut t = Tree::new();
        t.insert("usr/bin/dash", Node::file("elf", 0o755)).unwrap();
        let decl: ImageDecl = toml::from_str("").unwrap();
        declared_files(&decl, &mut t).unwrap();
        assert_eq!(t.get("usr/bin/sh").unwrap().kind, Kind::Symlink("dash".into()));
    }
}
