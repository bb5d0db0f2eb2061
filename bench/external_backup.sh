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
M="$PWD/target/release/masctl"
export MASCTL_CACHE="${MASCTL_CACHE:-$PWD/target/test-cache}" MASCTL_IMAGES="$PWD/images"
WORK=$(mktemp -d /var/tmp/masctl-bench-extpg.XXXXXX)
INST="benche$$"
NET="$INST-db"
DB="$INST-extdb"
PORT=$(free_port)
cleanup() {
    "$M" -q -c "$WORK/conf/masctl.toml" try --down >/dev/null 2>&1 || true
    docker rm -f -v "$DB" >/dev/null 2>&1 || true
    docker network rm "$INST" "$NET" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
psql() { docker exec "$DB" psql -h /run/postgresql -U postgres -v ON_ERROR_STOP=1 -tAq "$@"; }

echo "the external server: masctl's Postgres image, run by hand"
PG_IMAGE=$("$M" -q image load postgres | awk '$1 == "postgres" {print $2}')
docker network create "$NET" >/dev/null
docker run -d --name "$DB" --network "$NET" "$PG_IMAGE" >/dev/null
for _ in $(seq 120); do docker exec "$DB" pg_isready -q -h /run/postgresql && break; sleep 0.5; done
PW=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
psql -d postgres -c "CREATE ROLE syn_owner LOGIN PASSWORD '$PW'"
psql -d postgres -c "CREATE DATABASE synapse_db OWNER syn_owner ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
mkdir -p "$WORK/conf" "$WORK/root/pw"
printf '%s\n' "$PW" > "$WORK/root/pw/synapse"
chmod 600 "$WORK/root/pw/synapse"
cat > "$WORK/conf/masctl.toml" <<TOML
server_name = "bench.local"
instance = "$INST"
state_root = "$WORK/root"
[ports]
synapse = "127.0.0.1:$PORT"
[postgres.external]
host = "$DB"
network = "$NET"
synapse = { database = "synapse_db", user = "syn_owner", password_file = "$WORK/root/pw/synapse" }
TOML

echo "booting the stack in a systemd host (masctl try)"
"$M" -q -c "$WORK/conf/masctl.toml" try --json > "$WORK/try.json"
IN=(docker exec "$INST-host" /opt/masctl/bin/masctl -q --root "$WORK/root" -c /etc/masctl/masctl.toml)

echo "filling event_json to ${MIB} MiB"
target=$(( MIB * 1024 * 1024 ))
n=$(fill_event_json "$DB" synapse_db "$target")
size=$(psql -d synapse_db -c "SELECT pg_database_size('synapse_db')")
echo "synapse database: $size bytes, $n bench rows"

echo "## 1. baseline: pg_dump -Fc | pg_restore on the same server"
base=$(baseline_dump_restore "$DB" synapse_db syn_owner)
echo "pg_dump | pg_restore: $base ms"

echo "## 2. masctl backup"
t=$(date +%s%N); "${IN[@]}" backup >/dev/null; backup=$(ms "$t")
echo "masctl backup: $backup ms"

echo
print_ratios "pg_dump \\| pg_restore (baseline):$base" "masctl backup:$backup"
echo "database: $size bytes; dump: $(stat -c %s "$WORK"/root/backups/synapse-*.dump) bytes"
