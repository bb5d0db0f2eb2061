#!/usr/bin/env bash
# Switch benchmarks, each next to a baseline measured in the same run:
#   1. no-op `masctl switch`            vs  no-op `docker-compose up -d` of an equivalent
#                                           Postgres + Synapse compose file (same images)
#   2. availability while switching     vs  a full restart of the stack (what the playbook does),
#      polling /_matrix/client/versions every 50 ms
#   3. resident memory of `masctl supervise` per service  vs  the `docker start --attach`
#      client that playbook-style units keep running
#   4. no-op `masctl switch` of the same host switched to one-of-each workers (9 units)
#      vs  the same compose baseline as 1
# Usage: bash bench/switch.sh   (as root; installs docker-compose and debootstrap)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
bench_prelude docker-compose

bench_work switch
CPORT=$(free_port)
bench_defer "(cd '$WORK' && docker-compose -p 'c$INST' down -v)"
bench_defer "docker rm -f 'attach$INST'"
bench_boot

echo
echo "## 1. no-op switch"
noop=$(noop_switch_ms 15)
gens=$("${IN[@]}" generations --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
echo "masctl switch (no-op, inside the host), median of 15: ${noop} ms (generations after: $gens)"

# The same two services under docker-compose: same images, same rendered
# homeserver.yaml and secrets, their own data directories.
gen=$(readlink -f "$WORK/root/current")
spec() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]+'/spec.json'))[sys.argv[2]])" "$(python3 -c "import json,sys; print(json.load(open('$gen/manifest.json'))['services']['$1'])")" "$2"; }
PGIMG=$(spec postgres image); SYNIMG=$(spec synapse image)
PGCONF=$(ls -d "$WORK"/root/store/*-postgres-config); SYNCONF=$(ls -d "$WORK"/root/store/*-synapse-config)
S="$WORK/root/secrets"
mkdir -p "$WORK/cdata/pg" "$WORK/cdata/syn"; chown 999:999 "$WORK/cdata/pg"; chmod 700 "$WORK/cdata/pg"; chown 991:991 "$WORK/cdata/syn"
cat > "$WORK/docker-compose.yml" <<YML
version: "2.4"
services:
  postgres:
    image: "$PGIMG"
    user: "999:999"
    read_only: true
    cap_drop: [ALL]
    security_opt: [no-new-privileges]
    environment: [POSTGRES_PASSWORD_FILE=/run/secrets/postgres-superuser]
    tmpfs: ["/tmp", "/run/postgresql:uid=999,gid=999,mode=2775"]
    volumes:
      - $WORK/cdata/pg:/var/lib/postgresql/data
      - $PGCONF:/etc/masctl:ro
      - $S/postgres-superuser:/run/secrets/postgres-superuser:ro
      - $S/postgres-synapse:/run/secrets/postgres-synapse:ro
    healthcheck: {test: [CMD, pg_isready, -q, -h, /run/postgresql, -U, postgres], interval: 1s}
    networks: {default: {aliases: [$INST-postgres]}}
  synapse:
    image: "$SYNIMG"
    user: "991:991"
    read_only: true
    cap_drop: [ALL]
    security_opt: [no-new-privileges]
    command: [--config-path, /etc/synapse/homeserver.yaml]
    tmpfs: ["/tmp"]
    ports: ["127.0.0.1:$CPORT:8008"]
    volumes:
      - $WORK/cdata/syn:/data
      - $SYNCONF:/etc/synapse:ro
$(for f in synapse-pgpass synapse-macaroon synapse-form synapse-registration synapse-signing.key; do echo "      - $S/$f:/run/secrets/$f:ro"; done)
    depends_on: [postgres]
YML
cd "$WORK"
docker-compose -p "c$INST" up -d postgres >/dev/null 2>&1
for _ in $(seq 600); do [ "$(docker inspect -f '{{.State.Health.Status}}' "c${INST}_postgres_1" 2>/dev/null)" = healthy ] && break; sleep 0.1; done
docker exec "c${INST}_postgres_1" psql -q -h /run/postgresql -U postgres -f /etc/masctl/init.sql >/dev/null
docker-compose -p "c$INST" up -d >/dev/null 2>&1
for _ in $(seq 1200); do curl -sf "http://127.0.0.1:$CPORT/_matrix/client/versions" >/dev/null && break; sleep 0.1; done
compose=()
for i in $(seq 5); do
    t0=$(now_ms); docker-compose -p "c$INST" up -d >/dev/null 2>&1; t1=$(now_ms); compose+=($((t1 - t0)))
done
cd - >/dev/null
compose_ms=$(printf '%s\n' "${compose[@]}" | median)
echo "docker-compose up -d (no-op), median of 5: ${compose_ms} ms"
awk -v c="$compose_ms" -v m="$noop" 'BEGIN {printf "masctl no-op switch is %.1fx faster (target >= 5x, and < 200 ms)\n", c / m}'

echo
echo "## 2. availability during a switch (GET /_matrix/client/versions every 50 ms)"
poll_during() {  # label, command...
    local label=$1; shift
    rm -f "$WORK/stop"
    python3 bench/poll.py "http://127.0.0.1:$PORT/_matrix/client/versions" "$WORK/stop" 600 > "$WORK/poll.out" &
    local poller=$!
    sleep 0.5
    "$@" >/dev/null
    for _ in $(seq 1200); do curl -sf "http://127.0.0.1:$PORT/_matrix/client/versions" >/dev/null && break; sleep 0.05; done
    sleep 0.5
    touch "$WORK/stop"; wait "$poller"
    echo "$label: $(cat "$WORK/poll.out")"
}
write_config '[postgres.settings]
work_mem = "8MB"'
poll_during "switch changing Postgres only (no Synapse input)" "${IN[@]}" switch
write_config '[postgres.settings]
work_mem = "8MB"
[synapse.extra]
max_upload_size = "20M"'
poll_during "switch changing Synapse only                    " "${IN[@]}" switch
poll_during "baseline: full restart of the stack (playbook)  " docker exec "$HOST" systemctl restart "masctl-postgres.service" "masctl-synapse.service"

echo
echo "## 3. resident memory"
for pid in $(pgrep -f "masctl --root $WORK/root supervise"); do
    svc=$(tr '\0' ' ' < "/proc/$pid/cmdline" | grep -o 'service-[a-z]*' | head -1)
    echo "masctl supervise ($svc): $(awk '/VmRSS/ {print $2}' "/proc/$pid/status") kB"
done
docker create --name "attach$INST" --user 999:999 --tmpfs /tmp --tmpfs /run/postgresql:uid=999,gid=999 -e POSTGRES_HOST_AUTH=trust "$PGIMG" >/dev/null
docker start --attach "attach$INST" >/dev/null 2>&1 &
client=$!
for _ in $(seq 300); do [ "$(docker inspect -f '{{.State.Running}}' "attach$INST")" = true ] && break; sleep 0.1; done
sleep 1
echo "baseline: docker start --attach client (postgres): $(awk '/VmRSS/ {print $2}' /proc/$client/status) kB"
kill "$client" 2>/dev/null || true

echo
echo "## 4. no-op switch with one-of-each workers"
write_config '[synapse.workers]
preset = "one-of-each"'
"${IN[@]}" switch >/dev/null
units=$(docker exec "$HOST" systemctl list-units --no-legend --plain 'masctl-*.service' | wc -l)
noop_workers=$(noop_switch_ms 15)
echo "masctl switch (no-op, $units units, inside the host), median of 15: ${noop_workers} ms"
awk -v c="$compose_ms" -v m="$noop_workers" 'BEGIN {printf "with workers, masctl no-op switch is %.1fx faster than docker-compose up -d of 2 services (target <= 30 ms)\n", c / m}'
