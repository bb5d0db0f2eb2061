//! Where things live under the state root (default `/var/lib/masctl`).

use std::path::{Path, PathBuf};

use crate::service::Service;
use crate::spec::Bind;

#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }
    pub fn store(&self) -> PathBuf {
        self.root.join("store")
    }
    pub fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }
    pub fn generations(&self) -> PathBuf {
        self.root.join("generations")
    }
    pub fn current(&self) -> PathBuf {
        self.root.join("current")
    }
    pub fn secrets(&self) -> PathBuf {
        self.root.join("secrets")
    }
    pub fn secret(&self, name: &str) -> PathBuf {
        self.secrets().join(name)
    }
    /// The secret `name`, mounted at `/run/secrets/<name>`.
    pub fn secret_bind(&self, name: &str) -> Bind {
        Bind::secret(self.secret(name), name)
    }
    pub fn data(&self, service: &str) -> PathBuf {
        self.root.join("data").join(service)
    }
    /// Where a service keeps its data: never deleted by switch, rollback or gc.
    /// The edge's is its certificates and ACME account: `data/edge`.
    pub fn data_dir(&self, service: Service) -> PathBuf {
        match service {
            Service::Proxy => self.data("edge"),
            s => self.data(s.name()),
        }
    }
    pub fn backups(&self) -> PathBuf {
        self.root.join("backups")
    }
    /// `<N>.json`: the backup taken before the switch into generation N.
    pub fn switch_backups(&self) -> PathBuf {
        self.root.join("switch-backups")
    }
    pub fn lock(&self) -> PathBuf {
        self.root.join("lock")
    }
    /// Units a switch still has to (re)start: written before the flip, removed when
    /// done, merged into the next switch's plan if a switch was killed.
    pub fn pending(&self) -> PathBuf {
        self.root.join("pending-units")
    }
    /// Written by a completed `syn2mas migrate`: logins may move to MAS.
    pub fn mas_migrated(&self) -> PathBuf {
        self.root.join("mas-migrated")
    }
    pub fn store_path(&self, hash: &str, name: &str) -> PathBuf {
        self.store().join(format!("{hash}-{name}"))
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
}
