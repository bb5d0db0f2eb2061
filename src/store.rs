//! The content-addressed store: `store/<hash>-<name>`, written under a temporary
//! name, synced, then renamed into place; never modified afterwards.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::fsutil;

pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: PathBuf) -> Self {
        Store { dir }
    }

    pub fn path(&self, hash: &str, name: &str) -> PathBuf {
        self.dir.join(format!("{hash}-{name}"))
    }

    /// Adds a directory entry filled by `fill`, unless it exists already. Returns its path.
    pub fn add_dir(&self, hash: &str, name: &str, fill: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
        let dest = self.path(hash, name);
        if dest.exists() {
            return Ok(dest);
        }
        fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        // Rendered configs can hold what users put under `extra` (a pepper, an SMTP
        // password): only root may read the store. Containers still see the entries
        // bind-mounted into them.
        fs::set_permissions(&self.dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let tmp = fsutil::temp_sibling(&dest);
        fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let filled = fill(&tmp).and_then(|()| sync_tree(&tmp));
        if let Err(e) = filled {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        match fs::rename(&tmp, &dest) {
            Ok(()) => {}
            // Another builder won the race with the same content; keep theirs.
            Err(_) if dest.exists() => {
                let _ = fs::remove_dir_all(&tmp);
            }
            Err(e) => return Err(e).with_context(|| format!("renaming into {}", dest.display())),
        }
        fsutil::fsync_dir(&self.dir)?;
        Ok(dest)
    }

    /// The entry name (`<hash>-<name>`) of a store path, however the root was spelled
    /// when the path was recorded.
    pub fn entry_name(path: &Path) -> String {
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// The `<name>` part of an entry name.
    pub fn kind(entry: &str) -> &str {
        entry.split_once('-').map_or("", |(_, k)| k)
    }

    /// Removes every entry `keep(path, entry name)` refuses. Entries still being
    /// written (temporary names) always stay. Returns how many were removed.
    pub fn sweep(&self, mut keep: impl FnMut(&Path, &str) -> bool) -> Result<usize> {
        let mut removed = 0;
        let Ok(rd) = fs::read_dir(&self.dir) else { return Ok(0) };
        for e in rd {
            let p = e?.path();
            let name = Store::entry_name(&p);
            if name.starts_with(fsutil::TEMP_PREFIX) || keep(&p, &name) {
                continue;
            }
            // Entries are read-only once written: make them removable first.
            make_writable(&p);
            fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
            removed += 1;
        }
        Ok(removed)
    }
}

fn make_writable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = fs::symlink_metadata(p)
        && !m.is_symlink()
    {
        let _ = fs::set_permissions(p, fs::Permissions::from_mode(m.permissions().mode() | 0o200));
        if m.is_dir()
            && let Ok(rd) = fs::read_dir(p)
        {
            for e in rd.flatten() {
                make_writable(&e.path());
            }
        }
    }
}

/// fsyncs every file and directory below `dir` and makes files read-only.
fn sync_tree(dir: &Path) -> Result<()> {
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        let meta = fs::symlink_metadata(&p)?;
        if meta.is_dir() {
            sync_tree(&p)?;
        } else if meta.is_file() {
            fs::File::open(&p)?.sync_all()?;
            let mut perm = meta.permissions();
            perm.set_readonly(true);
            fs::set_permissions(&p, perm)?;
        }
    }
    fsutil::fsync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_is_atomic_and_idempotent() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path().join("store"));
        let p = store.add_dir("abc", "thing", |tmp| Ok(fs::write(tmp.join("f"), "1")?)).unwrap();
        assert_eq!(fs::read_to_string(p.join("f")).unwrap(), "1");
        // Present already: the closure is not run again.
        let p2 = store.add_dir("abc", "thing", |_| panic!("rebuilt")).unwrap();
        assert_eq!(p, p2);
        // A failing fill leaves nothing behind.
        assert!(store.add_dir("def", "bad", |_| anyhow::bail!("no")).is_err());
        let left: Vec<_> = fs::read_dir(d.path().join("store")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(left, vec![p]);
    }

    #[test]
    fn sweep_removes_what_is_not_kept_read_only_or_not() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path().join("store"));
        let keep = store.add_dir("a", "keep", |tmp| Ok(fs::write(tmp.join("f"), "1")?)).unwrap();
        store.add_dir("b", "drop", |tmp| Ok(fs::create_dir_all(tmp.join("x/y"))?)).unwrap();
        fs::create_dir(d.path().join("store").join(format!("{}1-c", fsutil::TEMP_PREFIX))).unwrap();
        let removed = store.sweep(|_, name| Store::kind(name) == "keep").unwrap();
        assert_eq!(removed, 1);
        let mut left: Vec<_> = fs::read_dir(d.path().join("store")).unwrap().map(|e| e.unwrap().path()).collect();
        left.sort();
        assert_eq!(left.len(), 2);
        assert!(left.contains(&keep));
    }
}
