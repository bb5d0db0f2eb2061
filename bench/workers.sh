#!/usr/bin/env bash
# Synapse with workers (preset one-of-each) vs without, two stacks booted one
# after the other in the same run on this machine:
#   - sustained message sends and /sync responses per second from N concurrent
#     real clients (bench/load.py: each client sends back to back and long-polls
#     /sync, all in one room), through the edge
#   - memory of the whole stack after the load (proportional set size of every
#     process in its containers)
#   - the no-op `masctl switch` (median of 15), with and without workers
# Usage: bash bench/workers.sh [CLIENTS] [SECONDS]   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
bench_prelude
N=${1:-8}
SECS=${2:-30}
# Many clients log in and send from one address: no rate limit in the way.
BENCH_CONFIG='[synapse.extra.rc_message]
per_second = 100000
burst_count = 100000
[synapse.extra.rc_login.address]
per_second = 1000
burst_count = 1000
[synapse.extra.rc_login.account]
per_second = 1000
burst_count = 1000
[synapse.extra.rc_joins.local]
per_second = 1000
burst_count = 1000'

# Proportional set size (shared pages split among their users) of every process
# in the instance's service containers, in MiB; docker stats has no memory
# numbers on hosts without the memory cgroup controller.
stack_mem() {
    local inst=$1 total=0 n=0 c pid kb
    for c in $(docker ps --format '{{.Names}}' | grep "^$inst-" | grep -v -- "-host$"); do
        n=$((n + 1))
        for pid in $(docker top "$c" -eo pid | tail -n +2); do
            kb=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || true)
            total=$((total + ${kb:-0}))
        done
    done
    echo "$((total / 1024)) MiB in $n containers"
}

# One stack after the other: each booted, measured and taken down in turn.
run() {
    local label=$1 extra=$2
    echo "== $label"
    bench_stack "$label" "$extra"
    local syn="$INST-synapse"
    for i in $(seq 0 $((N - 1))); do
        docker exec "$syn" python3 -c "open('/tmp/pw','w').write('bench-pw')"
        docker exec "$syn" python3 -m synapse._scripts.register_new_matrix_user -c /etc/synapse/homeserver.yaml \
            -u "load$i" --password-file /tmp/pw --no-admin http://localhost:8008 >/dev/null
    done
    echo "== $label: $N clients for ${SECS}s"
    python3 bench/load.py "http://127.0.0.1:$PORT" "$N" "$SECS" bench-pw | sed "s/^/$label: /"
    local mem
    mem=$(stack_mem "$INST")
    echo "$label: memory of the stack after the load: $mem"
    echo "$label: masctl switch (no-op, inside the host), median of 15: $(noop_switch_ms 15) ms"
    bench_stack_down
}

run main ""
run workers $'[synapse.workers]\npreset = "one-of-each"'
