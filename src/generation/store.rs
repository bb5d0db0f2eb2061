//! The content-addressed store: `store/<hash>-<name>`, written under a temporary
//! name, synced, marked complete, then renamed into place; never modified
//! afterwards. Deleting renames the entry out of its name first, so a crash half-way
//! through a delete never leaves a partial entry that looks reusable; an entry
//! without its completion marker is never reused.

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

    /// The entry's path if it is there and complete.
    pub fn get(&self, hash: &str, name: &str) -> Option<PathBuf> {
        let p = self.path(hash, name);
        is_complete(&p).then_some(p)
    }

    /// Adds a directory entry filled by `fill`, unless it exists already. Returns its path.
    pub fn add_dir(&self, hash: &str, name: &str, fill: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
        let dest = self.path(hash, name);
        if is_complete(&dest) {
            return Ok(dest);
        }
        if fs::symlink_metadata(&dest).is_ok() {
            // Left by a crash (or an older masctl, which wrote no marker): never reused.
            // Only moved aside, for gc to collect later: a running container may still
            // have it bind-mounted until the switch restarts it.
            crate::ui::detail(format!("{} is incomplete; writing it again", dest.display()));
            let aside = fsutil::temp_sibling(&dest);
            fs::rename(&dest, &aside).with_context(|| format!("moving {} aside", dest.display()))?;
            fsutil::fsync_dir(&self.dir)?;
        }
        fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        // Rendered configs can hold what users put under `extra` (a pepper, an SMTP
        // password): only root may read the store. Containers still see the entries
        // bind-mounted into them.
        fs::set_permissions(&self.dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let tmp = fsutil::temp_sibling(&dest);
        fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let filled = fill(&tmp).and_then(|()| sync_tree(&tmp)).and_then(|()| mark_complete(&tmp));
        if let Err(e) = filled {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        match fs::rename(&tmp, &dest) {
            Ok(()) => {}
            // Another builder won the race with the same content; keep theirs.
            Err(_) if is_complete(&dest) => {
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

    /// Removes every entry `keep(path, entry name)` refuses, and temporary entries
    /// nobody writes any more (their writer is gone, see [`stale_temp`]). Returns how
    /// many entries were removed.
    pub fn sweep(&self, mut keep: impl FnMut(&Path, &str) -> bool) -> Result<usize> {
        let mut removed = 0;
        let Ok(rd) = fs::read_dir(&self.dir) else { return Ok(0) };
        for e in rd {
            let p = e?.path();
            let name = Store::entry_name(&p);
            if name.starts_with(fsutil::TEMP_PREFIX) {
                if stale_temp(&p, std::time::SystemTime::now()) {
                    remove_tree(&p)?;
                }
                continue;
            }
            if keep(&p, &name) {
                continue;
            }
            self.discard(&p)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Deletes an entry: renamed out of its name (and synced) first, then removed.
    fn discard(&self, entry: &Path) -> Result<()> {
        let aside = fsutil::temp_sibling(entry);
        fs::rename(entry, &aside).with_context(|| format!("moving {} out of the store", entry.display()))?;
        fsutil::fsync_dir(&self.dir)?;
        remove_tree(&aside)
    }
}

/// Written last into an entry, before it gets its name: an entry without it is
/// incomplete and never reused.
const COMPLETE: &str = ".masctl-complete";

fn is_complete(entry: &Path) -> bool {
    entry.join(COMPLETE).is_file()
}

fn mark_complete(dir: &Path) -> Result<()> {
    let f = fs::File::create(dir.join(COMPLETE))?;
    f.sync_all()?;
    fsutil::fsync_dir(dir)
}

fn remove_tree(p: &Path) -> Result<()> {
    if !fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
        return fs::remove_file(p).with_context(|| format!("removing {}", p.display()));
    }
    // Entries are read-only once written: make them removable first.
    make_writable(p);
    fs::remove_dir_all(p).with_context(|| format!("removing {}", p.display()))
}

/// Whether a temporary entry (`.tmp-<pid>-<random>-<name>`) is a leftover: its
/// writer's pid is not running here, and it has not changed for an hour (a writer
/// in another pid namespace, such as `masctl try`'s host, has a pid we cannot see).
pub fn stale_temp(p: &Path, now: std::time::SystemTime) -> bool {
    let name = Store::entry_name(p);
    let pid =
        name.strip_prefix(fsutil::TEMP_PREFIX).and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok());
    let alive = pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
    let idle = fs::symlink_metadata(p)
        .and_then(|m| m.modified())
        .is_ok_and(|t| now.duration_since(t).is_ok_and(|d| d > std::time::Duration::from_secs(3600)));
    !alive && idle
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
    fn an_incomplete_entry_is_never_reused() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path().join("store"));
        // What a crash half-way through deleting an entry (in place) leaves behind.
        let half = store.path("abc", "thing");
        fs::create_dir_all(half.join("sub")).unwrap();
        assert_eq!(store.get("abc", "thing"), None);
        let p = store.add_dir("abc", "thing", |tmp| Ok(fs::write(tmp.join("f"), "1")?)).unwrap();
        assert_eq!(p, half);
        assert_eq!(fs::read_to_string(p.join("f")).unwrap(), "1");
        assert!(!p.join("sub").exists());
        assert_eq!(store.get("abc", "thing"), Some(p));
    }

    #[test]
    fn stale_temp_table() {
        let d = tempfile::tempdir().unwrap();
        let now = std::time::SystemTime::now();
        let hour_ago = now - std::time::Duration::from_secs(2 * 3600);
        let me = std::process::id();
        // A pid that is not running: above the kernel's pid_max.
        let gone = 1 << 23;
        let cases = [
            (format!("{}{gone}-aa-x-gen", fsutil::TEMP_PREFIX), hour_ago, true),
            (format!("{}{gone}-aa-x-gen", fsutil::TEMP_PREFIX), now, false),
            (format!("{}{me}-aa-x-gen", fsutil::TEMP_PREFIX), hour_ago, false),
            (format!("{}junk", fsutil::TEMP_PREFIX), hour_ago, true),
        ];
        for (name, mtime, want) in cases {
            let p = d.path().join(&name);
            fs::create_dir(&p).unwrap();
            fs::File::open(&p).unwrap().set_modified(mtime).unwrap();
            assert_eq!(stale_temp(&p, now), want, "{name}");
            fs::remove_dir(&p).unwrap();
        }
    }

    #[test]
    fn sweep_removes_what_is_not_kept_read_only_or_not() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path().join("store"));
        let keep = store.add_dir("a", "keep", |tmp| Ok(fs::write(tmp.join("f"), "1")?)).unwrap();
        store.add_dir("b", "drop", |tmp| Ok(fs::create_dir_all(tmp.join("x/y"))?)).unwrap();
        // Being written by this process: stays. Left by a writer long gone: collected.
        let writing = d.path().join("store").join(format!("{}{}-aa-c", fsutil::TEMP_PREFIX, std::process::id()));
        fs::create_dir(&writing).unwrap();
        let leftover = d.path().join("store").join(format!("{}{}-aa-d", fsutil::TEMP_PREFIX, 1 << 23));
        fs::create_dir_all(leftover.join("x")).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        fs::File::open(&leftover).unwrap().set_modified(old).unwrap();
        let removed = store.sweep(|_, name| Store::kind(name) == "keep").unwrap();
        assert_eq!(removed, 1);
        let mut left: Vec<_> = fs::read_dir(d.path().join("store")).unwrap().map(|e| e.unwrap().path()).collect();
        left.sort();
        assert_eq!(left.len(), 2);
        assert!(left.contains(&keep) && left.contains(&writing), "{left:?}");
    }
}
