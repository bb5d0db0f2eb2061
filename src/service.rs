//! The services of the stack, defined once: what each is called on the host (unit,
//! container, data directory), whom it runs as, and what it needs running first;
//! and the processes that run them ([`Unit`]): a service's main process, or one of
//! Synapse's workers ([`Worker`]).

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::unit_name::UnitName;

/// On disk (manifests, spec files) a service is its lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Postgres,
    /// The pub/sub bus Synapse's workers replicate over; runs only with workers.
    Redis,
    Synapse,
    Mas,
    Proxy,
}

impl Service {
    /// Every service, dependencies first.
    pub const ALL: [Service; 5] = [Service::Postgres, Service::Redis, Service::Synapse, Service::Mas, Service::Proxy];

    pub const fn name(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Redis => "redis",
            Service::Synapse => "synapse",
            Service::Mas => "mas",
            Service::Proxy => "proxy",
        }
    }

    pub fn unit_name(self) -> UnitName {
        UnitName::service(self.name())
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
            // Redis keeps nothing on disk: `nobody`.
            Service::Proxy | Service::Redis => 65534,
        }
    }

    /// `uid:gid` for Docker's `User`.
    pub fn user(self) -> String {
        format!("{0}:{0}", self.uid())
    }

    /// The unit's `Description=`.
    pub const fn description(self) -> &'static str {
        match self {
            Service::Postgres => "PostgreSQL",
            Service::Redis => "Redis (replication between Synapse's processes)",
            Service::Synapse => "Synapse homeserver",
            Service::Mas => "Matrix Authentication Service",
            Service::Proxy => "edge (TLS, well-known documents, routing)",
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
            Service::Postgres | Service::Redis => &[],
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

/// A database Postgres holds for the stack; its name is also its owning role's
/// (and, on an external server, the key of its login in the manifest). On disk it
/// is that lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Database {
    Synapse,
    Mas,
}

impl Database {
    pub const ALL: [Database; 2] = [Database::Synapse, Database::Mas];

    pub const fn name(self) -> &'static str {
        match self {
            Database::Synapse => "synapse",
            Database::Mas => "mas",
        }
    }

    /// The service whose database it is.
    pub const fn service(self) -> Service {
        match self {
            Database::Synapse => Service::Synapse,
            Database::Mas => Service::Mas,
        }
    }

    pub fn parse(s: &str) -> Option<Database> {
        Database::ALL.into_iter().find(|d| d.name() == s)
    }
}

/// `synapse, mas`: databases as messages list them.
pub fn names(dbs: &[Database]) -> String {
    dbs.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// By name, as for `Service`: maps keyed by database keep the key order of the
// string-keyed maps in manifests already on disk.
impl Ord for Database {
    fn cmp(&self, other: &Self) -> Ordering {
        self.name().cmp(other.name())
    }
}

impl PartialOrd for Database {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What a Synapse worker does: which requests the edge sends it, or which of the
/// main process's duties it takes over. In `masctl.toml`, unit and container names
/// it is spelled in kebab case (`federation-sender`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerKind {
    /// Any request a worker can serve that no specialised worker takes.
    Generic,
    /// `/sync` and the other long-polls, pinned per access token.
    Synchrotron,
    /// Client reads (room state, messages, members, search, …), pinned per token.
    ClientReader,
    /// Sending events, membership changes, profile updates.
    EventCreator,
    /// Federation requests other than inbound transactions.
    FederationReader,
    /// Inbound federation transactions, pinned per sending server's address.
    FederationInbound,
    /// Media upload, download, thumbnails, URL previews; the media store's jobs.
    MediaRepository,
    /// Sending to other servers (`federation_sender_instances`).
    FederationSender,
    /// Push notifications (`pusher_instances`).
    Pusher,
    /// Background tasks, the user directory and appservice notifications.
    Background,
}

impl WorkerKind {
    pub const ALL: [WorkerKind; 10] = [
        WorkerKind::Generic,
        WorkerKind::Synchrotron,
        WorkerKind::ClientReader,
        WorkerKind::EventCreator,
        WorkerKind::FederationReader,
        WorkerKind::FederationInbound,
        WorkerKind::MediaRepository,
        WorkerKind::FederationSender,
        WorkerKind::Pusher,
        WorkerKind::Background,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            WorkerKind::Generic => "generic",
            WorkerKind::Synchrotron => "synchrotron",
            WorkerKind::ClientReader => "client-reader",
            WorkerKind::EventCreator => "event-creator",
            WorkerKind::FederationReader => "federation-reader",
            WorkerKind::FederationInbound => "federation-inbound",
            WorkerKind::MediaRepository => "media-repository",
            WorkerKind::FederationSender => "federation-sender",
            WorkerKind::Pusher => "pusher",
            WorkerKind::Background => "background",
        }
    }

    /// Duties Synapse lets only one process hold.
    pub const fn at_most_one(self) -> bool {
        matches!(self, WorkerKind::Background)
    }
}

impl fmt::Display for WorkerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One Synapse worker: its kind and its number among that kind (from 1). Written
/// `<kind>-<n>`: its `worker_name`, and the tail of its unit and container names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Worker {
    pub kind: WorkerKind,
    pub index: u32,
}

impl Worker {
    pub fn name(self) -> String {
        format!("{}-{}", self.kind, self.index)
    }
}

impl fmt::Display for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.kind, self.index)
    }
}

impl FromStr for Worker {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Worker> {
        let (kind, n) = s.rsplit_once('-').ok_or_else(|| anyhow::anyhow!("no worker {s:?}"))?;
        let kind = WorkerKind::ALL
            .into_iter()
            .find(|k| k.name() == kind)
            .ok_or_else(|| anyhow::anyhow!("no worker kind {kind:?}"))?;
        let index: u32 = n.parse().map_err(|_| anyhow::anyhow!("no worker {s:?}"))?;
        if index == 0 || n.starts_with('0') {
            anyhow::bail!("no worker {s:?}");
        }
        Ok(Worker { kind, index })
    }
}

impl Serialize for Worker {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Worker {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Worker, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A process masctl supervises: a service's main process, or a Synapse worker.
/// Each is one systemd unit and one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unit {
    pub service: Service,
    pub worker: Option<Worker>,
}

impl Unit {
    pub const fn main(service: Service) -> Unit {
        Unit { service, worker: None }
    }

    pub const fn worker(worker: Worker) -> Unit {
        Unit { service: Service::Synapse, worker: Some(worker) }
    }

    /// `synapse`, or `synapse-<kind>-<n>` for a worker.
    pub fn name(self) -> String {
        match self.worker {
            None => self.service.name().to_string(),
            Some(w) => format!("{}-{w}", self.service),
        }
    }

    pub fn unit_name(self) -> UnitName {
        UnitName::service(&self.name())
    }

    pub fn container(self, instance: &str) -> String {
        format!("{instance}-{}", self.name())
    }

    pub fn description(self) -> String {
        match self.worker {
            None => self.service.description().to_string(),
            Some(w) => format!("Synapse worker {w}"),
        }
    }
}

impl From<Service> for Unit {
    fn from(s: Service) -> Unit {
        Unit::main(s)
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Unit {
    type Err = anyhow::Error;

    /// `synapse`, `synapse-generic-1`: what `masctl logs` takes.
    fn from_str(s: &str) -> anyhow::Result<Unit> {
        if let Ok(service) = s.parse::<Service>() {
            return Ok(Unit::main(service));
        }
        match s.strip_prefix("synapse-") {
            Some(w) => Ok(Unit::worker(w.parse()?)),
            None => anyhow::bail!("no service {s:?}"),
        }
    }
}

impl Serialize for Unit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
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
    fn units_and_workers_round_trip() {
        let w = Worker { kind: WorkerKind::FederationSender, index: 2 };
        let u = Unit::worker(w);
        assert_eq!(u.name(), "synapse-federation-sender-2");
        assert_eq!(u.unit_name(), "masctl-synapse-federation-sender-2.service");
        assert_eq!(u.container("t1"), "t1-synapse-federation-sender-2");
        assert_eq!("synapse-federation-sender-2".parse::<Unit>().unwrap(), u);
        assert_eq!("redis".parse::<Unit>().unwrap(), Unit::main(Service::Redis));
        assert_eq!(Unit::main(Service::Synapse).unit_name(), Service::Synapse.unit_name());
        for k in WorkerKind::ALL {
            let w = Worker { kind: k, index: 1 };
            assert_eq!(w.name().parse::<Worker>().unwrap(), w);
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        for bad in ["synapse-generic", "synapse-generic-0", "synapse-generic-01", "synapse-bogus-1", "mas-generic-1"] {
            assert!(bad.parse::<Unit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn maps_keep_the_string_keyed_format() {
        let text = r#"{"mas":"a","postgres":"b","proxy":"c","synapse":"d"}"#;
        let m: BTreeMap<Service, String> = serde_json::from_str(text).unwrap();
        assert_eq!(m["proxy"], "c");
        assert_eq!(serde_json::to_string(&m).unwrap(), text);
        let dbs = r#"{"mas":"a","synapse":"b"}"#;
        let m: BTreeMap<Database, String> = serde_json::from_str(dbs).unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), dbs);
        let list = vec![Database::Synapse, Database::Mas];
        assert_eq!(serde_json::to_string(&list).unwrap(), r#"["synapse","mas"]"#);
        assert_eq!(names(&list), "synapse, mas");
    }
}
