#!/usr/bin/env bash
# `masctl export ess` of a >= 1 GB Synapse database next to a plain `pg_dump -Fc`
# of the same data, in the same run and the same Postgres:
#   1. baseline: pg_dump -Fc synapse > file        (nothing else)
#   2. pg_dump -Fc synapse | pg_restore -d <new database>   (a dump and what its
#      verification costs, the baseline of the backup benches)
#   3. masctl export ess --out DIR                 (schema read, values, Secrets,
#      runbook, verified dumps of every database, media archive)
# The data: Synapse's own schema, with event_json filled with unique rows until the
# database is at least 1 GiB. Target: export <= 1.3x the baseline.
# Usage: bash bench/export.sh [GiB]   (as root; installs debootstrap)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
bench_prelude

GIB=${1:-1}
bench_stack export
PG="$INST-postgres"

fill_event_json "$PG" synapse $(( GIB * 1024 * 1024 * 1024 ))

echo "## 1. baseline: pg_dump -Fc on the same server"
base=$(baseline_dump "$PG" synapse "$WORK/baseline.dump")
echo "pg_dump -Fc: $base ms"

echo "## 2. baseline: pg_dump -Fc | pg_restore on the same server (a dump and its verification)"
dump_restore=$(baseline_dump_restore "$PG" synapse synapse)
echo "pg_dump -Fc | pg_restore: $dump_restore ms"

echo "## 3. masctl export ess"
OUT="$WORK/root/ess-export"
export_ms=$(time_ms "${IN[@]}" export ess --out "$OUT")
echo "masctl export ess: $export_ms ms"
check_event_rows "$PG" synapse

echo
print_ratios "pg_dump -Fc (baseline):$base" "pg_dump -Fc \\| pg_restore:$dump_restore" "masctl export ess:$export_ms"
echo "database: $SIZE bytes; export dump: $(stat -c %s "$OUT/data/synapse.dump") bytes"
