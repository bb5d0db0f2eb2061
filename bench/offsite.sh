#!/usr/bin/env bash
# A backup to a local restic repository of a >= 1 GiB Synapse database, next to
# doing the same by hand in the same run, with the same restic (the image masctl
# built) and the same Postgres:
#   1. baseline: pg_dump -Fc synapse > FILE, then restic backup FILE (a fresh repository)
#   2. masctl backup --scheduled: dump + verification restore + push (a fresh repository:
#      the dump, the media store, secrets and config)
#   3. both again with nothing changed: how much cheaper the second push is, in time
#      and in bytes added to the repository
# Usage: bash bench/offsite.sh [GiB]   (as root; installs debootstrap)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
bench_prelude

GIB=${1:-1}
bench_work offsite
mkdir -p "$WORK/root/keys" "$WORK/base"
head -c 24 /dev/urandom | base64 > "$WORK/root/keys/restic-password"
chmod 600 "$WORK/root/keys/restic-password"
bench_boot "[backup]
[[backup.repository]]
url = \"$WORK/repo\"
password_file = \"$WORK/root/keys/restic-password\""
PG="$INST-postgres"
fill_event_json "$PG" synapse $(( GIB * 1024 * 1024 * 1024 ))

RESTIC_IMAGE=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['backup']['image'])" \
    "$WORK/root/current/manifest.json")
# restic by hand, in the image masctl runs it from: the repository and the dump mounted.
by_hand() {
    docker run --rm --network none -v "$WORK/base:/base" -v "$WORK/root/keys:/keys:ro" \
        -e RESTIC_REPOSITORY=/base/repo -e RESTIC_PASSWORD_FILE=/keys/restic-password \
        -e RESTIC_CACHE_DIR=/base/cache "$RESTIC_IMAGE" "$@"
}
by_hand init >/dev/null

base_once() {
    docker exec "$PG" pg_dump -h /run/postgresql -U postgres -Fc synapse > "$WORK/base/synapse.dump"
    by_hand backup --json --quiet /base/synapse.dump | tail -n 1 > "$WORK/base/summary.json"
}
added() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))$2)" "$1"; }

echo "## 1. baseline: pg_dump -Fc, then restic backup of the dump"
BASE1=$(time_ms base_once)
BASE1_ADDED=$(added "$WORK/base/summary.json" "['data_added']")
echo "by hand: $BASE1 ms, $BASE1_ADDED bytes added"

echo "## 2. masctl backup --scheduled (first push)"
M1=$(time_ms sh -c "$(printf '%q ' "${IN[@]}") backup --scheduled --json > '$WORK/m1.json'")
M1_ADDED=$(added "$WORK/m1.json" "['pushed'][0]['added_bytes']")
echo "masctl: $M1 ms, $M1_ADDED bytes added"

echo "## 3. both again, nothing changed"
BASE2=$(time_ms base_once)
BASE2_ADDED=$(added "$WORK/base/summary.json" "['data_added']")
M2=$(time_ms sh -c "$(printf '%q ' "${IN[@]}") backup --scheduled --json > '$WORK/m2.json'")
M2_ADDED=$(added "$WORK/m2.json" "['pushed'][0]['added_bytes']")
echo "by hand: $BASE2 ms, $BASE2_ADDED bytes added; masctl: $M2 ms, $M2_ADDED bytes added"

echo
print_ratios "pg_dump -Fc + restic backup (baseline):$BASE1" "masctl backup --scheduled, first:$M1" \
    "pg_dump -Fc + restic backup, again:$BASE2" "masctl backup --scheduled, again:$M2"
echo
echo "| bytes added to the repository | first | again |"
echo "| --- | --- | --- |"
echo "| by hand | $BASE1_ADDED | $BASE2_ADDED |"
echo "| masctl | $M1_ADDED | $M2_ADDED |"
echo "database: $SIZE bytes; dump: $(stat -c %s "$WORK/base/synapse.dump") bytes"
