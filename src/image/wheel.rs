//! Installing a wheel into a [`Tree`] the way pip would, minus byte-compilation
//! (`.pyc` files would make builds differ and the root is read-only anyway).

use std::io::{Cursor, Read};

use anyhow::{Context, Result, bail};

use super::tree::{Node, Tree};

pub const SITE: &str = "usr/lib/python3/dist-packages";
const SCRIPTS: &str = "usr/local/bin";
const DATA_PREFIX: &str = "usr/local";

/// Where a file of the archive lands, or `None` for parts that are not installed.
fn destination(name: &str, data_dir: &str) -> Option<(String, bool)> {
    let Some(rest) = name.strip_prefix(data_dir).and_then(|r| r.strip_prefix('/')) else {
        return Some((format!("{SITE}/{name}"), false));
    };
    let (scheme, path) = rest.split_once('/')?;
    match scheme {
        "purelib" | "platlib" => Some((format!("{SITE}/{path}"), false)),
        "scripts" => Some((format!("{SCRIPTS}/{path}"), true)),
        "data" => Some((format!("{DATA_PREFIX}/{path}"), false)),
        _ => None,
    }
}

/// `#!python` (and `#!/path/to/python`) in wheel scripts means "the interpreter".
fn fix_shebang(data: Vec<u8>, python: &str) -> Vec<u8> {
    if data.starts_with(b"#!python") || data.starts_with(b"#!/usr/bin/env python") {
        let end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
        let mut out = format!("#!{python}").into_bytes();
        out.extend_from_slice(&data[end..]);
        return out;
    }
    data
}

/// `[console_scripts]` entries of `entry_points.txt` as (name, module, function).
pub fn console_scripts(entry_points: &str) -> Vec<(String, String, String)> {
    let mut in_section = false;
    let mut out = Vec::new();
    for line in entry_points.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[console_scripts]";
        } else if in_section && let Some((name, target)) = line.split_once('=') {
            let target = target.split('[').next().unwrap_or("").trim();
            if let Some((module, func)) = target.split_once(':') {
                out.push((name.trim().into(), module.trim().into(), func.trim().into()));
            }
        }
    }
    out
}

/// Unpacks the wheel; `dist` is its `<name>-<version>` prefix as in the file name.
pub fn install(wheel: &[u8], filename: &str, python: &str, tree: &mut Tree) -> Result<()> {
    let mut parts = filename.trim_end_matches(".whl").splitn(3, '-');
    let (Some(n), Some(v)) = (parts.next(), parts.next()) else {
        bail!("{filename} is not a wheel file name");
    };
    let data_dir = format!("{n}-{v}.data");
    let dist_info = format!("{n}-{v}.dist-info");
    let mut zip = zip::ZipArchive::new(Cursor::new(wheel)).with_context(|| format!("{filename} is not a zip"))?;
    let mut entry_points = None;
    for i in 0..zip.len() {
        let mut f = zip.by_index(i)?;
        if f.is_dir() {
            continue;
        }
        let name = f.name()?.into_owned();
        let mut data = Vec::with_capacity(f.size() as usize);
        f.read_to_end(&mut data)?;
        if name == format!("{dist_info}/entry_points.txt") {
            entry_points = Some(String::from_utf8_lossy(&data).into_owned());
        }
        let Some((dest, is_script)) = destination(&name, &data_dir) else {
            continue;
        };
        let exec = f.unix_mode().is_some_and(|m| m & 0o111 != 0);
        let (data, mode) =
            if is_script { (fix_shebang(data, python), 0o755) } else { (data, if exec { 0o755 } else { 0o644 }) };
        tree.insert(&dest, Node::file(data, mode)).with_context(|| format!("{filename}: {name}"))?;
    }
    tree.insert(&format!("{SITE}/{dist_info}/INSTALLER"), Node::file("masctl\n", 0o644))?;
    for (name, module, func) in console_scripts(entry_points.as_deref().unwrap_or("")) {
        let script = format!("#!{python}\nimport sys\nfrom {module} import {func}\nsys.exit({func}())\n");
        tree.insert(&format!("{SCRIPTS}/{name}"), Node::file(script, 0o755))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::tree::Kind;
    use std::io::Write;

    #[test]
    fn destination_table() {
        let d = "pkg-1.0.data";
        let cases = [
            ("pkg/__init__.py", Some(("usr/lib/python3/dist-packages/pkg/__init__.py", false))),
            ("pkg-1.0.data/platlib/_x.so", Some(("usr/lib/python3/dist-packages/_x.so", false))),
            ("pkg-1.0.data/scripts/tool", Some(("usr/local/bin/tool", true))),
            ("pkg-1.0.data/data/share/x", Some(("usr/local/share/x", false))),
            ("pkg-1.0.data/headers/x.h", None),
        ];
        for (name, want) in cases {
            let got = destination(name, d);
            assert_eq!(got.as_ref().map(|(p, s)| (p.as_str(), *s)), want, "{name}");
        }
    }

    #[test]
    fn console_scripts_parse() {
        let ep = "[console_scripts]\nsynctl = synapse._scripts.synctl:main\nx = a.b:c [extra]\n[other]\ny = z:w\n";
        assert_eq!(
            console_scripts(ep),
            vec![
                ("synctl".into(), "synapse._scripts.synctl".into(), "main".into()),
                ("x".into(), "a.b".into(), "c".into())
            ]
        );
    }

    #[test]
    fn install_small_wheel() {
        let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let o = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
        z.start_file("demo/__init__.py", o).unwrap();
        z.write_all(b"X = 1\n").unwrap();
        z.start_file("demo-1.0.dist-info/entry_points.txt", o).unwrap();
        z.write_all(b"[console_scripts]\ndemo = demo:main\n").unwrap();
        z.start_file("demo-1.0.data/scripts/raw", o).unwrap();
        z.write_all(b"#!python\nprint(1)\n").unwrap();
        let bytes = z.finish().unwrap().into_inner();
        let mut t = Tree::new();
        install(&bytes, "demo-1.0-py3-none-any.whl", "/usr/bin/python3.11", &mut t).unwrap();
        assert!(t.get("usr/lib/python3/dist-packages/demo/__init__.py").is_some());
        let Kind::File(raw) = &t.get("usr/local/bin/raw").unwrap().kind else { panic!() };
        assert_eq!(raw, b"#!/usr/bin/python3.11\nprint(1)\n");
        let demo = t.get("usr/local/bin/demo").unwrap();
        assert_eq!(demo.mode, 0o755);
        assert!(t.get("usr/lib/python3/dist-packages/demo-1.0.dist-info/INSTALLER").is_some());
    }
}
