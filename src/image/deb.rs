//! Unpacking a `.deb` (an `ar` archive) into a [`Tree`] without running maintainer
//! scripts: `data.tar.*` goes in as is (merged into `/usr`), `control` is kept in
//! `var/lib/dpkg/status.d/<package>` so scanners still see what the image holds.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, Result, bail};
use tar::EntryType;

use super::tree::{Kind, Node, Tree, merge_usr, normalize};

/// The fields of a package's `control` file that the builder checks against the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    pub package: String,
    pub version: String,
    pub architecture: String,
    pub text: String,
}

/// Parses one RFC 822-style stanza into fields (continuation lines are appended).
pub fn parse_stanza(text: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(k) = &last {
                let v: &mut String = fields.entry(k.clone()).or_default();
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            fields.insert(k.trim().to_string(), v.trim().to_string());
            last = Some(k.trim().to_string());
        }
    }
    fields
}

fn decompress(name: &str, data: Vec<u8>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    if name.ends_with(".xz") {
        liblzma::read::XzDecoder::new(&data[..]).read_to_end(&mut out)?;
    } else if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(&data[..]).read_to_end(&mut out)?;
    } else if name.ends_with(".tar") {
        return Ok(data);
    } else {
        bail!("unsupported compression for member {name}");
    }
    Ok(out)
}

/// Splits a `.deb` into its control text and uncompressed data tar.
fn members(deb: &[u8]) -> Result<(String, Vec<u8>)> {
    let mut ar = ar::Archive::new(deb);
    let (mut control, mut data) = (None, None);
    while let Some(entry) = ar.next_entry() {
        let mut entry = entry?;
        let name = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        let mut raw = Vec::new();
        entry.read_to_end(&mut raw)?;
        if name.starts_with("control.tar") {
            let tar = decompress(&name, raw)?;
            let mut a = tar::Archive::new(&tar[..]);
            for e in a.entries()? {
                let mut e = e?;
                if normalize(&e.path()?.to_string_lossy())?.as_deref() == Some("control") {
                    let mut s = String::new();
                    e.read_to_string(&mut s)?;
                    control = Some(s);
                }
            }
        } else if name.starts_with("data.tar") {
            data = Some(decompress(&name, raw)?);
        }
    }
    match (control, data) {
        (Some(c), Some(d)) => Ok((c, d)),
        _ => bail!("not a Debian package (no control or data member)"),
    }
}

/// Resolves a relative symlink target against the directory the link was shipped in,
/// so moving the link into `/usr` does not change what it points at.
fn absolute_target(original_path: &str, target: &str) -> String {
    let mut parts: Vec<&str> = original_path.split('/').collect();
    parts.pop();
    for comp in target.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Adds the package's files to `tree` and returns its control fields.
pub fn unpack(deb: &[u8], tree: &mut Tree) -> Result<Control> {
    let (control_text, data) = members(deb)?;
    let fields = parse_stanza(&control_text);
    let get = |k: &str| fields.get(k).cloned().with_context(|| format!("control has no {k} field"));
    let control = Control {
        package: get("Package")?,
        version: get("Version")?,
        architecture: get("Architecture")?,
        text: control_text.clone(),
    };

    let mut archive = tar::Archive::new(&data[..]);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw_path = entry.path()?.to_string_lossy().into_owned();
        let Some(orig) = normalize(&raw_path)? else {
            continue;
        };
        let path = merge_usr(&orig);
        let h = entry.header();
        let (mode, uid, gid) = (h.mode()? & 0o7777, h.uid()?, h.gid()?);
        let kind = match h.entry_type() {
            EntryType::Directory => Kind::Dir,
            EntryType::Regular | EntryType::Continuous => {
                let mut buf = Vec::with_capacity(h.size()? as usize);
                entry.read_to_end(&mut buf)?;
                Kind::File(buf)
            }
            EntryType::Symlink => {
                let target = entry.link_name()?.context("symlink without target")?;
                let target = target.to_string_lossy().into_owned();
                if orig != path && !target.starts_with('/') {
                    Kind::Symlink(absolute_target(&orig, &target))
                } else {
                    Kind::Symlink(target)
                }
            }
            EntryType::Link => {
                let target = entry.link_name()?.context("hard link without target")?;
                let target = normalize(&target.to_string_lossy())?.context("hard link to the root")?;
                Kind::Hardlink(merge_usr(&target))
            }
            // Device nodes and FIFOs are the runtime's business, not the image's.
            _ => continue,
        };
        let mode = if matches!(kind, Kind::Symlink(_)) { 0o777 } else { mode };
        tree.insert(&path, Node { kind, mode, uid, gid })
            .with_context(|| format!("{} ships {raw_path}", control.package))?;
    }
    let status = format!("{}\n", control_text.trim_end());
    tree.insert(&format!("var/lib/dpkg/status.d/{}", control.package), Node::file(status, 0o644))?;
    Ok(control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanza_fields_and_continuations() {
        let f = parse_stanza("Package: libc6\nVersion: 2.36-9\nDescription: GNU C\n more text\n");
        assert_eq!(f["Package"], "libc6");
        assert_eq!(f["Version"], "2.36-9");
        assert_eq!(f["Description"], "GNU C\nmore text");
    }

    #[test]
    fn absolute_target_table() {
        let cases = [
            ("lib/x86_64-linux-gnu/libz.so", "libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1"),
            ("lib/x/a", "../../usr/lib/b", "/usr/lib/b"),
            ("bin/sh", "./dash", "/bin/dash"),
        ];
        for (path, target, want) in cases {
            assert_eq!(absolute_target(path, target), want);
        }
    }

    /// Builds a tiny .deb in memory, the way dpkg-deb lays one out.
    fn fake_deb() -> Vec<u8> {
        fn tar_of(entries: &[(&str, EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
            let mut b = tar::Builder::new(Vec::new());
            for (p, t, data, link) in entries {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(*t);
                h.set_mode(0o755);
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(0);
                h.set_size(data.len() as u64);
                match link {
                    Some(l) => b.append_link(&mut h, p, l).unwrap(),
                    None => b.append_data(&mut h, p, *data).unwrap(),
                }
            }
            b.into_inner().unwrap()
        }
        let control =
            tar_of(&[("./control", EntryType::Regular, b"Package: demo\nVersion: 1.0-1\nArchitecture: amd64\n", None)]);
        let data = tar_of(&[
            ("./", EntryType::Directory, b"", None),
            ("./bin/", EntryType::Directory, b"", None),
            ("./bin/demo", EntryType::Regular, b"#!/bin/sh\n", None),
            ("./bin/demo2", EntryType::Link, b"", Some("./bin/demo")),
            ("./lib/x/", EntryType::Directory, b"", None),
            ("./lib/x/libd.so", EntryType::Symlink, b"", Some("libd.so.1")),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &data).unwrap();
        let data_gz = gz.finish().unwrap();
        let mut ar = ar::Builder::new(Vec::new());
        for (name, body) in [("debian-binary", b"2.0\n".to_vec()), ("control.tar", control), ("data.tar.gz", data_gz)] {
            let h = ar::Header::new(name.as_bytes().to_vec(), body.len() as u64);
            ar.append(&h, &body[..]).unwrap();
        }
        ar.into_inner().unwrap()
    }

    #[test]
    fn unpack_merges_usr_and_records_status() {
        let mut t = Tree::new();
        let c = unpack(&fake_deb(), &mut t).unwrap();
        assert_eq!((c.package.as_str(), c.version.as_str()), ("demo", "1.0-1"));
        assert!(matches!(t.get("usr/bin/demo").unwrap().kind, Kind::File(_)));
        assert_eq!(t.get("usr/bin/demo2").unwrap().kind, Kind::Hardlink("usr/bin/demo".into()));
        assert_eq!(t.get("usr/lib/x/libd.so").unwrap().kind, Kind::Symlink("/lib/x/libd.so.1".into()));
        assert!(t.get("bin").is_none());
        assert!(t.get("var/lib/dpkg/status.d/demo").is_some());
    }

    #[test]
    fn garbage_is_not_a_package() {
        assert!(unpack(b"!<arch>\n", &mut Tree::new()).is_err());
    }
}
