#!/usr/bin/env bash
# Installs PyPI mcp-coda (pinned; the Dockerfile's `coda` target bundles the same version) into a
# virtual environment under target/, for fixtures/tests/it/mcp_coda_child.rs:
#   bash .ci/install-mcp-coda.sh        # prints the path of the mcp-coda program
# Idempotent: does nothing when the venv already holds this version. Needs python3 (3.10+) with
# venv and access to PyPI on the first run.
set -euo pipefail
cd "$(dirname "$0")/.."
MCP_CODA_VERSION=0.12.3
venv=target/mcp-coda-venv
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp-coda') != '$MCP_CODA_VERSION')" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "mcp-coda==$MCP_CODA_VERSION" >&2
fi
echo "$PWD/$venv/bin/mcp-coda"
