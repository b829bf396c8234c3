#!/usr/bin/env bash
# Interop: independent MCP clients against coda-mcp-gateway in front of fake-mcp-server, in
# both eras (2025: initialize + session; 2026-07-28: stateless, server/discover, _meta).
#
#   bash interop/run.sh                 # every client
#   INTEROP_ONLY=python,python-v2,python-v2-modern,typescript,typescript-v2,inspector,inspector-modern \
#       bash interop/run.sh             # a subset (these are all the names)
#   INTEROP_AUTH=none bash interop/run.sh   # gateway with AUTH_MODE=none, no mock-coda
#
# 1. builds coda-mcp-gateway and fake-mcp-server (SKIP_BUILD=1 reuses existing binaries);
# 2. makes interop/.venv and interop/.venv-v2 from python/ and python-v2/requirements.lock
#    and runs `npm ci` in typescript/, typescript-v2/ and inspector/, each only when missing or
#    out of date;
# 3. starts mock-coda and the gateway (AUTH_MODE=coda against mock-coda) on 127.0.0.1,
#    port 0 each, reading their first stdout lines (no sleeps);
# 4. runs the clients, each under `timeout 120`, then stops the gateway:
#    2025 era (unchanged): the official Python SDK 1.x (python/client.py), the Python SDK 2.x
#      with mode="legacy" (python-v2/client.py), the TypeScript SDK 1.x (typescript/) and the
#      MCP Inspector CLI (inspector/check.sh);
#    2026-07-28 era: the Python SDK 2.x pinned (mode="2026-07-28") and mode="auto", which must
#      negotiate 2026-07-28 (python-v2/modern.py, each also with a sampling callback answered
#      through MRTR and two users at once), the TypeScript client 2.4 pinned
#      (`versionNegotiation: {mode: {pin: "2026-07-28"}}`) and `mode: "auto"` (typescript-v2/),
#      and the Inspector CLI with `--protocol-era modern` (inspector/check.sh modern);
# 5. prints a PASS/FAIL summary; exits 1 if any client failed.
#
# Needs: cargo, python3 (3.10+) with venv, node + npm (any Node >= 20 for the TypeScript SDKs;
# the inspector brings its own Node 22 from npm), network access to PyPI and npm on first run.
# Every client sends `Authorization: Bearer $MCP_TOKEN` (default mock-token-alice-0001, a
# token of mock-coda's default table); the child must see that token (credential_fingerprint),
# and the inspector also checks that no token / a wrong token is refused (exit 3). The Python
# modern run's second user sends $MCP_TOKEN_2 (default mock-token-bob-0002) at the same time and
# must see its own token's fingerprint.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=interop/lib.sh
source "$here/lib.sh"
trap cleanup EXIT

export MCP_TOKEN="${MCP_TOKEN:-mock-token-alice-0001}"
export MCP_TOKEN_2="${MCP_TOKEN_2:-mock-token-bob-0002}"
only="${INTEROP_ONLY:-python,python-v2,python-v2-modern,typescript,typescript-v2,inspector,inspector-modern}"
wants() { [[ ",$only," == *",$1,"* ]]; }

workdir="$(mktemp -d "${TMPDIR:-/tmp}/coda-interop.XXXXXX")"
log "logs under $workdir"

build_binaries

# venv_ready DIR LOCK: a venv at DIR installed from LOCK, rebuilt only when LOCK changed.
venv_ready() {
    local venv="$1" lock="$2" stamp want
    stamp="$venv/.interop-lock.sha256"
    want="$(sha256sum "$lock" | cut -d' ' -f1)"
    if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return
    fi
    log "creating ${venv#"$repo_root"/} from ${lock#"$repo_root"/}"
    rm -rf "$venv"
    "${PYTHON:-python3}" -m venv "$venv"
    timeout 600 "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$lock"
    echo "$want" >"$stamp"
}
wants python && venv_ready "$here/.venv" "$here/python/requirements.lock"
if wants python-v2 || wants python-v2-modern; then
    venv_ready "$here/.venv-v2" "$here/python-v2/requirements.lock"
fi
wants typescript && npm_ready "$here/typescript"
wants typescript-v2 && npm_ready "$here/typescript-v2"
if wants inspector || wants inspector-modern; then
    npm_ready "$here/inspector"
fi

case "${INTEROP_AUTH:-coda}" in
coda)
    # Real bearer auth: the gateway checks each caller's token with mock-coda's whoami and
    # hands it to that caller's child, whose credential_fingerprint must then match it.
    start_mock_coda "$workdir"
    start_gateway "$workdir" AUTH_MODE=coda CODA_API_BASE_URL="$MOCK_CODA_URL" \
        CODA_API_TOKEN=mock-token-operator-0003
    EXPECT_FINGERPRINT="$(printf '%s' "$MCP_TOKEN" | sha256sum | cut -c1-12)"
    export EXPECT_FINGERPRINT EXPECT_AUTH=1
    ;;
none) start_gateway "$workdir" AUTH_MODE=none ;;
*)
    echo "FAIL: INTEROP_AUTH must be coda or none, got ${INTEROP_AUTH}" >&2
    exit 2
    ;;
esac
export MCP_URL="$GATEWAY_URL"

declare -A result
run_client() {
    local name="$1" rc=0
    shift
    log "--- $name"
    timeout 120 "$@" >"$workdir/$name.log" 2>&1 || rc=$?
    sed "s/^/  [$name] /" "$workdir/$name.log"
    if [ "$rc" = 0 ]; then
        result[$name]=PASS
    elif [ "$rc" = 124 ]; then
        result[$name]="FAIL (timed out after 120 s)"
    else
        result[$name]="FAIL (exit $rc): $(grep -m1 '^FAIL' "$workdir/$name.log" || tail -n 1 "$workdir/$name.log")"
    fi
}

wants python && run_client python-sdk "$here/.venv/bin/python" "$here/python/client.py"
wants python-v2 && run_client python-sdk-v2 "$here/.venv-v2/bin/python" "$here/python-v2/client.py"
wants typescript && run_client typescript-sdk node "$here/typescript/client.mjs"
wants inspector && run_client inspector-cli bash "$here/inspector/check.sh"
# The 2026-07-28 era.
if wants python-v2-modern; then
    run_client python-sdk-v2-modern-pin "$here/.venv-v2/bin/python" "$here/python-v2/modern.py" pin
    run_client python-sdk-v2-modern-auto "$here/.venv-v2/bin/python" "$here/python-v2/modern.py" auto
fi
if wants typescript-v2; then
    run_client typescript-client-v2-pin node "$here/typescript-v2/client.mjs" pin
    run_client typescript-client-v2-auto node "$here/typescript-v2/client.mjs" auto
fi
wants inspector-modern && run_client inspector-cli-modern bash "$here/inspector/check.sh" modern

stop_gateway

failed=0
echo
echo "interop summary (gateway $GATEWAY_URL, auth ${INTEROP_AUTH:-coda}):"
for name in python-sdk python-sdk-v2 typescript-sdk inspector-cli \
    python-sdk-v2-modern-pin python-sdk-v2-modern-auto typescript-client-v2-pin \
    typescript-client-v2-auto inspector-cli-modern; do
    [ -n "${result[$name]:-}" ] || continue
    echo "  $name: ${result[$name]}"
    [ "${result[$name]}" = PASS ] || failed=1
done
if [ "$failed" = 0 ]; then
    echo "interop: PASS"
    rm -rf "$workdir"
else
    echo "interop: FAIL (logs kept in $workdir; gateway log: $workdir/gateway.log)"
fi
exit "$failed"
