#!/usr/bin/env bash
# Runs masctl's whole test suite on a Debian 12 host, as root: installs what the
# tests need from Debian's packages, starts dockerd if none answers, then runs every
# unit and integration test against the real engine.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need_root
ensure_packages docker.io docker-registry debootstrap python3-pip ca-certificates nix-bin
ensure_apt_lists
ensure_dockerd

echo "== cargo fmt / clippy"
cargo fmt --check
cargo clippy --release --all-targets --quiet -- -D warnings

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --release --no-fail-fast --test-threads 2 "$@"
else
    cargo test --release --no-fail-fast "$@" -- --test-threads 2
fi
