//! `instance` names the stack's Docker network: a network someone else made (a
//! container that is not masctl's on it) is refused before anything changes.

mod common;

use common::{Root, docker, docker_ok};

#[test]
fn a_network_masctl_did_not_make_is_refused_with_its_location() {
    let root = Root::new();
    let image = root.load("base");
    let name = format!("t{}-foreign", std::process::id());
    let _ = docker(&["rm", "-f", &name]);
    let _ = docker(&["network", "rm", &name]);
    docker_ok(&["network", "create", &name]);
    // Someone else's container on it: dash's `read` keeps it running.
    docker_ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        &name,
        "--network",
        &name,
        "--entrypoint",
        "/bin/sh",
        &image,
        "-c",
        "read x",
    ]);

    let state = root.path().join("state");
    let config = root.path().join("masctl.toml");
    std::fs::write(
        &config,
        format!("server_name = \"e.com\"\ninstance = \"{name}\"\nstate_root = \"{}\"\n", state.display()),
    )
    .unwrap();
    let out = root.masctl().env_remove("MASCTL_ROOT").arg("-c").arg(&config).arg("switch").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let _ = docker(&["rm", "-f", &name]);
    let _ = docker(&["network", "rm", &name]);

    assert!(!out.status.success());
    assert!(err.contains(&format!("{}:2:12:", config.display())), "{err}");
    assert!(err.contains("was not made by masctl"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!state.exists(), "the state root was touched");
}
