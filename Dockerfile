# syntax=docker/dockerfile:1
# Multi-stage build: a Rust builder, then a slim runtime with a non-root user (uid/gid 10001).
# Lint: `hadolint Dockerfile` (settings in .hadolint.yaml). Run: docker-compose.yml, deploy/README.md.
#
# Two images (build targets), the same gateway in both:
#   docker build --target coda .     the gateway with a real Coda MCP server as its child: PyPI
#                                    mcp-coda (pinned below), reading the caller's token from
#                                    CODA_API_TOKEN and Coda's API root from CODA_BASE_URL;
#                                    docker-compose.yml builds this one
#   docker build .                   (target `runtime`, the last stage) the gateway with
#                                    fake-mcp-server, a deterministic test server
# CI has no container engine: fixtures/tests/it/mcp_coda_child.rs runs the coda target's command line
# (the gateway, MCP_COMMAND=mcp-coda, CHILD_ENV) outside a container against mock-coda.

FROM rust:1-slim-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY gateway gateway
COPY harness harness
COPY mock-coda mock-coda
COPY fixtures fixtures
RUN cargo build --release --locked -p gateway -p fixtures --bin coda-mcp-gateway --bin fake-mcp-server

FROM debian:bookworm-slim AS base
# DL3008 (pin apt versions) is ignored in .hadolint.yaml: bookworm-security replaces these versions,
# so pins would break rebuilds; the base image tag is the pin.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin gateway
WORKDIR /app
COPY --from=builder /src/target/release/coda-mcp-gateway /usr/local/bin/coda-mcp-gateway
COPY --from=builder /src/target/release/fake-mcp-server /usr/local/bin/fake-mcp-server
ENV HOST=0.0.0.0 \
    PORT=8080 \
    LOG_FORMAT=json \
    MCP_COMMAND=/usr/local/bin/fake-mcp-server
# Numeric, so Kubernetes' runAsNonRoot and hosts without this user in /etc/passwd can check it.
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:8080/health"]
# tini forwards signals to the gateway and reaps orphans; the gateway ends its children's
# process groups itself on SIGTERM.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/coda-mcp-gateway"]

# mcp-coda in a virtual environment, built on the same Debian release as `base` so the venv's
# interpreter path (/usr/bin/python3) is the same in both.
FROM debian:bookworm-slim AS mcp-coda
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/mcp-coda \
    && /opt/mcp-coda/bin/pip install --no-cache-dir --disable-pip-version-check mcp-coda==0.12.3

FROM base AS coda
USER 0
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=mcp-coda /opt/mcp-coda /opt/mcp-coda
USER 10001:10001
# The gateway gives each child the caller's token in CODA_API_TOKEN (CHILD_TOKEN_ENV). Children
# start from a cleared environment, so Coda's API root reaches mcp-coda through CHILD_ENV; it is
# also set for the gateway itself for builds that still pass their environment on. HOME=/tmp: the
# root filesystem is read-only in docker-compose.yml.
# (the ignore: hadolint's DL3064 mistakes the variable's *name* in CHILD_TOKEN_ENV for a secret)
# hadolint ignore=DL3064
ENV MCP_COMMAND=/opt/mcp-coda/bin/mcp-coda \
    CHILD_TOKEN_ENV=CODA_API_TOKEN \
    CODA_BASE_URL=https://coda.io/apis/v1 \
    CHILD_ENV=CODA_BASE_URL=https://coda.io/apis/v1,HOME=/tmp

# The default target (last stage): the gateway in front of fake-mcp-server.
FROM base AS runtime
