# Shared steps of the project's scripts: what a fresh Debian 12 host lacks.
# Sourced, not run.
# shellcheck shell=bash

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "run as root (it installs packages and starts dockerd)" >&2
        exit 1
    fi
}

# apt-get update once, only if the package lists are empty.
ensure_apt_lists() {
    if [ -z "$(find /var/lib/apt/lists -mindepth 1 -maxdepth 1 ! -name lock ! -name partial -print -quit 2>/dev/null)" ]; then
        apt-get update -qq
    fi
}

ensure_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "== installing ${missing[*]}"
        ensure_apt_lists
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
    fi
}

# Starts dockerd in the background unless an engine already answers, and waits
# until it does (a readiness check, bounded).
ensure_dockerd() {
    if docker info >/dev/null 2>&1; then
        return
    fi
    echo "== starting dockerd"
    mkdir -p /var/log
    # Live restore: containers (and masctl's supervisors) keep running while dockerd
    # restarts, as on a host where dockerd is upgraded under a running stack.
    nohup dockerd --live-restore >/var/log/masctl-dockerd.log 2>&1 &
    for _ in $(seq 1 150); do
        docker info >/dev/null 2>&1 && return
        sleep 0.2
    done
    echo "dockerd did not come up; see /var/log/masctl-dockerd.log" >&2
    tail -n 20 /var/log/masctl-dockerd.log >&2 || true
    exit 1
}

# For the benchmarks: milliseconds now, the median of numbers on stdin, and the
# milliseconds CMD… takes (its stdout discarded; its failure is the caller's).
now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
time_ms() {
    local t
    t=$(date +%s%N)
    "$@" >/dev/null || return
    echo $(( ($(date +%s%N) - t) / 1000000 ))
}

# psql ARGS… as the superuser over the socket of Postgres container $1, stopping at
# the first error, rows as bare text.
pg_sql() {
    local c=$1
    shift
    docker exec "$c" psql -h /run/postgresql -U postgres -v ON_ERROR_STOP=1 -tAq "$@"
}

# For the benchmarks: root, Docker, debootstrap (and any other packages named), a
# running dockerd and a release build of masctl. Sets M (that build) and, unless
# set already, MASCTL_CACHE (inputs shared with the tests) and MASCTL_IMAGES.
# shellcheck disable=SC2120 # the packages are optional
bench_prelude() {
    need_root
    ensure_packages docker.io debootstrap "$@"
    ensure_apt_lists
    ensure_dockerd
    cargo build --release --quiet
    M="$PWD/target/release/masctl"
    export MASCTL_CACHE="${MASCTL_CACHE:-$PWD/target/test-cache}" MASCTL_IMAGES="${MASCTL_IMAGES:-$PWD/images}"
}

# A free TCP port on loopback.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Fills Synapse's event_json in database $2 of Postgres container $1 with unique
# rows until the database holds at least $3 bytes, saying so; sets ROWS (the rows
# added) and SIZE (the database's bytes after).
fill_event_json() {
    local pg=$1 db=$2 target=$3
    echo "filling event_json to $(( target / 1024 / 1024 )) MiB"
    ROWS=0
    while [ "$(db_size "$pg" "$db")" -lt "$target" ]; do
        pg_sql "$pg" -d "$db" -c "INSERT INTO event_json (event_id, room_id, internal_metadata, json, format_version)
            SELECT '\$bench' || g || ':bench.local', '!bench:bench.local', '{}',
                   '{\"type\":\"m.room.message\",\"content\":{\"body\":\"' || md5(g::text) || md5((g*3)::text)
                   || md5((g*5)::text) || md5((g*7)::text) || md5((g*11)::text) || md5((g*13)::text) || '\"}}', 3
            FROM generate_series($ROWS + 1, $ROWS + 250000) g" >&2
        ROWS=$(( ROWS + 250000 ))
    done
    SIZE=$(db_size "$pg" "$db")
    echo "$db database: $SIZE bytes, $ROWS bench rows"
}
db_size() { pg_sql "$1" -d "$2" -c "SELECT pg_database_size('$2')"; }

# Fails the bench unless database $2 of Postgres container $1 holds the ROWS rows
# fill_event_json added.
check_event_rows() {
    local rows
    rows=$(pg_sql "$1" -d "$2" -c "SELECT count(*) FROM event_json WHERE room_id = '!bench:bench.local'")
    [ "$rows" = "$ROWS" ] || { echo "$2 on $1 holds $rows bench rows, not $ROWS" >&2; exit 1; }
}

# A markdown table of timings against the first one, the baseline:
# print_ratios "name:ms" … (a `|` in a name written as `\|`).
print_ratios() {
    local base=${1##*:} pair name v
    printf '| measurement | ms | / baseline |\n| --- | --- | --- |\n'
    for pair in "$@"; do
        name=${pair%:*}; v=${pair##*:}
        printf '| %s | %s | %s |\n' "$name" "$v" "$(python3 -c "print(f'{$v/$base:.2f}x')")"
    done
}

# The baseline next to masctl's backups: `pg_dump -Fc DB | pg_restore` into a new
# database owned by OWNER, in Postgres container PG, nothing else; prints its ms.
baseline_dump_restore() {
    local pg=$1 db=$2 owner=$3 ms
    pg_sql "$pg" -d postgres -c "CREATE DATABASE bench_copy OWNER $owner ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
    ms=$(time_ms docker exec "$pg" sh -c "pg_dump -h /run/postgresql -U postgres -Fc $db | pg_restore -h /run/postgresql -U postgres -d bench_copy --no-owner --role=$owner --exit-on-error") || return
    pg_sql "$pg" -d postgres -c "DROP DATABASE bench_copy"
    echo "$ms"
}

# A plain `pg_dump -Fc DB` of Postgres container PG into FILE (its output streamed
# out of the container, as masctl's own dumps are written to a mounted directory),
# nothing else; FILE removed after; prints its ms.
baseline_dump() {
    local pg=$1 db=$2 file=$3 ms
    ms=$(time_ms sh -c "docker exec $pg pg_dump -h /run/postgresql -U postgres -Fc $db > $file") || return
    rm -f "$file"
    echo "$ms"
}

# Measurements 1 and 2 of the backup benches: the baseline (baseline_dump_restore
# PG DB OWNER) and `masctl backup` in the stack; sets BASE_MS and BACKUP_MS.
backup_vs_baseline() {
    echo "## 1. baseline: pg_dump -Fc | pg_restore on the same server"
    BASE_MS=$(baseline_dump_restore "$@")
    echo "pg_dump | pg_restore: $BASE_MS ms"
    echo "## 2. masctl backup"
    BACKUP_MS=$(time_ms "${IN[@]}" backup)
    echo "masctl backup: $BACKUP_MS ms"
}

# For the benchmarks: a stack in a throwaway systemd host, in three steps a bench
# may take apart (to start things the config names before the stack boots):
#   bench_work NAME   WORK (a temporary directory), INST, PORT; on exit bench_stack_down
#   bench_boot [EXTRA]  writes the config and boots it with `masctl try`; sets HOST,
#                     IN (masctl inside the host, quiet) and IN_LOUD (with its steps)
#   bench_stack NAME [EXTRA]  both.
# write_config EXTRA rewrites the config: the base, BENCH_CONFIG (lines every config
# of this bench has), then EXTRA. bench_defer CMD… runs CMD (a string) on the way down.
bench_stack() {
    bench_work "$1"
    bench_boot "${2:-}"
}
bench_work() {
    WORK=$(mktemp -d "/var/tmp/masctl-bench-$1.XXXXXX")
    INST="bench${1:0:1}$$"
    PORT=$(free_port)
    BENCH_DEFERRED=()
    mkdir -p "$WORK/conf"
    trap bench_stack_down EXIT
}
bench_boot() {
    write_config "${1:-}"
    echo "booting the stack in a systemd host (masctl try)"
    "$M" -q -c "$WORK/conf/masctl.toml" try --json > "$WORK/try.json"
    HOST="$INST-host"
    # shellcheck disable=SC2034 # for the bench that sourced this
    IN=(docker exec "$HOST" /opt/masctl/bin/masctl -q --root "$WORK/root" -c /etc/masctl/masctl.toml)
    # shellcheck disable=SC2034
    IN_LOUD=(docker exec "$HOST" /opt/masctl/bin/masctl --root "$WORK/root" -c /etc/masctl/masctl.toml)
}
write_config() {
    cat > "$WORK/conf/masctl.toml" <<TOML
server_name = "bench.local"
instance = "$INST"
state_root = "$WORK/root"
[ports]
synapse = "127.0.0.1:$PORT"
${BENCH_CONFIG:-}
$1
TOML
}
bench_defer() { BENCH_DEFERRED+=("$1"); }
# Idempotent: a bench may take one stack down and boot another.
bench_stack_down() {
    [ -n "${WORK:-}" ] || return 0
    local i
    "$M" -q -c "$WORK/conf/masctl.toml" try --down >/dev/null 2>&1 || true
    # After the stack (its containers leave the networks), last deferred first.
    for (( i = ${#BENCH_DEFERRED[@]} - 1; i >= 0; i-- )); do
        eval "${BENCH_DEFERRED[i]}" >/dev/null 2>&1 || true
    done
    BENCH_DEFERRED=()
    docker network rm "$INST" >/dev/null 2>&1 || true
    rm -rf "$WORK"
    WORK=
}

# The median ms of RUNS no-op `masctl switch`es timed inside the stack's host.
noop_switch_ms() {
    docker exec "$HOST" bash -c "for i in \$(seq $1); do s=\$(date +%s%N); /opt/masctl/bin/masctl -q --root $WORK/root -c /etc/masctl/masctl.toml switch >/dev/null; e=\$(date +%s%N); echo \$(( (e-s)/1000000 )); done" | median
}

# An external Postgres for a bench stack: masctl's Postgres image run by hand as
# "$INST-extdb" on its own network "$INST-db" (sets DB and NET), ready, removed on
# the way down.
bench_external_postgres() {
    DB="$INST-extdb"
    NET="$INST-db"
    local image
    image=$("$M" -q image load postgres | awk '$1 == "postgres" {print $2}')
    docker network create "$NET" >/dev/null
    bench_defer "docker network rm '$NET'"
    bench_defer "docker rm -f -v '$DB'"
    docker run -d --name "$DB" --network "$NET" "$image" >/dev/null
    for _ in $(seq 120); do docker exec "$DB" pg_isready -q -h /run/postgresql && return; sleep 0.5; done
    echo "the external Postgres $DB did not become ready" >&2
    exit 1
}

# For the benchmarks: Synapse's availability while a command runs. `watch_synapse`
# starts polling /_matrix/client/versions every 50 ms (bench/poll.py);
# `synapse_window` waits until Synapse answers again, stops the poller and sets
# UNAVAILABLE (what the poller saw: requests, failures, the unavailable window).
watch_synapse() {
    rm -f "$WORK/stop"
    python3 bench/poll.py "http://127.0.0.1:$PORT/_matrix/client/versions" "$WORK/stop" 1800 > "$WORK/poll.out" &
    POLLER=$!
}
synapse_window() {
    for _ in $(seq 1200); do curl -sf "http://127.0.0.1:$PORT/_matrix/client/versions" >/dev/null && break; sleep 0.05; done
    touch "$WORK/stop"
    wait "$POLLER"
    UNAVAILABLE=$(cat "$WORK/poll.out")
}
