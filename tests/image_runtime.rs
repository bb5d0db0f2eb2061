//! The built Postgres and Synapse images, run for real in Docker: non-root, read-only
//! root filesystem, all capabilities dropped.

mod common;

use std::time::Duration;

use common::{Docker, HARDENED, Root, docker, docker_ok, http, wait_for};

/// Reads the effective UID of PID 1 with shell builtins only (the image has no coreutils).
fn pid1_uid(container: &str) -> String {
    docker_ok(&[
        "exec",
        container,
        "sh",
        "-c",
        "while read k real eff rest; do [ \"$k\" = Uid: ] && echo $real $eff; done < /proc/1/status; true",
    ])
}

struct Postgres {
    container: String,
    image: String,
    network: String,
    password: String,
    _secrets: tempfile::TempDir,
}

fn start_postgres(root: &Root, d: &mut Docker) -> Postgres {
    let image = root.load("postgres");
    let network = d.network();
    let volume = d.volume("pgdata");
    let secrets = tempfile::tempdir().unwrap();
    let password = "test-only-password-7d1c".to_string();
    std::fs::write(secrets.path().join("pw"), &password).unwrap();
    let mount = format!("{}:/run/secrets/pw:ro", secrets.path().join("pw").display());
    let data = format!("{volume}:/var/lib/postgresql/data");
    let mut args = vec!["--network", &network, "--tmpfs=/run/postgresql:uid=999,gid=999", "-v", &data];
    args.extend(HARDENED);
    args.extend(["-v", &mount, "-e", "POSTGRES_PASSWORD_FILE=/run/secrets/pw", &image]);
    let container = d.run("pg", &args);
    Postgres { container, image, network, password, _secrets: secrets }
}

/// `psql` from a second container over TCP; returns stdout on success.
fn psql(pg: &Postgres, sql: &str) -> Option<String> {
    psql_as(pg, &pg.password, sql)
}

fn psql_as(pg: &Postgres, password: &str, sql: &str) -> Option<String> {
    let pw = format!("PGPASSWORD={password}");
    let net = ["run", "--rm", "--network", &pg.network, "-e", &pw, "--entrypoint", "psql", &pg.image];
    let out = docker(&[&net[..], &["-h", &pg.container, "-U", "postgres", "-tAc", sql]].concat());
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn postgres_inits_and_serves_as_non_root_on_a_read_only_root() {
    let root = Root::new();
    let mut d = Docker::new("pg");
    let pg = start_postgres(&root, &mut d);
    let one = wait_for("postgres to answer SELECT 1", Duration::from_secs(60), || psql(&pg, "SELECT 1"));
    assert_eq!(one, "1");
    assert_eq!(pid1_uid(&pg.container), "999 999", "the server must not run as root");
    let write = docker(&["exec", &pg.container, "sh", "-c", "echo x > /usr/x"]);
    assert!(!write.status.success(), "the root filesystem must be read-only");
    // initdb ran with UTF8 and the C locale, which Synapse requires.
    let enc = psql(
        &pg,
        "SELECT pg_encoding_to_char(encoding) || ' ' || datcollate FROM pg_database WHERE datname = 'template1'",
    );
    assert_eq!(enc.as_deref(), Some("UTF8 C"));
    // A wrong password is refused: host authentication is really on.
    let bad = psql_as(&pg, "wrong", "SELECT 1");
    assert!(bad.is_none(), "{}", d.logs(&pg.container));
}

#[test]
fn synapse_serves_clients_and_registers_users_with_the_shared_secret() {
    let root = Root::new();
    let mut d = Docker::new("syn");
    let pg = start_postgres(&root, &mut d);
    wait_for("postgres", Duration::from_secs(60), || psql(&pg, "SELECT 1"));
    psql(&pg, "CREATE DATABASE synapse ENCODING 'UTF8' LC_COLLATE='C' LC_CTYPE='C' TEMPLATE template0")
        .expect("create the synapse database");

    let synapse = root.load("synapse");
    let data = tempfile::tempdir().unwrap();
    let config = format!(
        "server_name: test.local\n\
listeners:\n  - {{port: 8008, type: http, tls: false, bind_addresses: ['0.0.0.0'], resources: [{{names: [client]}}]}}\n\
database:\n  name: psycopg2\n  args: {{user: postgres, password: {pw}, dbname: synapse, host: {host}, cp_min: 1, cp_max: 4}}\n\
media_store_path: /data/media\nsigning_key_path: /data/signing.key\n\
registration_shared_secret: test-shared-secret\nreport_stats: false\ntrusted_key_servers: []\n",
        pw = pg.password,
        host = pg.container
    );
    std::fs::write(data.path().join("homeserver.yaml"), config).unwrap();
    std::fs::write(data.path().join("alice.pw"), "correct horse battery").unwrap();
    let owner = std::process::Command::new("chown").args(["-R", "991:991"]).arg(data.path()).status().unwrap();
    assert!(owner.success());
    let mount = format!("{}:/data", data.path().display());
    docker_ok(&[
        "run",
        "--rm",
        "--read-only",
        "-v",
        &mount,
        &synapse,
        "--config-path",
        "/data/homeserver.yaml",
        "--generate-keys",
    ]);

    let mut args = vec!["--network", &pg.network, "-v", &mount, "-p", "127.0.0.1::8008"];
    args.extend(HARDENED);
    args.push(&synapse);
    let syn = d.run("synapse", &args);
    let port = docker_ok(&["port", &syn, "8008/tcp"]);
    let base = format!("http://{}", port.lines().next().unwrap());
    let versions = format!("{base}/_matrix/client/versions");
    wait_for("Synapse to answer /_matrix/client/versions", Duration::from_secs(120), || {
        match http::get_status(&http::agent(), &versions) {
            Ok(200) => Some(()),
            _ => {
                let state = docker_ok(&["inspect", "-f", "{{.State.Running}}", &syn]);
                assert_eq!(state, "true", "Synapse exited:\n{}", d.logs(&syn));
                None
            }
        }
    });
    assert_eq!(pid1_uid(&syn), "991 991");

    let reg = docker(&[
        "exec",
        &syn,
        "python3",
        "-m",
        "synapse._scripts.register_new_matrix_user",
        "-k",
        "test-shared-secret",
        "-u",
        "alice",
        "--password-file",
        "/data/alice.pw",
        "--no-admin",
        "http://localhost:8008",
    ]);
    assert!(reg.status.success(), "{}{}", String::from_utf8_lossy(&reg.stdout), String::from_utf8_lossy(&reg.stderr));

    let (status, body) = http::login(&base, "alice", "correct horse battery");
    assert_eq!(status, 200);
    assert_eq!(body["user_id"], "@alice:test.local");
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    let (status, _) = http::login(&base, "alice", "wrong password");
    assert_eq!(status, 403);
}
