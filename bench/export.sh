#!/usr/bin/env bash
# `masctl export ess` of a >= 1 GB Synapse database next to a plain `pg_dump -Fc`
# of the same data, in the same run and the same Postgres:
#   1. baseline: pg_dump -Fc synapse > file        (nothing else)
#   2. masctl export ess --out DIR                 (schema read, values, Secrets,
#      runbook, verified dumps of every database, media archive)
# The data: Synapse's own schema, with event_json filled with unique rows until the
# database is at least 1 GiB. Two rounds, alternating; then a dump piped into
# pg_restore once (what a verified dump costs without masctl). Target: export <=
# 1.3x the baseline.
# Usage: bash bench/export.sh [GiB]   (as root; installs debootstrap)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
bench_prelude

GIB=${1:-1}
bench_stack export
PG="$INST-postgres"

fill_event_json "$PG" synapse $(( GIB * 1024 * 1024 * 1024 ))

# The fill leaves autovacuum and a checkpoint to run; settle them first, so the
# first measurement does not pay for them.
pg_sql "$PG" -d synapse -c "VACUUM (ANALYZE) event_json" >/dev/null
pg_sql "$PG" -d postgres -c "CHECKPOINT" >/dev/null

# Two rounds, the baseline and masctl alternating, so a load change on the machine
# falls on both; the ratio is of the sums.
base_sum=0 export_sum=0 rows=()
for round in 1 2; do
    echo "## round $round: pg_dump -Fc (baseline)"
    base=$(baseline_dump "$PG" synapse "$WORK/baseline.dump")
    echo "pg_dump -Fc: $base ms"
    echo "## round $round: masctl export ess"
    OUT="$WORK/root/ess-export-$round"
    export_ms=$(time_ms "${IN[@]}" export ess --out "$OUT")
    echo "masctl export ess: $export_ms ms"
    check_event_rows "$PG" synapse
    base_sum=$(( base_sum + base )) export_sum=$(( export_sum + export_ms ))
    rows+=("pg_dump -Fc, round $round:$base" "masctl export ess, round $round:$export_ms")
done
echo "## pg_dump -Fc | pg_restore on the same server (a dump and its verification)"
dump_restore=$(baseline_dump_restore "$PG" synapse synapse)

echo
print_ratios "pg_dump -Fc, both rounds (baseline):$base_sum" "masctl export ess, both rounds:$export_sum" \
    "${rows[@]}" "pg_dump -Fc \\| pg_restore (once):$dump_restore"
echo "database: $SIZE bytes; export dump: $(stat -c %s "$OUT/data/synapse.dump") bytes"
