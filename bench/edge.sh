#!/usr/bin/env bash
# Failed client requests while a switch restarts Synapse or MAS: the edge (Caddy,
# holding requests up to 30 s) next to today's nginx proxy (main's recipe and
# config) in front of the same stack, polled at the same time during the same
# switches. MAS is the test stand-in (tests/mas-standin); the real one cannot be
# had here.
#   Synapse-only switch: GET /_matrix/client/versions        (Synapse)
#   MAS-only switch:     GET /_matrix/client/v3/login        (MAS's compatibility routes)
# Usage: bash bench/edge.sh   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
bench_prelude

bench_work edge
NPORT=$(free_port)
# The project's images plus the MAS stand-in, and main's nginx recipe as `nginx`.
IMG="$WORK/images"; mkdir -p "$IMG" "$WORK/nginx"
cp images/*.toml images/*.lock "$IMG"/; cp -r images/files "$IMG"/; cp -r tests/mas-standin "$IMG"/
cp tests/mas-standin.toml "$IMG"/
git show 37b4699:images/proxy.toml > "$IMG/nginx.toml"
git show 37b4699:images/proxy.lock > "$IMG/nginx.lock"
export MASCTL_IMAGES="$IMG"
BENCH_CONFIG='[images]
mas = "mas-standin"
[mas]
enabled = true'
bench_defer "docker rm -f '$INST-nginx'"
bench_boot

# Baseline: main's nginx config (src/eval/proxy.rs before the edge) for the same stack.
NGINX=$("$M" -q --root "$WORK/root" image load nginx | awk '/^nginx /{print $2}')
cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path /tmp/body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    client_max_body_size 100m;
    resolver 127.0.0.11 valid=5s ipv6=off;
    proxy_set_header Host \$host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto \$scheme;
    proxy_http_version 1.1;
    server {
        listen 8080;
        set \$synapse http://$INST-synapse:8008;
        set \$mas http://$INST-mas:8080;
        set \$mas_compat http://$INST-mas:8082;
        location ~ ^/_matrix/client/[^/]+/(login|logout|refresh) {
            proxy_pass \$mas_compat;
        }
        location ^~ /auth/ {
            proxy_pass \$mas;
        }
        location / {
            proxy_pass \$synapse;
        }
    }
}
CONF
docker run -d --name "$INST-nginx" --network "$INST" --user 65534:65534 --read-only --cap-drop ALL \
    --security-opt no-new-privileges --tmpfs /tmp -p "127.0.0.1:$NPORT:8080" -v "$WORK/nginx:/etc/proxy:ro" \
    "$NGINX" -c /etc/proxy/nginx.conf >/dev/null
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$NPORT/_matrix/client/versions" >/dev/null && break; sleep 0.1; done

poll_both() {  # label, path, command...
    local label=$1 path=$2; shift 2
    rm -f "$WORK/stop"
    python3 bench/poll.py "http://127.0.0.1:$PORT$path" "$WORK/stop" 600 35 > "$WORK/caddy.out" &
    local p1=$!
    python3 bench/poll.py "http://127.0.0.1:$NPORT$path" "$WORK/stop" 600 35 > "$WORK/nginx.out" &
    local p2=$!
    sleep 1
    "$@" >/dev/null
    for _ in $(seq 1200); do curl -sf "http://127.0.0.1:$NPORT$path" >/dev/null && break; sleep 0.05; done
    sleep 1
    touch "$WORK/stop"; wait "$p1" "$p2"
    echo "$label, edge (Caddy): $(cat "$WORK/caddy.out")"
    echo "$label, nginx (main):  $(cat "$WORK/nginx.out")"
}

echo
echo "## failed requests during a switch (one GET at a time, every 50 ms; 35 s per request allowed)"
write_config '[synapse.extra]
max_upload_size = "20M"'
poll_both "Synapse-only switch, GET /_matrix/client/versions" /_matrix/client/versions "${IN[@]}" switch
write_config '[synapse.extra]
max_upload_size = "20M"
[mas.account]
password_change_allowed = false'
poll_both "MAS-only switch, GET /_matrix/client/v3/login     " /_matrix/client/v3/login "${IN[@]}" switch
