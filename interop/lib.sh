# shellcheck shell=bash
# Shared helpers for interop/run.sh and conformance/run.sh (sourced, not run).
#
# Everything stays on 127.0.0.1; every process started here is recorded and killed by
# `cleanup` (the callers install it as their EXIT trap).

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
gateway_bin="$target_dir/debug/coda-mcp-gateway"
fake_bin="$target_dir/debug/fake-mcp-server"
mock_coda_bin="$target_dir/debug/mock-coda"
started_pids=()

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

cleanup() {
    local pid
    for pid in "${started_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${started_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}

# Builds the gateway, the fixture and mock-coda (SKIP_BUILD=1 skips it when the binaries exist).
build_binaries() {
    if [ "${SKIP_BUILD:-0}" = 1 ] && [ -x "$gateway_bin" ] && [ -x "$fake_bin" ] && [ -x "$mock_coda_bin" ]; then
        log "SKIP_BUILD=1: using the binaries in $target_dir/debug as they are"
        return
    fi
    log "cargo build -p gateway -p fixtures -p mock-coda --bins"
    if ! (cd "$repo_root" && cargo build --quiet -p gateway -p fixtures -p mock-coda --bins); then
        echo "FAIL: cargo build -p gateway -p fixtures -p mock-coda --bins failed" >&2
        return 1
    fi
}

# first_line LOGDIR NAME VARIABLE COMMAND...: starts COMMAND in the background with stdout on
# a FIFO and stderr in LOGDIR/NAME.log, stores its first stdout line in VARIABLE and its pid
# in ${VARIABLE}_PID. Blocks on that line (bounded by a 30 s read timeout), never sleeps.
first_line() {
    local _fl_logdir="$1" _fl_name="$2" _fl_var="$3" _fl_fifo _fl_line _fl_fd _fl_pid
    shift 3
    _fl_fifo="$_fl_logdir/$_fl_name.stdout"
    rm -f "$_fl_fifo"
    mkfifo "$_fl_fifo"
    "$@" >"$_fl_fifo" 2>"$_fl_logdir/$_fl_name.log" &
    _fl_pid=$!
    started_pids+=("$_fl_pid")
    exec {_fl_fd}<"$_fl_fifo"
    if ! IFS= read -r -t 30 -u "$_fl_fd" _fl_line; then
        exec {_fl_fd}<&-
        log "$_fl_name printed no first line within 30 s; its log:"
        tail -n 50 "$_fl_logdir/$_fl_name.log" >&2 || true
        return 1
    fi
    # Keep draining stdout so a later write can never block the process.
    cat <&"$_fl_fd" >>"$_fl_logdir/$_fl_name.stdout.log" &
    started_pids+=("$!")
    exec {_fl_fd}<&-
    printf -v "$_fl_var" '%s' "$_fl_line"
    printf -v "${_fl_var}_PID" '%s' "$_fl_pid"
}

# start_mock_coda LOGDIR: starts mock-coda on 127.0.0.1 port 0 (its default token table) and
# sets MOCK_CODA_URL to its API base URL.
start_mock_coda() {
    first_line "$1" mock-coda MOCK_CODA_URL "$mock_coda_bin" --host 127.0.0.1 --port 0
    case "$MOCK_CODA_URL" in
    http://127.0.0.1:*) log "mock-coda pid $MOCK_CODA_URL_PID at $MOCK_CODA_URL" ;;
    *)
        log "unexpected first stdout line from mock-coda: $MOCK_CODA_URL"
        return 1
        ;;
    esac
}

# npm_ready DIR: `npm ci` in DIR unless node_modules matches package-lock.json already.
npm_ready() {
    local dir="$1" stamp want
    stamp="$dir/node_modules/.interop-lock.sha256"
    want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return
    fi
    log "npm ci in ${dir#"$repo_root"/}"
    (cd "$dir" && timeout 600 npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$want" >"$stamp"
}

# start_gateway LOGDIR [ENV=VALUE...]: starts the gateway on 127.0.0.1 port 0 in front of
# fake-mcp-server, with these extra settings, and sets GATEWAY_URL and GATEWAY_PID from its
# first stdout line. stderr goes to LOGDIR/gateway.log.
start_gateway() {
    local logdir="$1" _gw_line="" _gw_line_PID=""
    shift
    # OAuth sign-in is on by default with AUTH_MODE=coda: its database and generated key go to
    # LOGDIR, never the caller's working directory (callers may override OAUTH_DB_PATH).
    first_line "$logdir" gateway _gw_line \
        env HOST=127.0.0.1 PORT=0 MCP_COMMAND="$fake_bin" OAUTH_DB_PATH="$logdir/oauth.sqlite3" \
        "$@" "$gateway_bin"
    GATEWAY_PID="$_gw_line_PID"
    case "$_gw_line" in
    "coda-mcp-gateway listening on http://127.0.0.1:"*/mcp) GATEWAY_URL="${_gw_line##* }" ;;
    *)
        log "unexpected first stdout line from the gateway: $_gw_line"
        return 1
        ;;
    esac
    log "gateway pid $GATEWAY_PID at $GATEWAY_URL (log: $logdir/gateway.log)"
}

# stop_gateway: SIGTERM, up to 15 s for a clean drain, then SIGKILL.
stop_gateway() {
    local pid="${GATEWAY_PID:-}"
    [ -n "$pid" ] || return 0
    GATEWAY_PID=""
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "gateway pid $pid ignored SIGTERM for 15 s: SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
