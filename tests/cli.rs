//! The command line itself: help everywhere, completions, man page, config check.

mod common;

use std::process::Command;

fn masctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_masctl")).args(args).env("NO_COLOR", "1").output().unwrap()
}

#[test]
fn every_command_has_help() {
    let top = masctl(&["--help"]);
    assert!(top.status.success());
    let text = String::from_utf8_lossy(&top.stdout).into_owned();
    let commands = ["switch", "rollback", "status", "generations", "diff", "gc", "try", "image", "config", "logs"];
    for c in commands {
        assert!(text.contains(c), "{c} missing from --help");
        let out = masctl(&[c, "--help"]);
        assert!(out.status.success(), "{c} --help");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: masctl"), "{c}");
    }
    for sub in ["lock", "build", "load", "pull", "list"] {
        assert!(masctl(&["image", sub, "--help"]).status.success(), "image {sub}");
    }
    let bad = masctl(&["frobnicate"]);
    assert!(!bad.status.success());
}

#[test]
fn completions_and_man_page_come_from_the_cli_definitions() {
    for shell in ["bash", "zsh", "fish"] {
        let out = masctl(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("rollback") && text.contains("generations"), "{shell} completion lacks commands");
    }
    let man = masctl(&["man"]);
    let text = String::from_utf8_lossy(&man.stdout);
    assert!(text.starts_with(".ie") || text.contains(".TH masctl 1"), "{text}");
    assert!(text.contains("switch"));
}

#[test]
fn config_check_validates_without_touching_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, format!("server_name = \"example.com\"\nstate_root = \"{}\"\n", root.display())).unwrap();
    let images = common::repo().join("images");
    let run = |cfg: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_masctl"))
            .args(["--images", images.to_str().unwrap(), "-c", cfg.to_str().unwrap(), "config", "check"])
            .output()
            .unwrap()
    };
    let ok = run(&good);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let example = run(&common::repo().join("masctl.example.toml"));
    assert!(
        example.status.success(),
        "the shipped example must be valid: {}",
        String::from_utf8_lossy(&example.stderr)
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "server_name = \"example.com\"\n[images]\nsynapse = \"nonexistent\"\n").unwrap();
    let out = run(&bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("images.synapse") && err.contains("nonexistent"), "{err}");
    assert!(!root.exists(), "config check must not create the state root");
}
