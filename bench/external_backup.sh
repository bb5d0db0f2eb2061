#!/usr/bin/env bash
# masctl backup against an external Postgres (a plain `docker run` of masctl's
# Postgres image, roles and databases made as its administrator would), next to a
# plain `pg_dump -Fc | pg_restore` of the same data into a new database on the
# same server, in the same run:
#   1. baseline: pg_dump -Fc synapse_db | pg_restore -d <new database>   (nothing else)
#   2. masctl backup: dump as Synapse's own role, then a verification restore into
#      a throwaway server started inside the job (masctl may not create databases
#      on an external server)
# The data: Synapse's own schema, event_json filled with unique rows to MiB.
# Usage: bash bench/external_backup.sh [MiB]   (as root; installs debootstrap)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
bench_prelude

MIB=${1:-512}
bench_work extpg

echo "the external server: masctl's Postgres image, run by hand"
bench_external_postgres
PW=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
pg_sql "$DB" -d postgres -c "CREATE ROLE syn_owner LOGIN PASSWORD '$PW'"
pg_sql "$DB" -d postgres -c "CREATE DATABASE synapse_db OWNER syn_owner ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
mkdir -p "$WORK/root/pw"
printf '%s\n' "$PW" > "$WORK/root/pw/synapse"
chmod 600 "$WORK/root/pw/synapse"
bench_boot "[postgres.external]
host = \"$DB\"
network = \"$NET\"
synapse = { database = \"synapse_db\", user = \"syn_owner\", password_file = \"$WORK/root/pw/synapse\" }"

fill_event_json "$DB" synapse_db $(( MIB * 1024 * 1024 ))

backup_vs_baseline "$DB" synapse_db syn_owner

echo
print_ratios "pg_dump \\| pg_restore (baseline):$BASE_MS" "masctl backup:$BACKUP_MS"
echo "database: $SIZE bytes; dump: $(stat -c %s "$WORK"/root/backups/synapse-*.dump) bytes"
