//! The names of masctl's systemd units, built in one place: `masctl.target`, which
//! wants every service of the current generation; `masctl-<process>.service` for
//! each supervised process; `masctl-job-<kind>-<id>.service` for a transient job.
//! A name knows which of these it is, so no caller tests suffixes.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

/// What a unit is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    /// `masctl.target`, or any other `.target`.
    Target,
    /// A supervised process of a generation.
    Service,
    /// A job started as a transient unit.
    Transient,
    /// A timer of the generation: started with it, it starts its service on schedule.
    Timer,
    /// A generation's service that only its timer starts (never a switch).
    Scheduled,
}

/// A unit file name. On disk (manifests, the pending file) it is the name itself,
/// so manifests keep their bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnitName(String);

const TRANSIENT_PREFIX: &str = "masctl-job-";
const SCHEDULED_PREFIX: &str = "masctl-scheduled-";

impl UnitName {
    /// The target every generation's services hang off.
    pub const TARGET: &'static str = "masctl.target";

    pub fn target() -> UnitName {
        UnitName(Self::TARGET.to_string())
    }

    /// `masctl-<process>.service` (`process`: `synapse`, `synapse-generic-1`, …).
    pub fn service(process: &str) -> UnitName {
        UnitName(format!("masctl-{process}.service"))
    }

    /// `masctl-job-<kind>-<id>.service`.
    pub fn transient(kind: &str, id: &str) -> UnitName {
        UnitName(format!("{TRANSIENT_PREFIX}{kind}-{id}.service"))
    }

    /// `masctl-scheduled-<job>.service`, which `masctl-scheduled-<job>.timer` starts.
    pub fn scheduled(job: &str) -> (UnitName, UnitName) {
        (UnitName(format!("{SCHEDULED_PREFIX}{job}.service")), UnitName(format!("{SCHEDULED_PREFIX}{job}.timer")))
    }

    pub fn kind(&self) -> UnitKind {
        kind_of(&self.0)
    }

    pub fn is_target(&self) -> bool {
        self.kind() == UnitKind::Target
    }

    /// A supervised process, which a switch starts and health-gates.
    pub fn is_service(&self) -> bool {
        self.kind() == UnitKind::Service
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The kind of a unit known only by its name (as systemd reports it).
pub fn kind_of(name: &str) -> UnitKind {
    if name.ends_with(".target") {
        UnitKind::Target
    } else if name.ends_with(".timer") {
        UnitKind::Timer
    } else if name.starts_with(SCHEDULED_PREFIX) {
        UnitKind::Scheduled
    } else if name.starts_with(TRANSIENT_PREFIX) {
        UnitKind::Transient
    } else {
        UnitKind::Service
    }
}

impl From<UnitName> for String {
    fn from(u: UnitName) -> String {
        u.0
    }
}

impl From<&str> for UnitName {
    fn from(s: &str) -> UnitName {
        UnitName(s.to_string())
    }
}

impl From<String> for UnitName {
    fn from(s: String) -> UnitName {
        UnitName(s)
    }
}

impl Deref for UnitName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for UnitName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::path::Path> for UnitName {
    fn as_ref(&self) -> &std::path::Path {
        self.0.as_ref()
    }
}

impl AsRef<std::ffi::OsStr> for UnitName {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_ref()
    }
}

// Maps keyed by unit name are looked up by plain names too.
impl Borrow<str> for UnitName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for UnitName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for UnitName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for UnitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_know_their_kind() {
        let cases = [
            (UnitName::target(), "masctl.target", UnitKind::Target),
            (UnitName::service("synapse"), "masctl-synapse.service", UnitKind::Service),
            (UnitName::service("synapse-generic-1"), "masctl-synapse-generic-1.service", UnitKind::Service),
            (UnitName::transient("backup", "0a1b2c3d"), "masctl-job-backup-0a1b2c3d.service", UnitKind::Transient),
            (UnitName::scheduled("backup").0, "masctl-scheduled-backup.service", UnitKind::Scheduled),
            (UnitName::scheduled("backup").1, "masctl-scheduled-backup.timer", UnitKind::Timer),
        ];
        for (u, name, kind) in cases {
            assert_eq!(u.as_str(), name);
            assert_eq!(u.kind(), kind, "{name}");
            assert_eq!(kind_of(name), kind, "{name}");
            assert_eq!(serde_json::to_string(&u).unwrap(), format!("\"{name}\""));
        }
    }
}
