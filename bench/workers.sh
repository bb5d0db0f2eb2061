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

M="$PWD/target/release/masctl"
export MASCTL_CACHE="${MASCTL_CACHE:-$PWD/target/bench-cache}" MASCTL_IMAGES="$PWD/images"
WORK=$(mktemp -d /var/tmp/masctl-bench-workers.XXXXXX)
cleanup() {
    for c in "$WORK"/*/masctl.toml; do "$M" -q -c "$c" try --down >/dev/null 2>&1 || true; done
    for i in "$WORK"/*/instance; do docker network rm "$(cat "$i")" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

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

run() {
    local label=$1 extra=$2
    local dir="$WORK/$label" inst="bw$$-$label" port
    port=$(free_port)
    mkdir -p "$dir"
    echo "$inst" > "$dir/instance"
    cat > "$dir/masctl.toml" <<TOML
server_name = "bench.local"
instance = "$inst"
state_root = "$dir/root"
[ports]
synapse = "127.0.0.1:$port"
$extra
[synapse.extra.rc_message]
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
burst_count = 1000
TOML
    echo "== $label: booting the stack (masctl try)"
    "$M" -q -c "$dir/masctl.toml" try --json > "$dir/try.json"
    local syn="$inst-synapse"
    for i in $(seq 0 $((N - 1))); do
        docker exec "$syn" python3 -c "open('/tmp/pw','w').write('bench-pw')"
        docker exec "$syn" python3 -m synapse._scripts.register_new_matrix_user -c /etc/synapse/homeserver.yaml \
            -u "load$i" --password-file /tmp/pw --no-admin http://localhost:8008 >/dev/null
    done
    echo "== $label: $N clients for ${SECS}s"
    python3 bench/load.py "http://127.0.0.1:$port" "$N" "$SECS" bench-pw | sed "s/^/$label: /"
    local mem
    mem=$(stack_mem "$inst")
    echo "$label: memory of the stack after the load: $mem"
    local noop
    noop=$(docker exec "$inst-host" bash -c "for i in \$(seq 15); do s=\$(date +%s%N); /opt/masctl/bin/masctl -q --root $dir/root -c /etc/masctl/masctl.toml switch >/dev/null; e=\$(date +%s%N); echo \$(( (e-s)/1000000 )); done" | median)
    echo "$label: masctl switch (no-op, inside the host), median of 15: ${noop} ms"
    "$M" -q -c "$dir/masctl.toml" try --down >/dev/null
}

run main ""
run workers $'[synapse.workers]\npreset = "one-of-each"'
