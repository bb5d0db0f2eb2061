#!/usr/bin/env bash
# Postgres 15 → 17 upgrade of a >= 1 GB database, next to the plain way by hand in
# the same run, between the same two servers' images:
#   1. baseline: pg_dumpall (17's, reading the 15 server) | psql into a fresh 17 server
#   2. masctl switch to images.postgres = "postgres17": writers stopped, one dump
#      per database (the backup and the copy's source), new cluster, pg_restore of
#      each dump, every table checked on both servers at once (rows and checksums),
#      the switch itself and its health gate
# The data: Synapse's own schema, with event_json filled with unique rows until the
# database is at least the given size.
# Usage: bash bench/pg_upgrade.sh [GiB]   (as root; installs debootstrap)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
bench_prelude

GIB=${1:-1}
bench_work pgup
BASE="$INST-pg17-baseline"
bench_defer "docker rm -f '$BASE'"
bench_boot  # Postgres 15
PG="$INST-postgres"

fill_event_json "$PG" synapse $(( GIB * 1024 * 1024 * 1024 ))

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
base=$(time_ms docker exec "$BASE" sh -c "pg_dumpall -h $PG -U postgres | psql -X -q -h /run/postgresql -U postgres -d postgres >/dev/null 2>&1")
check_event_rows "$BASE" synapse
docker rm -f "$BASE" >/dev/null
echo "pg_dumpall | psql: $base ms"

echo "## 2. masctl switch to Postgres 17"
write_config '[images]
postgres = "postgres17"'
watch_synapse
upgrade=$(time_ms "${IN_LOUD[@]}" switch 2> "$WORK/switch.err")
synapse_window
echo "Synapse during the upgrade: $UNAVAILABLE"
# Where the time goes, in masctl's own words (each step says how long it took).
grep -E "dumped in|copied in|copied and checked|verified backup|switched to" "$WORK/switch.err" || true
[ "$(pg_sql "$PG" -d postgres -c "SHOW server_version_num")" -ge 170000 ]
check_event_rows "$PG" synapse
echo "masctl switch (15 → 17): $upgrade ms"

echo
print_ratios "pg_dumpall \\| psql by hand (baseline):$base" "masctl switch, 15 → 17:$upgrade"
echo "database: $SIZE bytes"
