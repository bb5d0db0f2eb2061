#!/usr/bin/env bash
# Restore and import of a >= 1 GB Synapse database, next to a plain
# `pg_dump -Fc | pg_restore` of the same data in the same run and the same Postgres:
#   1. baseline: pg_dump -Fc synapse | pg_restore -d <new database>   (nothing else)
#   2. masctl backup                 (dump + verification restore)
#   3. masctl restore                (backup beside load + check, stop, swap, start, health gate)
#   4. masctl import synapse         (backup beside stage + load + check, media, secrets, start)
# The data: Synapse's own schema, with event_json filled with unique rows until the
# database is at least 1 GiB.
# Usage: bash bench/restore.sh [GiB]   (as root; installs debootstrap)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
bench_prelude

GIB=${1:-1}
bench_stack restore
PG="$INST-postgres"

fill_event_json "$PG" synapse $(( GIB * 1024 * 1024 * 1024 ))

echo
backup_vs_baseline "$PG" synapse synapse

echo "## 3. masctl restore"
watch_synapse
restore=$(time_ms "${IN[@]}" restore)
synapse_window
echo "masctl restore: $restore ms; Synapse meanwhile: $UNAVAILABLE"
check_event_rows "$PG" synapse

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
watch_synapse
import=$(time_ms "${IN[@]}" import synapse --homeserver "$SRC/homeserver.yaml" --dump "$SRC/synapse.dump")
synapse_window
echo "masctl import synapse: $import ms; Synapse meanwhile: $UNAVAILABLE"
check_event_rows "$PG" synapse

echo
print_ratios "pg_dump \\| pg_restore (baseline):$BASE_MS" "masctl backup:$BACKUP_MS" "masctl restore:$restore" \
    "masctl import synapse:$import"
echo "database: $SIZE bytes; dump: $(stat -c %s "$SRC/synapse.dump") bytes"
