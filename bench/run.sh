#!/usr/bin/env bash
# `just bench`: stdio floor, coda-mcp-gateway (session and shared scope) and supergateway
# (stateful, pinned in bench/package.json + package-lock.json), side by side on 127.0.0.1.
#
#   bash bench/run.sh                       # build, install the peer, run, print the table
#   SKIP_BUILD=1 bash bench/run.sh          # reuse target/release binaries
#   BENCH_REQUESTS=20000 BENCH_REPS=5 bash bench/run.sh
#
# Results: bench/results/bench.md (the table) and bench/results/bench.json (every figure, every
# rep). Needs cargo, python3 (standard library only), node + npm (first run reaches npm).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cd "$root"
if [[ -z "${SKIP_BUILD:-}" ]]; then
  cargo build --release -p gateway -p fixtures -p harness --bins
fi
if [[ ! -x "$here/node_modules/.bin/supergateway" ]] || [[ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
exec python3 "$here/bench.py"
