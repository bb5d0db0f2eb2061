//! `images/<name>.toml`: what an image is made of and how it runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::oci::RunConfig;
use crate::located;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ImageDecl {
    #[serde(default)]
    pub description: String,
    /// Another declaration whose layers this image sits on.
    pub base: Option<String>,
    /// A registry image pinned by digest instead of a recipe.
    pub upstream: Option<Upstream>,
    pub debian: Option<DebianInputs>,
    pub python: Option<PythonInputs>,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub copy: Vec<Copy>,
    /// Directories the user supplies (`[images.inputs]` in masctl.toml, or
    /// `--input NAME=DIR`), and what each must hold.
    #[serde(default)]
    pub inputs: BTreeMap<String, InputDecl>,
    #[serde(default)]
    pub symlinks: BTreeMap<String, String>,
    #[serde(default)]
    pub dirs: Vec<Dir>,
    /// Glob patterns of paths this image's own layers drop (docs, man pages, …).
    #[serde(default)]
    pub remove: Vec<String>,
    pub config: Option<RunDecl>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub reference: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DebianInputs {
    pub suite: String,
    #[serde(default = "amd64")]
    pub architecture: String,
    pub packages: Vec<String>,
    /// Packages never installed, and whose dependencies are not followed.
    #[serde(default)]
    pub exclude: Vec<String>,
}

fn amd64() -> String {
    "amd64".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PythonInputs {
    /// Interpreter inside the image; also the shebang of installed scripts.
    pub interpreter: String,
    /// `major.minor`, used to pick wheels.
    pub version: String,
    pub requirements: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// A file or directory supplied at build time, hashed into the build's identity.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Copy {
    /// Relative to the images directory, or to the `--input NAME=DIR` given for `input`.
    pub from: String,
    pub to: String,
    pub input: Option<String>,
    pub mode: Option<u32>,
}

/// A user-supplied input directory of a recipe.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InputDecl {
    /// What the directory is, in words for error messages ("an unpacked MAS release").
    pub description: String,
    /// Paths it must hold, relative to it; a trailing `/` means a directory.
    #[serde(default)]
    pub requires: Vec<String>,
}

impl InputDecl {
    /// Whether `dir` holds what this input needs; the first thing missing, in words.
    pub fn check(&self, dir: &Path) -> std::result::Result<(), String> {
        if !dir.is_dir() {
            return Err(format!("{} is not a directory (expected {})", dir.display(), self.description));
        }
        for r in &self.requires {
            let p = dir.join(r.trim_end_matches('/'));
            let ok = if r.ends_with('/') { p.is_dir() } else { p.is_file() };
            if !ok {
                let what = if r.ends_with('/') { "directory" } else { "file" };
                return Err(format!("{} has no {what} {r} (expected {})", dir.display(), self.description));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Dir {
    pub path: String,
    pub mode: u32,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RunDecl {
    pub user: String,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default = "slash")]
    pub workdir: String,
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
}

fn slash() -> String {
    "/".into()
}

impl RunDecl {
    pub fn to_run_config(&self) -> RunConfig {
        RunConfig {
            user: self.user.clone(),
            env: self.env.clone(),
            entrypoint: self.entrypoint.clone(),
            cmd: self.cmd.clone(),
            workdir: self.workdir.clone(),
            exposed_ports: self.exposed_ports.clone(),
            volumes: self.volumes.clone(),
            labels: self.labels.clone(),
            stop_signal: self.stop_signal.clone(),
        }
    }
}

impl ImageDecl {
    pub fn is_upstream(&self) -> bool {
        self.upstream.is_some()
    }

    /// Checks what serde cannot: one source kind, well-formed patterns and references.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let where_ = path.display();
        if self.upstream.is_some()
            && (self.debian.is_some() || self.python.is_some() || !self.copy.is_empty() || self.base.is_some())
        {
            bail!("{where_}: an image is either `upstream` or a recipe, not both");
        }
        if let Some(u) = &self.upstream {
            super::reference::Reference::parse(&u.reference)
                .with_context(|| format!("{where_}: upstream.reference"))?;
        }
        for p in &self.remove {
            glob::Pattern::new(p).with_context(|| format!("{where_}: remove pattern {p:?}"))?;
        }
        if let Some(c) = self.copy.iter().find(|c| c.input.as_ref().is_some_and(|i| !self.inputs.contains_key(i))) {
            bail!("{where_}: [[copy]] of {:?} names an input that no [inputs.…] table declares", c.from);
        }
        if self.upstream.is_none() && self.config.is_none() && self.base.is_some() {
            bail!("{where_}: a recipe with a base needs a [config] section saying how it runs");
        }
        Ok(())
    }

    /// The part of the declaration a lock depends on; a lock made for other inputs is stale.
    pub fn lock_inputs_hash(&self) -> String {
        let json = serde_json::to_vec(&(&self.base, &self.debian, &self.python)).expect("serializable");
        super::layer::sha256_hex(&json)
    }

    pub fn remove_patterns(&self) -> Vec<glob::Pattern> {
        self.remove.iter().filter_map(|p| glob::Pattern::new(p).ok()).collect()
    }
}

/// The images directory: declarations, locks and the local files recipes copy.
#[derive(Debug, Clone)]
pub struct ImagesDir {
    pub dir: PathBuf,
}

impl ImagesDir {
    pub fn decl_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.toml"))
    }
    pub fn lock_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.lock"))
    }

    /// Loads and validates a declaration, and follows its `base` chain far enough to
    /// know it ends: every base exists and none comes round again.
    pub fn load(&self, name: &str) -> Result<ImageDecl> {
        let decl = self.load_one(name)?;
        let mut chain = vec![name.to_string()];
        let mut next = decl.base.clone();
        while let Some(base) = next {
            let looped = chain.contains(&base);
            chain.push(base.clone());
            if looped {
                bail!("image {name:?}: its base chain loops: {}", chain.join(" → "));
            }
            next = self.load_one(&base).with_context(|| format!("image {name:?}: base {base:?}"))?.base;
        }
        Ok(decl)
    }

    /// `name` and its bases, in that order.
    pub fn chain(&self, name: &str) -> Result<Vec<(String, ImageDecl)>> {
        let mut out = vec![(name.to_string(), self.load(name)?)];
        while let Some(base) = out.last().and_then(|(_, d)| d.base.clone()) {
            out.push((base.clone(), self.load_one(&base)?));
        }
        Ok(out)
    }

    fn load_one(&self, name: &str) -> Result<ImageDecl> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            bail!("{name:?} is not an image name (letters, digits, - and _)");
        }
        let path = self.decl_path(name);
        if !path.exists() {
            bail!("no image named {name:?}: {} does not exist (known: {})", path.display(), self.names()?.join(", "));
        }
        let decl: ImageDecl = located::read_toml(&path)?;
        decl.validate(&path)?;
        Ok(decl)
    }

    /// Every declared image, sorted.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let rd = std::fs::read_dir(&self.dir).with_context(|| format!("reading {}", self.dir.display()))?;
        for e in rd {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "toml")
                && let Some(s) = p.file_stem().and_then(|s| s.to_str())
            {
                names.push(s.to_string());
            }
        }
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod input_tests {
    use super::*;

    #[test]
    fn input_check_table() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("mas-cli"), "x").unwrap();
        std::fs::create_dir_all(d.path().join("share/templates")).unwrap();
        std::fs::write(d.path().join("share/policy.wasm"), "x").unwrap();
        let decl = |r: &[&str]| InputDecl {
            description: "a release".into(),
            requires: r.iter().map(|s| s.to_string()).collect(),
        };
        let cases: [(&[&str], Option<&str>); 5] = [
            (&["mas-cli", "share/policy.wasm", "share/templates/"], None),
            (&["share/manifest.json"], Some("has no file share/manifest.json")),
            (&["share/translations/"], Some("has no directory share/translations/")),
            // A file where a directory is required, and the other way round.
            (&["mas-cli/"], Some("has no directory mas-cli/")),
            (&["share/templates"], Some("has no file share/templates")),
        ];
        for (requires, want) in cases {
            let got = decl(requires).check(d.path());
            match want {
                None => assert!(got.is_ok(), "{requires:?}: {got:?}"),
                Some(w) => assert!(got.as_ref().is_err_and(|e| e.contains(w)), "{requires:?}: {got:?}"),
            }
        }
        assert!(decl(&[]).check(&d.path().join("missing")).unwrap_err().contains("is not a directory"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ImageDecl> {
        let p = Path::new("images/x.toml");
        let d: ImageDecl = located::parse_toml(p, text)?;
        d.validate(p)?;
        Ok(d)
    }

    #[test]
    fn declarations_table() {
        let ok = [
            "[upstream]\nreference = \"ghcr.io/a/b:1@sha256:8cb319ec41706adc1ed8b5b63e1de2f067073cc33a304686226f658f5e83c8b3\"\n",
            "[debian]\nsuite = \"bookworm\"\npackages = [\"libc6\"]\n",
            "base = \"base\"\n[config]\nuser = \"1:1\"\n",
        ];
        for t in ok {
            parse(t).unwrap();
        }
        let bad = [
            ("[upstream]\nreference = \"ghcr.io/a/b:1\"\n", "digest"),
            ("bogus = 1\n", "images/x.toml:1:1"),
            ("base = \"base\"\n", "needs a [config]"),
            ("remove = [\"[\"]\n", "remove pattern"),
            ("base = \"b\"\n[upstream]\nreference = \"a@sha256:00\"\n", "not both"),
        ];
        for (t, want) in bad {
            let e = format!("{:#}", parse(t).unwrap_err());
            assert!(e.contains(want), "{t}: {e}");
        }
    }

    #[test]
    fn base_chains_that_loop_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let images = ImagesDir { dir: d.path().to_path_buf() };
        let write = |name: &str, base: &str| {
            std::fs::write(images.decl_path(name), format!("base = \"{base}\"\n[config]\nuser = \"1:1\"\n")).unwrap()
        };
        std::fs::write(images.decl_path("root"), "[debian]\nsuite = \"bookworm\"\npackages = [\"libc6\"]\n").unwrap();
        write("ok", "root");
        write("self", "self");
        write("a", "b");
        write("b", "a");
        write("c", "a");
        write("orphan", "missing");
        images.load("ok").unwrap();
        for (name, chain) in [("self", "self → self"), ("a", "a → b → a"), ("b", "b → a → b"), ("c", "c → a → b → a")]
        {
            let e = format!("{:#}", images.load(name).unwrap_err());
            assert!(e.contains("loops") && e.contains(chain), "{name}: {e}");
        }
        let e = format!("{:#}", images.load("orphan").unwrap_err());
        assert!(e.contains("base \"missing\"") && e.contains("no image named"), "{e}");
    }

    #[test]
    fn lock_hash_ignores_run_config() {
        let a = parse("[debian]\nsuite = \"bookworm\"\npackages = [\"a\"]\n").unwrap();
        let mut b = a.clone();
        b.config = Some(RunDecl { user: "1".into(), ..Default::default() });
        assert_eq!(a.lock_inputs_hash(), b.lock_inputs_hash());
        b.debian.as_mut().unwrap().packages.push("b".into());
        assert_ne!(a.lock_inputs_hash(), b.lock_inputs_hash());
    }
}
