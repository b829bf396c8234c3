#!/usr/bin/env bash
# Interop: four independent MCP clients against coda-mcp-gateway in front of fake-mcp-server.
#
#   bash interop/run.sh                 # all four clients
#   INTEROP_ONLY=python,python-v2,typescript,inspector bash interop/run.sh   # a subset
#   INTEROP_AUTH=none bash interop/run.sh   # gateway with AUTH_MODE=none, no mock-coda
#
# 1. builds coda-mcp-gateway and fake-mcp-server (SKIP_BUILD=1 reuses existing binaries);
# 2. makes interop/.venv and interop/.venv-v2 from python/ and python-v2/requirements.lock
#    and runs `npm ci` in typescript/ and inspector/, each only when missing or out of date;
# 3. starts mock-coda and the gateway (AUTH_MODE=coda against mock-coda) on 127.0.0.1,
#    port 0 each, reading their first stdout lines (no sleeps);
# 4. runs four clients, each under `timeout 120`: the official Python SDK 1.x (python/),
#    the official Python SDK 2.x (python-v2/, mode="auto" falls back from server/discover to
#    initialize), the official TypeScript SDK (typescript/) and the MCP Inspector CLI
#    (inspector/); then stops the gateway;
# 5. prints a PASS/FAIL summary; exits 1 if any client failed.
#
# Needs: cargo, python3 (3.10+) with venv, node + npm (any Node >= 18 for the TypeScript SDK;
# the inspector brings its own Node 22 from npm), network access to PyPI and npm on first run.
# Every client sends `Authorization: Bearer $MCP_TOKEN` (default mock-token-alice-0001, a
# token of mock-coda's default table); the child must see that token (credential_fingerprint),
# and the inspector also checks that no token / a wrong token is refused (exit 3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=interop/lib.sh
source "$here/lib.sh"
trap cleanup EXIT

export MCP_TOKEN="${MCP_TOKEN:-mock-token-alice-0001}"
only="${INTEROP_ONLY:-python,python-v2,typescript,inspector}"
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
wants python-v2 && venv_ready "$here/.venv-v2" "$here/python-v2/requirements.lock"
wants typescript && npm_ready "$here/typescript"
wants inspector && npm_ready "$here/inspector"

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

stop_gateway

failed=0
echo
echo "interop summary (gateway $GATEWAY_URL, auth ${INTEROP_AUTH:-coda}):"
for name in python-sdk python-sdk-v2 typescript-sdk inspector-cli; do
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
