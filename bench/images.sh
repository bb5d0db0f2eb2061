#!/usr/bin/env bash
# Image builder benchmarks. Prints each measurement next to its named baseline,
# measured in the same run:
#   1. no-op rebuild (everything in the store)   vs  cold build from a warm input cache
#   2. cold build from a warm input cache        vs  debootstrap --variant=minbase of the
#                                                    same packages (warm .deb cache) + docker import
#   3. image sizes (uncompressed)                vs  a naive rootfs: the same packages with
#                                                    every dependency extracted, nothing trimmed
# Usage: bash bench/images.sh   (as root; installs debootstrap, needs dockerd)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
bench_prelude
bench_work images  # no stack: only the directory, removed on exit

echo "warming the input cache"
"$M" -q --root "$WORK/warm" image build postgres synapse >/dev/null

echo
echo "## 1+2. masctl build times (postgres)"
# Median wall time of `image build IMAGE` over RUNS runs; @ in ROOT is the run number
# (a fresh root per run for cold builds, the same root for no-op rebuilds).
time_build() {
    local runs=$1 image=$2 root=$3
    for i in $(seq 1 "$runs"); do
        t0=$(now_ms); "$M" -q --root "${root//@/$i}" image build "$image" >/dev/null; t1=$(now_ms)
        echo $((t1 - t0))
    done | median
}
cold_ms=$(time_build 3 postgres "$WORK/cold@")
noop_ms=$(time_build 20 postgres "$WORK/cold1")
syn_ms=$(time_build 3 synapse "$WORK/syn@")
echo "cold build postgres (warm input cache), median of 3: ${cold_ms} ms"
echo "cold build synapse  (warm input cache), median of 3: ${syn_ms} ms"
echo "no-op rebuild postgres, median of 20:               ${noop_ms} ms  (target < 100 ms)"
awk -v n="$noop_ms" -v c="$cold_ms" 'BEGIN {printf "ratio no-op / cold build: %.4f\n", n / c}'

echo
echo "## 2. baseline: debootstrap --variant=minbase + docker import"
# The host's own first Debian mirror (not the security archive).
mirror=$({ cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null || true; } \
    | grep -E '^(URIs:|deb )' | sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' | awk '{print $1}' | grep -v security | head -1)
mkdir -p "$WORK/debs"
debootstrap --variant=minbase --include=postgresql-15 --cache-dir="$WORK/debs" bookworm "$WORK/ds-warm" "$mirror" >/dev/null
t0=$(now_ms)
debootstrap --variant=minbase --include=postgresql-15 --cache-dir="$WORK/debs" bookworm "$WORK/ds" "$mirror" >/dev/null
tar -C "$WORK/ds" -c . | docker import - masctl-bench/debootstrap-postgres:latest >/dev/null
t1=$(now_ms)
ds_ms=$((t1 - t0))
ds_bytes=$(du -sb "$WORK/ds" | cut -f1)
docker rmi -f masctl-bench/debootstrap-postgres:latest >/dev/null
echo "debootstrap + docker import (postgres, warm .deb cache): ${ds_ms} ms"
awk -v d="$ds_ms" -v c="$cold_ms" 'BEGIN {printf "speed-up masctl cold build vs debootstrap+import: %.1fx (target >= 5x)\n", d / c}'

echo
echo "## 3. image sizes (uncompressed layer bytes)"
size_of() { "$M" --root "$1" image list --json | python3 -c "import json,sys; print([r['size'] for r in json.load(sys.stdin) if r['name']=='$2'][0])"; }
pg_bytes=$(size_of "$WORK/cold1" postgres)
syn_bytes=$(size_of "$WORK/syn1" synapse)
# Naive variants: the same declarations with nothing excluded and nothing removed.
mkdir -p "$WORK/naive"
cp -r images/files "$WORK/naive/"
python3 - "$PWD/images" "$WORK/naive" <<'PY'
import re, sys, pathlib
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for name in ["base", "postgres", "synapse"]:
    text = (src / f"{name}.toml").read_text()
    text = re.sub(r'(?ms)^remove = \[.*?^\]\n', '', text)
    text = re.sub(r'(?ms)^exclude = \[.*?\]\n', '', text)
    (dst / f"{name}.toml").write_text(text)
PY
MASCTL_IMAGES="$WORK/naive" "$M" -q --root "$WORK/naive-root" image lock base postgres synapse
MASCTL_IMAGES="$WORK/naive" "$M" -q --root "$WORK/naive-root" image build postgres synapse >/dev/null
npg=$(MASCTL_IMAGES="$WORK/naive" size_of "$WORK/naive-root" postgres)
nsyn=$(MASCTL_IMAGES="$WORK/naive" size_of "$WORK/naive-root" synapse)
awk -v a="$pg_bytes" -v b="$npg" -v d="$ds_bytes" 'BEGIN {printf "postgres: %.1f MB (target <= 150 MB); naive extract-everything %.1f MB (ratio %.2f); debootstrap rootfs %.1f MB\n", a/1e6, b/1e6, a/b, d/1e6}'
awk -v a="$syn_bytes" -v b="$nsyn" 'BEGIN {printf "synapse:  %.1f MB (target <= 300 MB); naive extract-everything %.1f MB (ratio %.2f)\n", a/1e6, b/1e6, a/b}'
