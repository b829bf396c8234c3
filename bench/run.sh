#!/usr/bin/env bash
# `just bench`: stdio floor, coda-mcp-gateway (both eras: legacy sessions in session and shared
# scope, 2026-07-28 sessionless calls through the per-identity pool), supergateway (stateful,
# pinned in bench/package.json + package-lock.json) and PyPI mcp-proxy (stateful Streamable HTTP,
# pinned in bench/requirements.lock), side by side on 127.0.0.1; then the scale curves (1/100/1000
# legacy sessions, 1/10/100 modern identities against mock-coda) and their plots.
#
#   bash bench/run.sh                       # build, install the peers, run, print the table
#   SKIP_BUILD=1 bash bench/run.sh          # reuse target/release binaries
#   BENCH_REQUESTS=20000 BENCH_REPS=5 bash bench/run.sh
#   BENCH_PARTS=peers,scale bash bench/run.sh
#
# Results: bench/results/bench.md (the tables), bench/results/bench.json (every figure, every
# rep) and bench/results/*.svg (the plots). Needs cargo, python3 (3.10+, with venv; the driver
# uses the standard library only), node + npm (first run reaches npm and PyPI).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cd "$root"
if [[ -z "${SKIP_BUILD:-}" ]]; then
  cargo build --release -p gateway -p fixtures -p harness -p mock-coda --bins
fi
if [[ ! -x "$here/node_modules/.bin/supergateway" ]] || [[ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
# The mcp-proxy venv, rebuilt only when the lock changed.
venv="$here/.venv" lock="$here/requirements.lock"
want="$(sha256sum "$lock" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/mcp-proxy" ]] || [[ "$(cat "$venv/.bench-lock.sha256" 2>/dev/null)" != "$want" ]]; then
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
  timeout 600 "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$lock"
  echo "$want" >"$venv/.bench-lock.sha256"
fi
exec python3 "$here/bench.py"
