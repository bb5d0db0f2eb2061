#!/usr/bin/env bash
# Postgres 15 → 17 upgrade of a >= 1 GB database, next to the plain way by hand in
# the same run, between the same two servers' images:
#   1. baseline: pg_dumpall (17's, reading the 15 server) | psql into a fresh 17 server
#   2. masctl switch to images.postgres = "postgres17": writers stopped, verified
#      backup, new cluster, the same pg_dumpall | psql, every table checked (rows
#      and checksums), the switch itself and its health gate
# The data: Synapse's own schema, with event_json filled with unique rows until the
# database is at least the given size.
# Usage: bash bench/pg_upgrade.sh [GiB]   (as root; installs debootstrap)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
bench_prelude

GIB=${1:-1}
M="$PWD/target/release/masctl"
export MASCTL_CACHE="${MASCTL_CACHE:-$PWD/target/test-cache}" MASCTL_IMAGES="$PWD/images"
WORK=$(mktemp -d /var/tmp/masctl-bench-pgup.XXXXXX)
INST="benchu$$"
PORT=$(free_port)
write_config ""
BASE="$INST-pg17-baseline"
cleanup() {
    docker rm -f "$BASE" >/dev/null 2>&1 || true
    bench_stack_down
}
trap cleanup EXIT

echo "booting the stack in a systemd host (masctl try), Postgres 15"
"$M" -q -c "$WORK/conf/masctl.toml" try --json > "$WORK/try.json"
HOST="$INST-host"
PG="$INST-postgres"
IN=(docker exec "$HOST" /opt/masctl/bin/masctl --root "$WORK/root" -c /etc/masctl/masctl.toml)
psql() { docker exec "$PG" psql -h /run/postgresql -U postgres -v ON_ERROR_STOP=1 -tAq "$@"; }
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

echo "filling event_json to ${GIB} GiB"
n=$(fill_event_json "$PG" synapse $(( GIB * 1024 * 1024 * 1024 )))
size=$(psql -d synapse -c "SELECT pg_database_size('synapse')")
echo "synapse database: $size bytes, $n bench rows"

# Loaded before either measurement, so neither includes building the image.
PG17=$("$M" -q --root "$WORK/root" image load postgres17 | awk '$1 == "postgres17" {print $2}')

echo
echo "## 1. baseline: pg_dumpall | psql into a fresh Postgres 17 by hand"
docker run -d --name "$BASE" --network "$INST" --user 999:999 --tmpfs /run/postgresql:uid=999,gid=999 \
    -v "$WORK/root/secrets/postgres-superuser-pgpass:/run/secrets/pgpass:ro" -e PGPASSFILE=/run/secrets/pgpass \
    "$PG17" >/dev/null
for _ in $(seq 1 300); do
    docker exec "$BASE" pg_isready -q -h /run/postgresql && break
    sleep 0.2
done
t=$(date +%s%N)
docker exec "$BASE" sh -c "pg_dumpall -h $PG -U postgres | psql -X -q -h /run/postgresql -U postgres -d postgres >/dev/null 2>&1"
base=$(ms "$t")
[ "$(docker exec "$BASE" psql -h /run/postgresql -U postgres -d synapse -tAc "SELECT count(*) FROM event_json WHERE room_id = '!bench:bench.local'")" = "$n" ]
docker rm -f "$BASE" >/dev/null
echo "pg_dumpall | psql: $base ms"

echo "## 2. masctl switch to Postgres 17"
write_config '[images]
postgres = "postgres17"'
t=$(date +%s%N); "${IN[@]}" switch 2> "$WORK/switch.err" >/dev/null; upgrade=$(ms "$t")
grep -E "copied in|upgraded in" "$WORK/switch.err" || true
[ "$(psql -d postgres -c "SHOW server_version_num")" -ge 170000 ]
[ "$(psql -d synapse -c "SELECT count(*) FROM event_json WHERE room_id = '!bench:bench.local'")" = "$n" ]
echo "masctl switch (15 → 17): $upgrade ms"

echo
print_ratios "pg_dumpall \\| psql by hand (baseline):$base" "masctl switch, 15 → 17:$upgrade"
echo "database: $size bytes"
