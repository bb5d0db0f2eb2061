#!/usr/bin/env bash
# Downtime of a Synapse upgrade switch (1.67 → the current Synapse, which migrates the
# schema), with the verified backup masctl takes first, next to the same upgrade with
# --no-backup measured in the same run on the same data (the data is brought back to
# 1.67 in between with `rollback --restore-data`).
# Polls /_matrix/client/versions every 50 ms (bench/poll.py) during each switch.
# Usage: bash bench/upgrade.sh [USERS]   (as root; installs debootstrap)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
bench_prelude

USERS=${1:-20}
OLD='[images]
synapse = "synapse-old"
[synapse.extra.background_updates]
sleep_duration_ms = 10'
bench_stack upgrade "$OLD"
for _ in $(seq 1200); do curl -sf "http://127.0.0.1:$PORT/_matrix/client/versions" >/dev/null && break; sleep 0.1; done
for i in $(seq "$USERS"); do
    docker exec "$INST-synapse" python3 -m synapse._scripts.register_new_matrix_user \
        -c /etc/synapse/homeserver.yaml -u "user$i" -p "bench-pw-$i" --no-admin http://localhost:8008 >/dev/null
done
# Synapse's rule: the old version's background updates are done before an upgrade.
for _ in $(seq 3000); do
    [ "$(docker exec "$INST-postgres" psql -h /run/postgresql -U postgres -d synapse -tAc 'SELECT count(*) FROM background_updates')" = 0 ] && break
    sleep 0.1
done
size=$(docker exec "$INST-postgres" psql -h /run/postgresql -U postgres -tAc "SELECT pg_size_pretty(pg_database_size('synapse'))")
echo "synapse database: $USERS users, $size"

upgrade() {  # label, extra switch flags...
    local label=$1; shift
    write_config ""
    rm -f "$WORK/stop"
    python3 bench/poll.py "http://127.0.0.1:$PORT/_matrix/client/versions" "$WORK/stop" 900 > "$WORK/poll.out" &
    local poller=$!
    sleep 0.5
    local t0 t1
    t0=$(now_ms)
    "${IN[@]}" switch "$@" >/dev/null
    t1=$(now_ms)
    for _ in $(seq 1200); do curl -sf "http://127.0.0.1:$PORT/_matrix/client/versions" >/dev/null && break; sleep 0.05; done
    touch "$WORK/stop"; wait "$poller"
    echo "$label: switch $((t1 - t0)) ms, $(cat "$WORK/poll.out")"
}

echo
echo "## Synapse 1.67 -> current (schema 72 -> 94)"
upgrade "with the verified backup (default)"
"${IN[@]}" rollback --restore-data >/dev/null
upgrade "baseline: --no-backup             " --no-backup
