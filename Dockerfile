# syntax=docker/dockerfile:1
# Multi-stage build: a Rust builder, then a slim runtime with a non-root user.
# To ship a real Coda MCP server next to the gateway, add a stage that installs it
# (for example `FROM node:22-slim AS coda-mcp` + `npm install -g <coda mcp server>`) and copy it
# into the runtime stage, then set MCP_COMMAND to its command line.

FROM rust:1-slim-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY gateway gateway
COPY harness harness
COPY mock-coda mock-coda
COPY fixtures fixtures
RUN cargo build --release --locked -p gateway -p fixtures --bin coda-mcp-gateway --bin fake-mcp-server

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin gateway
WORKDIR /app
COPY --from=builder /src/target/release/coda-mcp-gateway /usr/local/bin/coda-mcp-gateway
COPY --from=builder /src/target/release/fake-mcp-server /usr/local/bin/fake-mcp-server
ENV HOST=0.0.0.0 \
    PORT=8080 \
    LOG_FORMAT=json \
    MCP_COMMAND=/usr/local/bin/fake-mcp-server
USER gateway
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:8080/health"]
# tini forwards signals to the gateway and reaps orphans; the gateway ends its children's
# process groups itself on SIGTERM.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/coda-mcp-gateway"]
