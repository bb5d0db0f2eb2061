//! Synapse with workers (the `one-of-each` preset) on a real systemd host: every
//! worker's unit active and its container healthy, a real client's requests served
//! by the workers (proved from the workers' own access logs, and their absence from
//! the main process's), media through the media worker, and a setting only the
//! federation sender reads restarting only that worker.

mod common;

use std::time::Duration;

use common::docker_ok;
use common::stack::Stack;
use serde_json::json;

const WORKERS: [&str; 5] = [
    "synapse-generic-1",
    "synapse-media-repository-1",
    "synapse-federation-sender-1",
    "synapse-pusher-1",
    "synapse-background-1",
];

/// The container's access-log lines (Synapse's `synapse.access.http.<port>`) for `path`.
fn served(container: &str, path: &str) -> usize {
    docker_ok(&["logs", container]).lines().filter(|l| l.contains("synapse.access.http") && l.contains(path)).count()
}

#[test]
fn one_of_each_serves_a_client_and_restarts_only_what_changed() {
    let s = Stack::new("workers");
    s.write_config("[synapse.workers]\npreset = \"one-of-each\"\n");
    s.up();

    // Every process is its own active unit with a healthy container, Redis too.
    let st = s.status();
    assert_eq!(st["matches_current"], true, "{st:#}");
    for name in WORKERS.iter().chain(&["synapse", "redis"]) {
        assert_eq!(s.unit_active_state(&format!("masctl-{name}.service")), "active", "{name}");
        let row = st["containers"].as_array().unwrap().iter().find(|c| c["name"] == s.container(name));
        let row = row.unwrap_or_else(|| panic!("no container {name} in {st:#}"));
        assert_eq!((row["running"].as_bool(), row["health"].as_str()), (Some(true), Some("healthy")), "{row}");
    }
    // No port of Redis is published.
    assert_eq!(docker_ok(&["port", &s.container("redis")]).trim(), "");

    // A real client through the edge.
    s.register("alice", "pw-alice-123");
    // Long polls of /sync go through the workers: more time than the usual agent's.
    let c = s.client("alice", "pw-alice-123").with_timeout(Duration::from_secs(30));
    let room = c.post("/_matrix/client/v3/createRoom", &json!({"name": "w"}))["room_id"].as_str().unwrap().to_string();
    let first = c.get("/_matrix/client/v3/sync?timeout=0");
    let since = first["next_batch"].as_str().unwrap().to_string();
    let body = json!({"msgtype": "m.text", "body": "hello from a worker"});
    let event = c.put(&format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/t1"), &body)["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The sync worker sees the event the main process persisted (via replication).
    common::wait_for("the message in an incremental /sync", Duration::from_secs(30), || {
        let next = c.get(&format!("/_matrix/client/v3/sync?timeout=5000&since={since}"));
        let events = next["rooms"]["join"][&room]["timeline"]["events"].as_array().cloned().unwrap_or_default();
        events.iter().any(|e| e["event_id"] == event.as_str()).then_some(())
    });

    let generic = s.container("synapse-generic-1");
    let main = s.container("synapse");
    for path in ["/_matrix/client/v3/login", "/_matrix/client/v3/sync", "/send/m.room.message/t1"] {
        assert!(served(&generic, path) > 0, "the generic worker logged no {path}");
        assert_eq!(served(&main, path), 0, "the main process served {path}");
    }
    // createRoom is not a worker endpoint: main serves it.
    assert!(served(&main, "/_matrix/client/v3/createRoom") > 0);

    // Media: upload and download through the media worker.
    let data = b"some media bytes".to_vec();
    let media_id = c.upload("a.txt", "text/plain", &data);
    assert_eq!(c.download(&s.server_name, &media_id), data);
    let media = s.container("synapse-media-repository-1");
    for path in ["/_matrix/media/v3/upload", &format!("/media/download/{}/{media_id}", s.server_name)] {
        assert!(served(&media, path) > 0, "the media worker logged no {path}");
        assert_eq!(served(&main, path), 0, "the main process served {path}");
    }

    // A setting only the federation sender reads restarts only it.
    let names: Vec<&str> = WORKERS.iter().copied().chain(["synapse", "redis", "postgres", "proxy"]).collect();
    let before: Vec<String> = names.iter().map(|n| s.started_at(n)).collect();
    s.write_config(
        "[synapse.workers]\npreset = \"one-of-each\"\n\
[synapse.workers.extra.federation-sender]\nfederation_rr_transactions_per_room_per_second = 25\n",
    );
    s.masctl_ok(&["switch"]);
    for (n, was) in names.iter().zip(&before) {
        let restarted = s.started_at(n) != *was;
        assert_eq!(restarted, *n == "synapse-federation-sender-1", "{n} restarted: {restarted}");
    }
    assert_eq!(s.status()["matches_current"], true);

    // Its logs are one command away, as the main process's are.
    let logs = s.masctl_ok(&["logs", "synapse-federation-sender-1", "-n", "200"]);
    assert!(logs.contains("Connected to redis"), "{logs}");
}
