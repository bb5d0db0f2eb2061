//! The services of the stack, defined once: what each is called on the host (unit,
//! container, data directory), whom it runs as, and what it needs running first.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::layout::Layout;

/// On disk (manifests, spec files) a service is its lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Postgres,
    Synapse,
    Mas,
    Proxy,
}

impl Service {
    /// Every service, dependencies first.
    pub const ALL: [Service; 4] = [Service::Postgres, Service::Synapse, Service::Mas, Service::Proxy];

    pub const fn name(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Synapse => "synapse",
            Service::Mas => "mas",
            Service::Proxy => "proxy",
        }
    }

    pub fn unit_name(self) -> String {
        format!("masctl-{}.service", self.name())
    }

    pub fn container(self, instance: &str) -> String {
        format!("{instance}-{}", self.name())
    }

    /// The uid (and gid) the service's image runs as; secrets it reads are owned by it.
    pub const fn uid(self) -> u32 {
        match self {
            Service::Postgres => 999,
            Service::Synapse => 991,
            // distroless's `nonroot`
            Service::Mas => 65532,
            Service::Proxy => 65534,
        }
    }

    /// `uid:gid` for Docker's `User`.
    pub fn user(self) -> String {
        format!("{0}:{0}", self.uid())
    }

    /// Where the service keeps its data: never deleted by switch, rollback or gc.
    /// The edge's is its certificates and ACME account: `data/edge`.
    pub fn data_dir(self, layout: &Layout) -> PathBuf {
        match self {
            Service::Proxy => layout.data("edge"),
            s => layout.data(s.name()),
        }
    }

    /// The unit's `Description=`.
    pub const fn description(self) -> &'static str {
        match self {
            Service::Postgres => "PostgreSQL",
            Service::Synapse => "Synapse homeserver",
            Service::Mas => "Matrix Authentication Service",
            Service::Proxy => "edge (TLS, well-known documents, routing)",
        }
    }

    /// Whether a config runs the service: MAS when enabled, the edge with MAS or
    /// TLS (see `Config::edge_runs`), Postgres unless the config names an external
    /// one, Synapse always.
    pub fn runs_with(self, c: &crate::config::Config) -> bool {
        match self {
            Service::Mas => c.mas_enabled(),
            Service::Proxy => c.edge_runs(),
            Service::Postgres => c.postgres_external().is_none(),
            Service::Synapse => true,
        }
    }

    /// Which services a service needs running first. Ordering plus `Wants=`, not
    /// `Requires=`: with `Requires=`, systemd restarts Synapse whenever Postgres
    /// restarts, so a Postgres-only change would take the homeserver down; Synapse
    /// reconnects to its database by itself.
    pub const fn needs(self) -> &'static [Service] {
        match self {
            Service::Synapse | Service::Mas => &[Service::Postgres],
            Service::Proxy => &[Service::Synapse, Service::Mas],
            Service::Postgres => &[],
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Service {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Service> {
        Service::ALL.into_iter().find(|x| x.name() == s).ok_or_else(|| anyhow::anyhow!("no service {s:?}"))
    }
}

// Ordered by name, so maps keyed by service serialize in the same key order as the
// string-keyed maps of manifests already on disk (same bytes, same hashes), and
// `Borrow<str>` lets such maps be looked up by name.
impl Ord for Service {
    fn cmp(&self, other: &Self) -> Ordering {
        self.name().cmp(other.name())
    }
}

impl PartialOrd for Service {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Borrow<str> for Service {
    fn borrow(&self) -> &str {
        self.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn names_round_trip() {
        for s in Service::ALL {
            assert_eq!(s.name().parse::<Service>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.name()));
        }
        assert!("nginx".parse::<Service>().is_err());
    }

    #[test]
    fn maps_keep_the_string_keyed_format() {
        let text = r#"{"mas":"a","postgres":"b","proxy":"c","synapse":"d"}"#;
        let m: BTreeMap<Service, String> = serde_json::from_str(text).unwrap();
        assert_eq!(m["proxy"], "c");
        assert_eq!(serde_json::to_string(&m).unwrap(), text);
    }
}
