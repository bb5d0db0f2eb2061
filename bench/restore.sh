#!/usr/bin/env bash
# Restore and import of a >= 1 GB Synapse database, next to a plain
# `pg_dump -Fc | pg_restore` of the same data in the same run and the same Postgres:
#   1. baseline: pg_dump -Fc synapse | pg_restore -d <new database>   (nothing else)
#   2. masctl backup                 (dump + verification restore)
#   3. masctl restore                (load + check, stop, swap keeping the replaced database, start,
#                                     health gate); then, timed apart, the unit that backs up the
#                                     replaced database (dump + verification restore) and drops it
#   4. masctl import synapse         (stage + load + check, media, secrets, swap as above); likewise
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

# ms from now until the unit that backs up what a restore replaced has dropped it
# (the replaced database is gone only once its verified backup exists).
replaced_backup_ms() {
    local t0 left
    t0=$(date +%s%N)
    for _ in $(seq 36000); do
        left=$(pg_sql "$PG" -d postgres -c "SELECT count(*) FROM pg_database WHERE datname LIKE 'masctl\_old\_%'")
        [ "$left" = 0 ] && { echo $(( ($(date +%s%N) - t0) / 1000000 )); return; }
        sleep 0.1
    done
    echo "the replaced database's backup did not finish" >&2
    exit 1
}

echo "## 3. masctl restore"
watch_synapse
restore=$(time_ms "${IN[@]}" restore)
synapse_window
echo "masctl restore: $restore ms; Synapse meanwhile: $UNAVAILABLE"
restore_after=$(replaced_backup_ms)
echo "then the replaced database's verified backup: $restore_after ms more"
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
import_after=$(replaced_backup_ms)
echo "then the replaced database's verified backup: $import_after ms more"
check_event_rows "$PG" synapse

echo
print_ratios "pg_dump \\| pg_restore (baseline):$BASE_MS" "masctl backup:$BACKUP_MS" "masctl restore:$restore" \
    "masctl import synapse:$import" \
    "masctl restore, then its backup of the replaced database:$((restore + restore_after))" \
    "masctl import synapse, then its backup of the replaced database:$((import + import_after))"
echo "database: $SIZE bytes; dump: $(stat -c %s "$SRC/synapse.dump") bytes"
