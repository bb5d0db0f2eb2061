//! The Nix packaging (flake.nix, nix/*.nix), checked offline with Debian's
//! nix-bin: every .nix file parses, and tests/nix/module-eval.sh evaluates the
//! NixOS module and the flake's outputs against a stand-in nixpkgs (the real one
//! cannot be fetched on these machines). What that does and does not prove is in
//! docs/nix.md and in tests/nix/stub-nixpkgs/.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails the test, saying how to install it, when nix-instantiate is missing.
fn require_nix() {
    let hint = "install it by running the README's test command, `bash scripts/test.sh` (as root), \
                which installs Debian's nix-bin; or run `apt-get install nix-bin`";
    match Command::new("nix-instantiate").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("nix-instantiate --version failed ({}): {hint}\n{}", out.status, text(&out)),
        Err(e) => panic!("nix-instantiate is not installed ({e}): {hint}"),
    }
}

fn text(out: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn nix_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            nix_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "nix") {
            found.push(path);
        }
    }
}

#[test]
fn every_nix_file_parses() {
    require_nix();
    let root = repo();
    let mut files = vec![root.join("flake.nix")];
    nix_files(&root.join("nix"), &mut files);
    nix_files(&root.join("tests/nix"), &mut files);
    files.sort();
    for needed in ["flake.nix", "nix/package.nix", "nix/module.nix", "nix/module-eval.nix", "tests/nix/eval-module.nix"]
    {
        assert!(files.contains(&root.join(needed)), "{needed} is missing; found {files:?}");
    }

    let mut failed = Vec::new();
    for file in &files {
        let out = Command::new("nix-instantiate").arg("--parse").arg(file).output().expect("running nix-instantiate");
        // --parse prints the parsed expression back.
        if !out.status.success() || out.stdout.is_empty() {
            failed.push(format!("{}:\n{}", file.display(), text(&out)));
        }
    }
    assert!(failed.is_empty(), "nix-instantiate --parse failed for:\n{}", failed.join("\n"));
}

#[test]
fn module_and_flake_evaluate_against_the_stand_in_nixpkgs() {
    require_nix();
    let out = Command::new("bash")
        .arg("tests/nix/module-eval.sh")
        .current_dir(repo())
        .output()
        .expect("running tests/nix/module-eval.sh");
    let all = text(&out);
    assert!(out.status.success(), "tests/nix/module-eval.sh failed ({}):\n{all}", out.status);

    let stdout = String::from_utf8_lossy(&out.stdout);
    // Each stage reports its cases; none may have failed.
    for stage in ["parse:", "module-eval:", "flake-eval:", "nix-eval:"] {
        let line = stdout.lines().find(|l| l.starts_with(stage)).unwrap_or_else(|| panic!("no {stage} line:\n{all}"));
        assert!(line.ends_with(" passed, 0 failed"), "{line}\n{all}");
        assert!(!line.starts_with(&format!("{stage} 0 passed")), "{line}\n{all}");
    }
    assert_eq!(stdout.matches("\"failed\":[]").count(), 2, "{all}");
    // The cases that carry the module's purpose ran and passed.
    for case in [
        "exec-start-runs-switch",
        "oneshot-remain-after-exit",
        "after-requires-docker",
        "etc-file-rendered-from-settings",
        "restart-on-config-change",
        "docker-enabled",
        "server-name-required",
        "package-from-cargo-lock",
        "package-installs-share",
        "app-runs-bin-masctl",
        "unit-tests-run-bins-only",
        "module-defaults-to-flake-package",
    ] {
        assert!(stdout.contains(&format!("\"{case}\"")), "case {case} did not pass:\n{all}");
    }
    assert!(stdout.contains("/bin/masctl -c /etc/masctl/masctl.toml switch\""), "{all}");
    assert!(stdout.contains("\"server_name\":\"example.com\""), "{all}");
    assert!(stdout.contains("all nix checks passed"), "{all}");
}
