#!/usr/bin/env bash
# Re-resolves, with the host's apt, the pinned packages Debian's mirrors dropped
# (`masctl image lock --update`: the rest of each lock stays as it is), then builds
# each image twice to check it is still reproducible. Review and commit
# images/*.lock. (A changed declaration needs a full `masctl image lock NAME`.)
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
"$M" --root "$root" image lock --update base
"$M" --root "$root" image lock --update postgres synapse proxy pebble
"$M" --root "$root" image build --check base postgres synapse proxy pebble
git --no-pager diff --stat -- images/
