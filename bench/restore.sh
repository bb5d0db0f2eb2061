#!/usr/bin/env bash
# Restore and import of a >= 1 GB Synapse database, next to a plain
# `pg_dump -Fc | pg_restore` of the same data in the same run and the same Postgres:
#   1. baseline: pg_dump -Fc synapse | pg_restore -d <new database>   (nothing else)
#   2. masctl backup                 (dump + verification restore)
#   3. masctl restore                (backup first, load + check, stop, swap, start, health gate)
#   4. masctl import synapse         (backup first, stage, load + check, media, secrets, start)
# The data: Synapse's own schema, with event_json filled with unique rows until the
# database is at least 1 GiB.
# Usage: bash bench/restore.sh [GiB]   (as root; installs debootstrap)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
bench_prelude

GIB=${1:-1}
M="$PWD/target/release/masctl"
export MASCTL_CACHE="${MASCTL_CACHE:-$PWD/target/test-cache}" MASCTL_IMAGES="$PWD/images"
bench_stack restore
PG="$INST-postgres"
psql() { docker exec "$PG" psql -h /run/postgresql -U postgres -v ON_ERROR_STOP=1 -tAq "$@"; }
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

echo "filling event_json to ${GIB} GiB"
target=$(( GIB * 1024 * 1024 * 1024 ))
n=$(fill_event_json "$PG" synapse "$target")
size=$(psql -d synapse -c "SELECT pg_database_size('synapse')")
echo "synapse database: $size bytes, $n bench rows"

echo
echo "## 1. baseline: pg_dump -Fc | pg_restore"
base=$(baseline_dump_restore "$PG" synapse synapse)
echo "pg_dump | pg_restore: $base ms"

echo "## 2. masctl backup"
t=$(date +%s%N); "${IN[@]}" backup >/dev/null; backup=$(ms "$t")
echo "masctl backup: $backup ms"

echo "## 3. masctl restore"
t=$(date +%s%N); "${IN[@]}" restore >/dev/null; restore=$(ms "$t")
echo "masctl restore: $restore ms"
[ "$(psql -d synapse -c "SELECT count(*) FROM event_json WHERE room_id = '!bench:bench.local'")" = "$n" ]

echo "## 4. masctl import synapse (the same data as a source server's pg_dump)"
SRC="$WORK/root/source"
mkdir -p "$SRC/media"
docker exec "$PG" pg_dump -h /run/postgresql -U postgres -Fc synapse > "$SRC/synapse.dump"
cp "$WORK/root/secrets/synapse-signing.key" "$SRC/signing.key"
cat > "$SRC/homeserver.yaml" <<YAML
server_name: bench.local
report_stats: false
signing_key_path: $SRC/signing.key
media_store_path: $SRC/media
YAML
t=$(date +%s%N); "${IN[@]}" import synapse --homeserver "$SRC/homeserver.yaml" --dump "$SRC/synapse.dump" >/dev/null; import=$(ms "$t")
echo "masctl import synapse: $import ms"
[ "$(psql -d synapse -c "SELECT count(*) FROM event_json WHERE room_id = '!bench:bench.local'")" = "$n" ]

echo
print_ratios "pg_dump \\| pg_restore (baseline):$base" "masctl backup:$backup" "masctl restore:$restore" \
    "masctl import synapse:$import"
echo "database: $size bytes; dump: $(stat -c %s "$SRC/synapse.dump") bytes"
