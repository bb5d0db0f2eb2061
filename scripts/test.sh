#!/usr/bin/env bash
# Runs masctl's whole test suite on a Debian 12 host, as root: installs what the
# tests need from Debian's packages, starts dockerd if none answers, then runs every
# unit and integration test against the real engine.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need_root
ensure_packages docker.io docker-registry debootstrap python3-pip ca-certificates nix-bin chromium libnss3-tools restic
ensure_apt_lists
ensure_dockerd

echo "== cargo fmt / clippy"
cargo fmt --check
cargo clippy --release --all-targets --quiet -- -D warnings

echo "== tests"
# Tests marked ignored restart dockerd (tests/resilience.rs): they run alone, last.
status=0
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --release --no-fail-fast --test-threads 2 "$@" || status=$?
    echo "== tests that restart dockerd"
    cargo nextest run --release --no-fail-fast --test-threads 1 --run-ignored ignored-only "$@" || status=$?
else
    cargo test --release --no-fail-fast "$@" -- --test-threads 2 || status=$?
    echo "== tests that restart dockerd"
    cargo test --release --no-fail-fast "$@" -- --test-threads 1 --ignored || status=$?
fi
exit "$status"
