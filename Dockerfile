# syntax=docker/dockerfile:1
# Multi-stage build: a Rust builder, then a slim runtime with a non-root user (uid/gid 10001).
# Lint: `hadolint Dockerfile` (settings in .hadolint.yaml). Run: docker-compose.yml, deploy/README.md.
#
# The image's default child is fake-mcp-server (a deterministic test server). To ship a real Coda
# MCP server next to the gateway (deploy/README.md, "A real Coda MCP server in the image"):
#
#   1. add a stage that installs it with Node 22, before the runtime stage, e.g. the npm package
#      coda-mcp (it reads its Coda token from API_KEY; pin the version you reviewed):
#        FROM node:22-bookworm-slim AS coda-mcp
#        WORKDIR /build
#        RUN npm install --omit=dev --no-audit --no-fund coda-mcp@1.1.3 \
#            && mv node_modules/coda-mcp /opt/coda-mcp \
#            && mv node_modules /opt/coda-mcp/node_modules
#   2. in the runtime stage, copy node and the server (same Debian release, so node's libraries match):
#        COPY --from=coda-mcp /usr/local/bin/node /usr/local/bin/node
#        COPY --from=coda-mcp /opt/coda-mcp /opt/coda-mcp
#   3. point the gateway at it, and name the variable that server reads its caller's token from
#      (the ignore: hadolint's DL3064 mistakes the variable's *name* for a secret):
#        # hadolint ignore=DL3064
#        ENV MCP_COMMAND="node /opt/coda-mcp/dist/index.js" \
#            CHILD_TOKEN_ENV=API_KEY

FROM rust:1-slim-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY gateway gateway
COPY harness harness
COPY mock-coda mock-coda
COPY fixtures fixtures
RUN cargo build --release --locked -p gateway -p fixtures --bin coda-mcp-gateway --bin fake-mcp-server

FROM debian:bookworm-slim AS runtime
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
