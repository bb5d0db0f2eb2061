//! Synapse's workers: what the shared `homeserver.yaml` adds once they run, each
//! worker's own config file and container, and which requests the edge sends to
//! which kind of worker.
//!
//! Every process reads the shared file; a worker also reads its own (`worker.yaml`:
//! its name, listener, and `[synapse.workers.extra.<kind>]`), so a setting only one
//! kind reads restarts only those workers. Workers talk to the main process over
//! its replication listener and to each other over Redis; no stream writers are
//! moved off the main process, so every write that needs one goes there.

use anyhow::Result;
use serde_json::{Value, json};

use super::Entry;
use crate::config::Config;
use crate::service::{Service, Unit, Worker, WorkerKind};
use crate::spec::{Bind, ServiceSpec};

/// Every Synapse process's HTTP listener (each is its own container).
pub const HTTP_PORT: u16 = 8008;
/// The main process's replication listener (the instance's network only).
pub const REPLICATION_PORT: u16 = 9093;
pub const REDIS_PORT: u16 = 6379;
/// The secret workers present on the main process's replication listener.
pub const REPLICATION_SECRET: &str = "synapse-replication";
const WORKER_CONFIG_IN: &str = "/etc/synapse-worker";

/// The listener resources a kind serves (`health` alone: nothing routed to it).
fn resources(kind: WorkerKind) -> &'static [&'static str] {
    use WorkerKind::*;
    match kind {
        Generic => &["client", "federation"],
        Synchrotron | ClientReader | EventCreator => &["client"],
        FederationReader | FederationInbound => &["federation"],
        MediaRepository => &["media", "client", "federation"],
        FederationSender | Pusher | Background => &["health"],
    }
}

fn names(c: &Config, kind: WorkerKind) -> Vec<String> {
    c.workers().into_iter().filter(|w| w.kind == kind).map(Worker::name).collect()
}

/// What the shared `homeserver.yaml` says once workers run: the replication
/// listener, where main and Redis are, and which worker holds which duty.
pub fn share(c: &Config, hs: &mut Value) {
    let instance = c.instance.get_ref();
    if let Some(listeners) = hs["listeners"].as_array_mut() {
        listeners.push(json!({
            "port": REPLICATION_PORT, "type": "http", "tls": false, "bind_addresses": ["0.0.0.0"],
            "resources": [{"names": ["replication"], "compress": false}],
        }));
    }
    hs["instance_map"] = json!({"main": {"host": Service::Synapse.container(instance), "port": REPLICATION_PORT}});
    hs["redis"] = json!({"enabled": true, "host": Service::Redis.container(instance), "port": REDIS_PORT});
    hs["worker_replication_secret_path"] = json!(format!("/run/secrets/{REPLICATION_SECRET}"));
    let senders = names(c, WorkerKind::FederationSender);
    if !senders.is_empty() {
        hs["federation_sender_instances"] = json!(senders);
    }
    let pushers = names(c, WorkerKind::Pusher);
    if !pushers.is_empty() {
        hs["pusher_instances"] = json!(pushers);
    }
    if let Some(bg) = names(c, WorkerKind::Background).first() {
        hs["run_background_tasks_on"] = json!(bg);
        hs["update_user_directory_from_worker"] = json!(bg);
        hs["notify_appservices_from_worker"] = json!(bg);
    }
    if let Some(media) = names(c, WorkerKind::MediaRepository).first() {
        hs["enable_media_repo"] = json!(false);
        hs["media_instance_running_background_jobs"] = json!(media);
    }
}

/// A worker's own config file, read after the shared one.
pub fn worker_config(c: &Config, w: Worker) -> Result<Value> {
    let mut v = json!({
        "worker_app": "synapse.app.generic_worker",
        "worker_name": w.name(),
        "worker_listeners": [{
            "port": HTTP_PORT, "type": "http", "tls": false, "bind_addresses": ["0.0.0.0"], "x_forwarded": true,
            "resources": [{"names": resources(w.kind), "compress": false}],
        }],
        "worker_log_config": "/etc/synapse/log.yaml",
    });
    if w.kind == WorkerKind::MediaRepository {
        v["enable_media_repo"] = json!(true);
    }
    if let Some(extra) = c.synapse.workers.extra.get(&w.kind) {
        let extra = serde_json::to_value(extra.get_ref())?;
        if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), extra) {
            obj.extend(extra);
        }
    }
    Ok(v)
}

pub fn config_entry(c: &Config, w: Worker) -> Result<Entry> {
    let mut e = Entry::new(&format!("synapse-worker-{w}-config"));
    e.add("worker.yaml", super::yaml::render(&worker_config(c, w)?)?);
    Ok(e)
}

/// What the main process's container needs besides its own spec: the secret that
/// guards its replication listener.
pub fn adapt_main(inp: &super::Inputs, spec: &mut ServiceSpec) {
    if inp.config.workers_on() {
        spec.binds.push(inp.layout.secret_bind(REPLICATION_SECRET));
    }
}

/// A worker's container: the main process's (image, mounts, secrets, health),
/// running the worker module with its own config file on top of the shared one,
/// publishing nothing.
pub fn spec(main: &ServiceSpec, instance: &str, w: Worker, config_dir: &str) -> ServiceSpec {
    let unit = Unit::worker(w);
    let mut spec = main.clone();
    spec.service = unit.name();
    spec.container = unit.container(instance);
    spec.entrypoint = ["/usr/bin/python3", "-m", "synapse.app.generic_worker"].map(String::from).to_vec();
    spec.cmd.extend(["--config-path".to_string(), format!("{WORKER_CONFIG_IN}/worker.yaml")]);
    spec.binds.push(Bind::ro(config_dir, WORKER_CONFIG_IN));
    spec.ports.clear();
    // The main process has migrated the schema by the time a worker starts.
    spec.health.start_period_ms = 60_000;
    spec
}

/// How the edge spreads one group's requests over its workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affinity {
    /// Any worker.
    None,
    /// The same access token to the same worker (its caches, its `/sync` streams).
    Token,
    /// The same remote address to the same worker (a sending server's transactions).
    SourceIp,
}

impl Affinity {
    /// Caddy's `lb_policy` for it.
    pub fn lb_policy(self) -> &'static str {
        match self {
            Affinity::None => "round_robin",
            Affinity::Token => "header Authorization",
            Affinity::SourceIp => "ip_hash",
        }
    }
}

/// A group of endpoints the edge sends to workers, as Synapse's worker docs list
/// them; everything else goes to the main process.
#[derive(Debug, Clone, Copy)]
pub struct Group {
    pub name: &'static str,
    /// Kinds that serve it, the first with workers wins.
    pub served_by: &'static [WorkerKind],
    pub affinity: Affinity,
    /// Whether federation (rather than client) traffic.
    pub federation: bool,
    pub paths: &'static [&'static str],
}

/// In the order the edge tries them (first match wins). Writes to streams only
/// the main process writes (typing, receipts, account data, presence, to-device,
/// device lists, push rules) are left to it.
pub const GROUPS: [Group; 7] = [
    Group {
        name: "sync",
        served_by: &[WorkerKind::Synchrotron, WorkerKind::Generic],
        affinity: Affinity::Token,
        federation: false,
        paths: &[
            "^/_matrix/client/(v2_alpha|r0|v3)/sync$",
            "^/_matrix/client/(api/v1|v2_alpha|r0|v3)/events$",
            "^/_matrix/client/(api/v1|r0|v3)/initialSync$",
            "^/_matrix/client/(api/v1|r0|v3)/rooms/[^/]+/initialSync$",
        ],
    },
    Group {
        name: "media",
        served_by: &[WorkerKind::MediaRepository],
        affinity: Affinity::None,
        federation: false,
        paths: &[
            "^/_matrix/media/",
            "^/_matrix/client/v1/media/",
            "^/_synapse/admin/v1/purge_media_cache$",
            "^/_synapse/admin/v1/room/.*/media.*$",
            "^/_synapse/admin/v1/user/.*/media.*$",
            "^/_synapse/admin/v1/media/.*$",
            "^/_synapse/admin/v1/quarantine_media/.*$",
            "^/_synapse/admin/v1/users/.*/media$",
        ],
    },
    Group {
        name: "federation-media",
        served_by: &[WorkerKind::MediaRepository],
        affinity: Affinity::None,
        federation: true,
        paths: &["^/_matrix/federation/v1/media/"],
    },
    Group {
        name: "federation-inbound",
        served_by: &[WorkerKind::FederationInbound, WorkerKind::Generic],
        affinity: Affinity::SourceIp,
        federation: true,
        paths: &["^/_matrix/federation/(v1|v2)/send/"],
    },
    Group {
        name: "event-creation",
        served_by: &[WorkerKind::EventCreator, WorkerKind::Generic],
        affinity: Affinity::None,
        federation: false,
        paths: &[
            "^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/redact",
            "^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/send",
            "^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/(join|invite|leave|ban|unban|kick)$",
            "^/_matrix/client/(api/v1|r0|v3|unstable)/join/",
            "^/_matrix/client/(api/v1|r0|v3|unstable)/knock/",
            "^/_matrix/client/(api/v1|r0|v3|unstable)/profile/",
        ],
    },
    Group {
        name: "client-reads",
        served_by: &[WorkerKind::ClientReader, WorkerKind::Generic],
        affinity: Affinity::Token,
        federation: false,
        paths: &[
            "^/_matrix/client/(api/v1|r0|v3|unstable)/publicRooms$",
            "^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/joined_members$",
            "^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/context/.*$",
            "^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/members$",
            "^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/state$",
            "^/_matrix/client/v1/rooms/.*/hierarchy$",
            "^/_matrix/client/(v1|unstable)/rooms/.*/relations/",
            "^/_matrix/client/v1/rooms/.*/threads$",
            "^/_matrix/client/(api/v1|r0|v3|unstable)/login$",
            "^/_matrix/client/(api/v1|r0|v3|unstable)/account/whoami$",
            "^/_matrix/client/versions$",
            "^/_matrix/client/(api/v1|r0|v3|unstable)/voip/turnServer$",
            "^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/messages$",
            "^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/event",
            "^/_matrix/client/(api/v1|r0|v3|unstable)/joined_rooms",
            "^/_matrix/client/(api/v1|r0|v3|unstable/.*)/rooms/.*/aliases",
            "^/_matrix/client/v1/rooms/.*/timestamp_to_event$",
            "^/_matrix/client/(api/v1|r0|v3|unstable)/search",
            "^/_matrix/client/(r0|v3|unstable)/user/.*/filter(/|$)",
            "^/_matrix/client/(r0|v3|unstable)/password_policy$",
            "^/_matrix/client/(api/v1|r0|v3|unstable)/directory/room/.*$",
            "^/_matrix/client/(r0|v3|unstable)/capabilities$",
            "^/_matrix/client/(r0|v3|unstable)/notifications$",
            "^/_matrix/client/(r0|v3|unstable)/user_directory/search$",
        ],
    },
    Group {
        name: "federation-reads",
        served_by: &[WorkerKind::FederationReader, WorkerKind::Generic],
        affinity: Affinity::None,
        federation: true,
        paths: &[
            "^/_matrix/federation/v1/version$",
            "^/_matrix/federation/(v1|v2)/(event|state|state_ids|backfill|get_missing_events|query|make_join|make_leave|send_join|send_leave|invite|query_auth|event_auth|exchange_third_party_invite|user/devices)/",
            "^/_matrix/federation/(v1|v2)/publicRooms",
            "^/_matrix/federation/v1/(make_knock|send_knock|timestamp_to_event|hierarchy)/",
            "^/_matrix/key/v2/query",
        ],
    },
];

/// A group as the edge routes it: one regular expression, the workers' addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub name: &'static str,
    pub regex: String,
    pub upstreams: Vec<String>,
    pub affinity: Affinity,
    pub federation: bool,
}

/// The routes to workers this config has: each group goes to the first kind in
/// its list that has workers; groups no worker serves stay with the main process.
pub fn routes(c: &Config) -> Vec<Route> {
    let instance = c.instance.get_ref();
    let workers = c.workers();
    GROUPS
        .iter()
        .filter_map(|g| {
            let kind = g.served_by.iter().find(|k| workers.iter().any(|w| w.kind == **k))?;
            let upstreams = workers
                .iter()
                .filter(|w| w.kind == *kind)
                .map(|w| format!("{}:{HTTP_PORT}", Unit::worker(*w).container(instance)))
                .collect();
            Some(Route {
                name: g.name,
                regex: format!(
                    "^({})",
                    g.paths.iter().map(|p| p.trim_start_matches('^')).collect::<Vec<_>>().join("|")
                ),
                upstreams,
                affinity: g.affinity,
                federation: g.federation,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(workers: &str) -> Config {
        crate::config::parse(std::path::Path::new("m.toml"), &format!("server_name = \"e.com\"\n{workers}")).unwrap()
    }

    /// The route a request path takes: the group's name, else "main".
    fn route_of(routes: &[Route], path: &str) -> String {
        routes
            .iter()
            .find(|r| regex_lite::Regex::new(&r.regex).unwrap().is_match(path))
            .map_or("main".into(), |r| r.upstreams.join(" "))
    }

    #[test]
    fn requests_go_to_the_kind_that_serves_them() {
        let one = routes(&config("[synapse.workers]\npreset = \"one-of-each\"\n"));
        let spec = routes(&config("[synapse.workers]\npreset = \"specialised\"\n"));
        let media_only = routes(&config("[synapse.workers.counts]\nmedia-repository = 1\n"));
        let g = "masctl-synapse-generic-1:8008";
        let m = "masctl-synapse-media-repository-1:8008";
        // (path, one-of-each, specialised, media worker only)
        let cases = [
            (
                "/_matrix/client/v3/sync",
                g,
                "masctl-synapse-synchrotron-1:8008 masctl-synapse-synchrotron-2:8008",
                "main",
            ),
            (
                "/_matrix/client/v3/rooms/!a:e.com/send/m.room.message/t1",
                g,
                "masctl-synapse-event-creator-1:8008",
                "main",
            ),
            ("/_matrix/client/v3/rooms/!a:e.com/messages", g, "masctl-synapse-client-reader-1:8008", "main"),
            ("/_matrix/federation/v1/send/123", g, "masctl-synapse-federation-inbound-1:8008", "main"),
            ("/_matrix/federation/v1/event/$x", g, "masctl-synapse-federation-reader-1:8008", "main"),
            ("/_matrix/media/v3/upload", m, m, m),
            ("/_matrix/client/v1/media/download/e.com/abc", m, m, m),
            ("/_matrix/federation/v1/media/download/abc", m, m, m),
            // Writes to streams main writes, and everything unlisted, stay on main.
            ("/_matrix/client/v3/rooms/!a:e.com/typing/@u:e.com", "main", "main", "main"),
            ("/_matrix/client/v3/rooms/!a:e.com/receipt/m.read/$e", "main", "main", "main"),
            ("/_matrix/client/v3/keys/upload", "main", "main", "main"),
            ("/_matrix/client/v3/createRoom", "main", "main", "main"),
            ("/_synapse/admin/v1/server_version", "main", "main", "main"),
            ("/_synapse/mas/sync_devices", "main", "main", "main"),
            ("/_matrix/client/v3/syncx", "main", "main", "main"),
        ];
        for (path, a, b, c) in cases {
            assert_eq!(route_of(&one, path), a, "one-of-each {path}");
            assert_eq!(route_of(&spec, path), b, "specialised {path}");
            assert_eq!(route_of(&media_only, path), c, "media only {path}");
        }
        assert!(routes(&config("")).is_empty());
    }

    #[test]
    fn affinity_where_a_kind_needs_it() {
        let r = routes(&config("[synapse.workers]\npreset = \"specialised\"\n"));
        let by = |n: &str| r.iter().find(|x| x.name == n).unwrap().affinity;
        assert_eq!(by("sync"), Affinity::Token);
        assert_eq!(by("federation-inbound"), Affinity::SourceIp);
        assert_eq!(by("event-creation"), Affinity::None);
    }

    #[test]
    fn duties_name_their_workers() {
        let c = config("[synapse.workers]\npreset = \"one-of-each\"\ncounts = { federation-sender = 2 }\n");
        let mut hs = json!({"listeners": []});
        share(&c, &mut hs);
        assert_eq!(hs["federation_sender_instances"], json!(["federation-sender-1", "federation-sender-2"]));
        assert_eq!(hs["pusher_instances"], json!(["pusher-1"]));
        assert_eq!(hs["run_background_tasks_on"], "background-1");
        assert_eq!(hs["media_instance_running_background_jobs"], "media-repository-1");
        assert_eq!(hs["enable_media_repo"], false);
        assert_eq!(hs["instance_map"]["main"]["host"], "masctl-synapse");
        assert_eq!(hs["listeners"][0]["resources"][0]["names"], json!(["replication"]));
        let gen_only = config("[synapse.workers.counts]\ngeneric = 1\n");
        let mut hs = json!({"listeners": []});
        share(&gen_only, &mut hs);
        for k in ["federation_sender_instances", "pusher_instances", "run_background_tasks_on", "enable_media_repo"] {
            assert!(hs.get(k).is_none(), "{k}");
        }
    }

    #[test]
    fn a_kinds_extra_reaches_only_its_workers() {
        let c = config(
            "[synapse.workers]\npreset = \"one-of-each\"\n[synapse.workers.extra.federation-sender]\nfederation_rr_transactions_per_room_per_second = 7\n",
        );
        for w in c.workers() {
            let v = worker_config(&c, w).unwrap();
            let has = v.get("federation_rr_transactions_per_room_per_second").is_some();
            assert_eq!(has, w.kind == WorkerKind::FederationSender, "{w}");
            assert_eq!(v["worker_name"], w.name());
        }
    }
}
