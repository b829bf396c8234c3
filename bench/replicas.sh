#!/usr/bin/env bash
# BENCHMARKS.md "Replicas": `mcp-harness load` through nginx in front of one replica, then in
# front of two (round-robin, so about half the calls are forwarded between replicas). Loopback
# only; every run bounded by --requests and --timeout-secs. Needs redis-server and nginx.
#
#   bash bench/replicas.sh            # BIN=target/debug by default; BIN=target/release for release builds
#   BENCH_REQUESTS=2000 BENCH_CONCURRENCY=8 BENCH_SESSIONS=8 bash bench/replicas.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-target/debug}"
REQUESTS="${BENCH_REQUESTS:-2000}"
CONCURRENCY="${BENCH_CONCURRENCY:-8}"
SESSIONS="${BENCH_SESSIONS:-8}"
WORK="$(mktemp -d /tmp/bench-replicas.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on $1" >&2; return 1
}

REDIS_PORT="$(free_port)"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$WORK" >/dev/null &
PIDS+=($!)
wait_port "$REDIS_PORT"

replica() { # port
  env -i PATH="$PATH" HOST=127.0.0.1 PORT="$1" AUTH_MODE=none RUST_LOG=warn \
    MCP_COMMAND="$(realpath "$BIN/fake-mcp-server")" \
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" REPLICA_URL="http://127.0.0.1:$1" \
    REPLICA_SECRET=bench-replica-secret-0123456789abcdef \
    IDENTITY_RATE_LIMIT_PER_MIN=1000000 AUTH_RATE_LIMIT_PER_MIN=1000000 \
    "$BIN/coda-mcp-gateway" >"$WORK/replica-$1.log" 2>&1 &
  PIDS+=($!)
  wait_port "$1"
}

nginx_front() { # name servers... (sets FRONT to its port; no subshell, so PIDS and the trap stay ours)
  local name="$1"; shift
  local dir="$WORK/nginx-$name" port servers=""
  port="$(free_port)"
  mkdir -p "$dir/logs"
  for server in "$@"; do servers+="server 127.0.0.1:$server max_fails=0; "; done
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy; fastcgi_temp_path $dir/f;
  uwsgi_temp_path $dir/u; scgi_temp_path $dir/s;
  upstream replicas { $servers keepalive 64; keepalive_timeout 5s; }
  server {
    listen 127.0.0.1:$port;
    proxy_http_version 1.1; proxy_set_header Connection "";
    location / { proxy_pass http://replicas; proxy_buffering off; }
  }
}
CONF
  /usr/sbin/nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" \
    -g "daemon off; pid $dir/nginx.pid; error_log $dir/logs/error.log warn;" &
  PIDS+=($!)
  wait_port "$port"
  FRONT="$port"
}

ONE="$(free_port)"; replica "$ONE"
TWO="$(free_port)"; replica "$TWO"

run() { # label port
  "$BIN/mcp-harness" load --target "http://127.0.0.1:$2/mcp" --concurrency "$CONCURRENCY" \
    --sessions "$SESSIONS" --requests "$REQUESTS" --warmup 200 --timeout-secs 120 \
    --json "$WORK/$1.json" >/dev/null
  python3 - "$1" "$WORK/$1.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
def find(d, *names):
    for n in names:
        if n in d: return d[n]
    return None
lat = r.get("latency_us") or r.get("latency") or {}
print(sys.argv[1], json.dumps({k: r[k] for k in r if k in ("throughput_rps", "ok", "errors")}), json.dumps(lat))
PY
}

nginx_front single "$ONE"; SINGLE="$FRONT"
nginx_front pair "$ONE" "$TWO"; PAIR="$FRONT"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (before)"
for rep in 1 2 3; do
  run "one-replica-$rep" "$SINGLE"
  run "two-replicas-$rep" "$PAIR"
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (after)"
