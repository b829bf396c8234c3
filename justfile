# Recipes mirror the README. `just --list` shows them.

# The README's first command: the gateway on 127.0.0.1:8080 with the mock of Coda and fake-mcp-server.
demo:
    cargo run -p fixtures --bin coda-mcp-demo

# The README's second command: every test of the workspace.
test:
    cargo test --workspace

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Real clients (Python SDK 1.x and 2.x, TypeScript SDK, MCP Inspector CLI) through the gateway, with bearer auth checked by mock-coda.
interop:
    bash interop/run.sh

# The official MCP conformance suite against the gateway (auth on, through mcp-harness's token proxy) in front of fake-mcp-server.
conformance:
    bash conformance/run.sh

# The harness scenario library against MCP servers we did not write (supergateway + fake-mcp-server, server-everything; the Python mcp SDK for 2026-07-28); findings in thirdparty/RESULTS.md.
thirdparty:
    bash thirdparty/run.sh

# deploy/README.md's marked shell blocks against a local gateway (mock-coda + fake-mcp-server).
check-docs:
    bash deploy/check-docs.sh

# Side-by-side benchmark: stdio floor, the gateway (both child scopes, both eras), supergateway and mcp-proxy (pinned in bench/), then the scale curves; tables in bench/results/bench.md, plots bench/results/*.svg. See BENCHMARKS.md.
bench:
    bash bench/run.sh

# Every coverage-guided fuzz target in fuzz/ (cargo-fuzz, nightly) for SECS seconds each, from the committed seeds.
fuzz secs="60":
    bash fuzz/run.sh {{secs}}

# mcp-harness fuzz against a local gateway (mock-coda + fake-mcp-server) for SECS seconds.
fuzz-wire secs="60":
    HARNESS_FUZZ_SECS={{secs}} cargo test -p fixtures --test it harness_fuzz:: -- --nocapture

# Everything CI runs.
ci:
    bash .ci/run
