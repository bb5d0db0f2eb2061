# Shared steps of the project's scripts: what a fresh Debian 12 host lacks.
# Sourced, not run.

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "run as root (it installs packages and starts dockerd)" >&2
        exit 1
    fi
}

# apt-get update once, only if the package lists are empty.
ensure_apt_lists() {
    if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
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

# For the benchmarks: milliseconds now, and the median of numbers on stdin.
now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# For the benchmarks: root, Docker, debootstrap (and any other packages named), a
# running dockerd and a release build of masctl.
bench_prelude() {
    need_root
    ensure_packages docker.io debootstrap "$@"
    ensure_apt_lists
    ensure_dockerd
    cargo build --release --quiet
}

# A free TCP port on loopback.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Fills Synapse's event_json in database $2 of Postgres container $1 with unique
# rows until the database holds at least $3 bytes; prints the number of rows added.
fill_event_json() {
    local pg=$1 db=$2 target=$3 n=0
    local q=(docker exec "$pg" psql -h /run/postgresql -U postgres -v ON_ERROR_STOP=1 -tAq -d "$db")
    while [ "$("${q[@]}" -c "SELECT pg_database_size('$db')")" -lt "$target" ]; do
        "${q[@]}" -c "INSERT INTO event_json (event_id, room_id, internal_metadata, json, format_version)
            SELECT '\$bench' || g || ':bench.local', '!bench:bench.local', '{}',
                   '{\"type\":\"m.room.message\",\"content\":{\"body\":\"' || md5(g::text) || md5((g*3)::text)
                   || md5((g*5)::text) || md5((g*7)::text) || md5((g*11)::text) || md5((g*13)::text) || '\"}}', 3
            FROM generate_series($n + 1, $n + 250000) g" >&2
        n=$(( n + 250000 ))
    done
    echo "$n"
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
    local pg=$1 db=$2 owner=$3 t ms
    local q=(docker exec "$pg" psql -h /run/postgresql -U postgres -v ON_ERROR_STOP=1 -tAq -d postgres)
    "${q[@]}" -c "CREATE DATABASE bench_copy OWNER $owner ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
    t=$(date +%s%N)
    docker exec "$pg" sh -c "pg_dump -h /run/postgresql -U postgres -Fc $db | pg_restore -h /run/postgresql -U postgres -d bench_copy --no-owner --role=$owner --exit-on-error"
    ms=$(( ($(date +%s%N) - t) / 1000000 ))
    "${q[@]}" -c "DROP DATABASE bench_copy"
    echo "$ms"
}

# For the benchmarks: a stack in a throwaway systemd host. Sets WORK, INST, PORT,
# HOST and IN (masctl inside the host); write_config EXTRA writes the config with
# EXTRA appended; the stack and WORK go away on exit. bench_stack NAME [EXTRA].
bench_stack() {
    WORK=$(mktemp -d "/var/tmp/masctl-bench-$1.XXXXXX")
    INST="bench${1:0:1}$$"
    PORT=$(free_port)
    mkdir -p "$WORK/conf"
    trap bench_stack_down EXIT
    write_config "${2:-}"
    echo "booting the stack in a systemd host (masctl try)"
    "$M" -q -c "$WORK/conf/masctl.toml" try --json > "$WORK/try.json"
    HOST="$INST-host"
    IN=(docker exec "$HOST" /opt/masctl/bin/masctl -q --root "$WORK/root" -c /etc/masctl/masctl.toml)
}
write_config() {
    cat > "$WORK/conf/masctl.toml" <<TOML
server_name = "bench.local"
instance = "$INST"
state_root = "$WORK/root"
[ports]
synapse = "127.0.0.1:$PORT"
$1
TOML
}
bench_stack_down() {
    "$M" -q -c "$WORK/conf/masctl.toml" try --down >/dev/null 2>&1 || true
    docker network rm "$INST" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
