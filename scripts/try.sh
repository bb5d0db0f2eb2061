#!/usr/bin/env bash
# Deploys the default stack (masctl.example.toml) into a throwaway systemd host
# container on this Debian 12 machine, as root: installs docker.io and debootstrap,
# starts dockerd if none answers, builds masctl, then runs `masctl try`.
# Remove it again with: bash scripts/try.sh --down
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need_root
ensure_packages docker.io debootstrap python3-pip ca-certificates
ensure_apt_lists
ensure_dockerd
cargo build --release --quiet
exec target/release/masctl -c masctl.example.toml --images images try "$@"
