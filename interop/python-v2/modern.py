#!/usr/bin/env python3
"""Interop check: the official MCP Python SDK 2.x (`mcp` 2.3.0) against coda-mcp-gateway in the
2026-07-28 (stateless) era.

    python modern.py pin     # Client(..., mode="2026-07-28"): adopts the version, no probe
    python modern.py auto    # Client(..., mode="auto"): server/discover first, which must
                             # negotiate 2026-07-28 (not fall back to initialize)

Each run, as MCP_TOKEN's user: tools/list, echo, test_simple_text, resources/read, prompts/get,
progress, test_sampling (the child's sampling request comes back as an `input_required` result,
the SDK answers it with our sampling callback and retries: MRTR), credential_fingerprint. Every
request the SDK posts is recorded (httpx2 request hook) to prove the era on the wire: no
`initialize`, `_meta` protocolVersion 2026-07-28 on every request, the retry carrying
`inputResponses`, no Mcp-Session-Id.

Then two users at once (MCP_TOKEN and MCP_TOKEN_2, default mock-token-alice-0001 and
mock-token-bob-0002), each with their own client, calling credential_fingerprint concurrently a
few rounds: each must see their OWN token's fingerprint (the gateway's per-identity children).

Environment: MCP_URL (required), MCP_TOKEN, MCP_TOKEN_2, EXPECT_AUTH=1 (tokens are checked and
handed to the child: fingerprints must match the tokens; without it they are only printed).
Prints `ok <step>`; the first mismatch prints `FAIL <step>: <why>` and exits 1; other errors exit 2.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import traceback
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

MODERN = "2026-07-28"
VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
SIMPLE_TEXT = "This is a simple text response for testing."
STATIC_TEXT = "This is the content of the static text resource."
SIMPLE_PROMPT = "This is a simple prompt for testing."
ECHO_MESSAGE = "interop v2 modern: héllo ✓ \"quotes\" \\ back\nslash"
SAMPLING_ANSWER = "sampled-by-python-sdk-v2-modern"
CONCURRENT_ROUNDS = 3


class Mismatch(Exception):
    def __init__(self, step: str, why: str) -> None:
        super().__init__(f"{step}: {why}")
        self.step = step
        self.why = why


def ok(step: str) -> None:
    print(f"ok {step}", flush=True)


def expect(step: str, condition: bool, why: str) -> None:
    if not condition:
        raise Mismatch(step, why)


def only_text(step: str, result: Any) -> str:
    expect(step, not result.is_error, f"isError result: {result!r}")
    expect(step, len(result.content) == 1, f"expected 1 content block, got {len(result.content)}")
    block = result.content[0]
    expect(step, isinstance(block, types.TextContent), f"expected text content, got {block!r}")
    return block.text


def fingerprint_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


class Wire:
    """The JSON-RPC messages and headers the SDK posted, recorded by an httpx2 request hook."""

    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []
        self.session_headers = 0

    async def hook(self, request: httpx2.Request) -> None:
        if request.method != "POST":
            return
        if "mcp-session-id" in request.headers:
            self.session_headers += 1
        try:
            body = json.loads(request.content)
        except (ValueError, httpx2.RequestNotRead):
            return
        self.posted.extend(body if isinstance(body, list) else [body])

    def requests(self, method: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.posted if "id" in m and "method" in m and (method is None or m["method"] == method)]


def http_client(token: str, wire: Wire | None = None) -> httpx2.AsyncClient:
    hooks = {"request": [wire.hook]} if wire else {}
    return httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx2.Timeout(30.0, read=60.0),
        event_hooks=hooks,
    )


async def one_user(url: str, token: str, negotiation: str) -> None:
    mode = MODERN if negotiation == "pin" else "auto"
    wire = Wire()
    sampling_requests: list[Any] = []

    async def on_sampling(context: Any, params: Any) -> types.CreateMessageResult:
        sampling_requests.append(params)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=SAMPLING_ANSWER),
            model="interop-python-v2-modern-stub",
            stop_reason="endTurn",
        )

    async with http_client(token, wire) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode, sampling_callback=on_sampling, read_timeout_seconds=60) as client:
            step = f'connect mode="{mode}"'
            expect(step, client.protocol_version == MODERN, f"negotiated {client.protocol_version!r}, want {MODERN}")
            expect(step, client.session.initialize_result is None, "the SDK fell back to initialize")
            if negotiation == "pin":
                # A pin adopts the version without a probe (a synthesized discover result, which
                # session.discover() would return): send server/discover explicitly.
                discover = types.DiscoverResult.model_validate(await client.session.send_discover(MODERN))
            else:
                discover = client.session.discover_result
            expect(step, discover is not None, "no server/discover result")
            expect(step, MODERN in discover.supported_versions, f"server/discover offers {discover.supported_versions}")
            expect(step, discover.capabilities.tools is not None, "server/discover did not advertise tools")
            server = ((discover.meta or {}).get("io.modelcontextprotocol/serverInfo") or {}).get("name")
            ok(f"{step}: protocol {client.protocol_version}, discover offers {discover.supported_versions}, server {server}")

            names = {tool.name for tool in (await client.list_tools()).tools}
            missing = {"echo", "test_simple_text", "test_tool_with_progress", "test_sampling", "credential_fingerprint"} - names
            expect("tools/list", not missing, f"missing tools {sorted(missing)}")
            ok(f"tools/list ({len(names)} tools)")

            text = only_text("echo", await client.call_tool("echo", {"message": ECHO_MESSAGE}))
            expect("echo", text == ECHO_MESSAGE, f"expected {ECHO_MESSAGE!r}, got {text!r}")
            ok("tools/call echo")

            text = only_text("test_simple_text", await client.call_tool("test_simple_text", {}))
            expect("test_simple_text", text == SIMPLE_TEXT, f"got {text!r}")
            ok("tools/call test_simple_text")

            contents = (await client.read_resource("test://static-text")).contents
            expect(
                "resources/read",
                len(contents) == 1 and getattr(contents[0], "text", None) == STATIC_TEXT,
                f"got {contents!r}",
            )
            ok("resources/read test://static-text")

            prompt = await client.get_prompt("test_simple_prompt")
            expect(
                "prompts/get",
                len(prompt.messages) == 1
                and isinstance(prompt.messages[0].content, types.TextContent)
                and prompt.messages[0].content.text == SIMPLE_PROMPT,
                f"got {prompt.messages!r}",
            )
            ok("prompts/get test_simple_prompt")

            progress: list[tuple[float, float | None]] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                progress.append((value, total))

            result = await client.call_tool("test_tool_with_progress", {}, progress_callback=on_progress)
            expect("progress", not result.is_error, f"isError result: {result!r}")
            expect("progress", progress == [(0, 100), (50, 100), (100, 100)], f"saw {progress}")
            ok(f"tools/call test_tool_with_progress (progress {progress})")

            ask = f"Say hi from Python v2 ({negotiation})"
            text = only_text("test_sampling", await client.call_tool("test_sampling", {"prompt": ask}))
            expect("test_sampling", len(sampling_requests) == 1, f"{len(sampling_requests)} sampling requests, want 1")
            asked = sampling_requests[0].messages[0].content
            expect("test_sampling", getattr(asked, "text", None) == ask, f"sampling request carried {asked!r}")
            expect("test_sampling", text == f"LLM response: {SAMPLING_ANSWER}", f"got {text!r}")
            calls = [m for m in wire.requests("tools/call") if m["params"].get("name") == "test_sampling"]
            expect(
                "test_sampling",
                len(calls) == 2 and "inputResponses" not in calls[0]["params"] and "inputResponses" in calls[1]["params"],
                f"want 2 tools/call test_sampling POSTs, the retry with inputResponses (MRTR); saw {[m['params'] for m in calls]}",
            )
            ok("tools/call test_sampling (input_required answered by our sampling callback, call retried: MRTR)")

            fingerprint = only_text("credential_fingerprint", await client.call_tool("credential_fingerprint", {}))
            if os.environ.get("EXPECT_AUTH") == "1":
                want = fingerprint_of(token)
                expect("credential_fingerprint", fingerprint == want, f"child sees {fingerprint!r}, want {want!r}")
            ok(f"tools/call credential_fingerprint (child sees token fingerprint {fingerprint!r})")

    step = "modern era on the wire"
    expect(step, not wire.requests("initialize"), "the SDK sent initialize")
    unversioned = [m["method"] for m in wire.requests() if (m.get("params") or {}).get("_meta", {}).get(VERSION_KEY) != MODERN]
    expect(step, not unversioned, f"requests without _meta {VERSION_KEY}={MODERN}: {unversioned}")
    expect(step, wire.session_headers == 0, f"{wire.session_headers} POSTs carried Mcp-Session-Id")
    ok(f"{step} ({len(wire.requests())} requests, each with _meta protocolVersion {MODERN}; no initialize, no session)")


async def two_users(url: str, tokens: list[str], negotiation: str) -> None:
    """Each user's client calls credential_fingerprint CONCURRENT_ROUNDS times, all at once."""
    mode = MODERN if negotiation == "pin" else "auto"
    seen: dict[str, list[str]] = {token: [] for token in tokens}

    async def user(token: str) -> None:
        async with http_client(token) as http:
            async with Client(streamable_http_client(url, http_client=http), mode=mode, read_timeout_seconds=60) as client:
                expect("two users", client.protocol_version == MODERN, f"negotiated {client.protocol_version!r}")
                async with anyio.create_task_group() as calls:
                    for _ in range(CONCURRENT_ROUNDS):

                        async def call() -> None:
                            result = await client.call_tool("credential_fingerprint", {})
                            seen[token].append(only_text("two users", result))

                        calls.start_soon(call)

    with anyio.fail_after(90):
        async with anyio.create_task_group() as users:
            for token in tokens:
                users.start_soon(user, token)

    fingerprints = {fingerprint_of(token) for token in tokens}
    expect("two users", len(fingerprints) == len(tokens), "the two tokens have the same fingerprint")
    for index, token in enumerate(tokens, 1):
        got = seen[token]
        expect("two users", len(got) == CONCURRENT_ROUNDS, f"user {index}: {len(got)} answers")
        if os.environ.get("EXPECT_AUTH") == "1":
            want = fingerprint_of(token)
            expect("two users", set(got) == {want}, f"user {index} saw fingerprints {got}, want only its own {want!r}")
    ok(
        f"two users at once ({CONCURRENT_ROUNDS} concurrent credential_fingerprint calls each): "
        + ", ".join(f"user {i} saw {sorted(set(seen[t]))}" for i, t in enumerate(tokens, 1))
    )


def leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


async def main() -> int:
    negotiation = sys.argv[1] if len(sys.argv) == 2 else ""
    if negotiation not in ("pin", "auto"):
        print("FAIL setup: usage: modern.py pin|auto", file=sys.stderr)
        return 2
    url = os.environ.get("MCP_URL")
    if not url:
        print("FAIL setup: MCP_URL is not set", file=sys.stderr)
        return 2
    token = os.environ.get("MCP_TOKEN", "mock-token-alice-0001")
    other = os.environ.get("MCP_TOKEN_2", "mock-token-bob-0002")
    try:
        await one_user(url, token, negotiation)
        await two_users(url, [token, other], negotiation)
    except Exception as error:  # noqa: BLE001 - reported below, exception groups unwrapped
        for leaf in leaves(error):
            if isinstance(leaf, Mismatch):
                print(f"FAIL {leaf.step}: {leaf.why}", file=sys.stderr)
                return 1
        traceback.print_exception(error)
        print(f"FAIL: unexpected error: {'; '.join(repr(leaf) for leaf in leaves(error))}", file=sys.stderr)
        return 2
    print(f"PASS python-sdk-v2 modern ({negotiation})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
