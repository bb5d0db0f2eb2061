#!/usr/bin/env bash
# Refreshes every recipe's lock with the host's apt and pip (e.g. after Debian's
# security archive moved on and a pinned .deb left the mirrors), then builds each
# image twice to check it is still reproducible. Review and commit images/*.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
ensure_packages ca-certificates python3-pip
apt-get update -qq
cargo build --release --quiet
M=target/release/masctl
export MASCTL_IMAGES="$PWD/images" MASCTL_CACHE="$PWD/target/test-cache"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
# Bases first: an image's lock leaves out what its base already has.
"$M" --root "$root" image lock base
"$M" --root "$root" image lock postgres synapse proxy pebble
"$M" --root "$root" image build --check base postgres synapse proxy pebble
git --no-pager diff --stat -- images/
