//! Numbered generations (`generations/<N>` → `store/<hash>-generation`), the
//! `current` link, and the state lock every mutating command holds.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

use crate::fsutil;
use crate::generation::layout::Layout;
use crate::generation::manifest::Manifest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub number: u32,
    /// The store path of the generation entry.
    pub target: PathBuf,
    pub created: SystemTime,
}

impl Generation {
    pub fn hash(&self) -> String {
        let name = self.target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        name.split('-').next().unwrap_or_default().to_string()
    }

    pub fn manifest(&self) -> Result<Manifest> {
        let p = self.target.join("manifest.json");
        serde_json::from_slice(&fs::read(&p).with_context(|| format!("reading {}", p.display()))?)
            .with_context(|| format!("parsing {}", p.display()))
    }
}

/// Replaces (or creates) the symlink `link` → `target` atomically.
pub fn replace_symlink(target: &Path, link: &Path) -> Result<()> {
    let tmp = fsutil::temp_sibling(link);
    symlink(target, &tmp).with_context(|| format!("creating link {}", tmp.display()))?;
    fs::rename(&tmp, link).with_context(|| format!("replacing {}", link.display()))?;
    if let Some(parent) = link.parent() {
        fsutil::fsync_dir(parent)?;
    }
    Ok(())
}

pub struct Generations<'a> {
    layout: &'a Layout,
}

impl<'a> Generations<'a> {
    pub fn new(layout: &'a Layout) -> Self {
        Generations { layout }
    }

    pub fn list(&self) -> Result<Vec<Generation>> {
        let dir = self.layout.generations();
        let mut out = Vec::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        for e in rd {
            let e = e?;
            let Some(number) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let link = e.path();
            let target = fs::read_link(&link)?;
            let created = fs::symlink_metadata(&link)?.modified()?;
            out.push(Generation { number, target, created });
        }
        out.sort_by_key(|g| g.number);
        Ok(out)
    }

    pub fn get(&self, number: u32) -> Result<Generation> {
        self.list()?
            .into_iter()
            .find(|g| g.number == number)
            .with_context(|| format!("there is no generation {number} (see `masctl generations`)"))
    }

    pub fn current(&self) -> Result<Option<Generation>> {
        let link = self.layout.current();
        let Ok(target) = fs::read_link(&link) else { return Ok(None) };
        let n = target
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .with_context(|| format!("{} points at {}, not a generation", link.display(), target.display()))?;
        Ok(Some(self.get(n)?))
    }

    /// The generation for `store_path`: the newest one if it already points there
    /// (an unchanged config makes no new generation), else a new number.
    pub fn add(&self, store_path: &Path) -> Result<Generation> {
        let all = self.list()?;
        if let Some(last) = all.last()
            && last.target == store_path
        {
            return Ok(last.clone());
        }
        let number = all.last().map_or(1, |g| g.number + 1);
        fs::create_dir_all(self.layout.generations())?;
        let link = self.layout.generations().join(number.to_string());
        replace_symlink(store_path, &link)?;
        self.get(number)
    }

    /// The single atomic flip of a switch.
    pub fn set_current(&self, g: &Generation) -> Result<()> {
        replace_symlink(&PathBuf::from(format!("generations/{}", g.number)), &self.layout.current())
    }

    pub fn remove(&self, g: &Generation) -> Result<()> {
        if self.current()?.is_some_and(|c| c.number == g.number) {
            bail!("cannot delete the current generation {}", g.number);
        }
        fs::remove_file(self.layout.generations().join(g.number.to_string()))?;
        Ok(())
    }
}

/// The exclusive lock of the state root, held until dropped. The file says who
/// holds it: `<command> <pid>`.
pub struct StateLock {
    file: File,
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Forget the holder's name; the kernel releases the lock with the file. A
        // command that meets the lock in between waits for it (see `lock`).
        let _ = self.file.set_len(0);
    }
}

/// How long a command that finds the lock taken waits for its holder to write its
/// name (it does right after taking it) before calling it unknown.
const HOLDER_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// `masctl switch, pid 1234` from the lock file's `switch 1234`.
fn describe_holder(text: &str) -> Option<String> {
    let (command, pid) = text.trim().rsplit_once(' ')?;
    let pid: u32 = pid.parse().ok()?;
    let command = command.trim();
    let command = command.strip_prefix("masctl ").unwrap_or(command);
    let ok = !command.is_empty() && command.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ' ');
    ok.then(|| format!("masctl {command}, pid {pid}"))
}

/// Takes the lock or fails at once, saying who holds it.
pub fn lock(layout: &Layout, what: &str) -> Result<StateLock> {
    fs::create_dir_all(layout.root()).with_context(|| format!("creating {}", layout.root().display()))?;
    let path = layout.lock();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let started = std::time::Instant::now();
    loop {
        match f.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                f.rewind()?;
                let _ = f.read_to_string(&mut text);
                // The holder writes its name just after taking the lock: a moment
                // later it is there (or the lock is free again).
                let holder = describe_holder(&text);
                if holder.is_none() && started.elapsed() < HOLDER_WAIT {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                }
                bail!(
                    "another masctl command holds {} ({}); try again when it has finished",
                    path.display(),
                    holder.unwrap_or_else(|| "holder unknown: the lock file names no command".into())
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
    }
    f.set_len(0)?;
    f.rewind()?;
    // `masctl switch 1234`: what `cat lock` shows a person, and what the next
    // command names.
    writeln!(f, "masctl {what} {}", std::process::id())?;
    f.sync_all()?;
    Ok(StateLock { file: f })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_reuses_the_newest_and_flips_current() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::new(d.path());
        let g = Generations::new(&layout);
        let (a, b) = (d.path().join("store/aaa-generation"), d.path().join("store/bbb-generation"));
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        assert!(g.current().unwrap().is_none());
        let g1 = g.add(&a).unwrap();
        assert_eq!(g1.number, 1);
        assert_eq!(g.add(&a).unwrap().number, 1, "unchanged: no new generation");
        g.set_current(&g1).unwrap();
        let g2 = g.add(&b).unwrap();
        assert_eq!((g2.number, g2.hash().as_str()), (2, "bbb"));
        assert_eq!(g.current().unwrap().unwrap().number, 1);
        g.set_current(&g2).unwrap();
        assert_eq!(g.current().unwrap().unwrap().number, 2);
        assert!(g.remove(&g2).is_err(), "the current generation stays");
        g.remove(&g1).unwrap();
        assert_eq!(g.list().unwrap().len(), 1);
        // Back to a once-used target makes a new number.
        assert_eq!(g.add(&a).unwrap().number, 3);
    }

    #[test]
    fn a_second_lock_fails_fast_and_names_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::new(d.path());
        let held = lock(&layout, "switch").unwrap();
        let e = lock(&layout, "rollback").err().unwrap().to_string();
        assert!(e.contains("masctl switch") && e.contains(&std::process::id().to_string()), "{e}");
        assert!(e.contains(&format!("(masctl switch, pid {})", std::process::id())), "{e}");
        assert_eq!(fs::read_to_string(layout.lock()).unwrap(), format!("masctl switch {}\n", std::process::id()));
        drop(held);
        lock(&layout, "rollback").unwrap();
    }

    #[test]
    fn a_holder_that_never_says_who_it_is_is_unknown() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::new(d.path());
        fs::write(layout.lock(), "").unwrap();
        let other = File::open(layout.lock()).unwrap();
        other.try_lock().unwrap();
        let e = lock(&layout, "gc").err().unwrap().to_string();
        assert!(e.contains("holder unknown"), "{e}");
    }

    #[test]
    fn holder_table() {
        for (text, want) in [
            ("masctl switch 1234\n", Some("masctl switch, pid 1234")),
            ("switch 1234\n", Some("masctl switch, pid 1234")),
            ("syn2mas 7", Some("masctl syn2mas, pid 7")),
            ("", None),
            ("switch", None),
            ("switch x", None),
            ("\u{1b}[2J 12", None),
        ] {
            assert_eq!(describe_holder(text).as_deref(), want, "{text:?}");
        }
    }
}
