#!/usr/bin/env python3
"""Interop check: the official MCP Python SDK client against coda-mcp-gateway.

Environment:
  MCP_URL    the gateway endpoint, e.g. http://127.0.0.1:PORT/mcp (required)
  MCP_TOKEN  bearer token sent on every request (default: mock-token-alice-0001)
  EXPECT_FINGERPRINT  if set, `credential_fingerprint` must return it (the first 12 hex
             digits of SHA-256 of MCP_TOKEN when the gateway hands each caller's token to its child)

The upstream behind the gateway must be `fake-mcp-server` (the fixture contract of
the official conformance suite plus `echo`). Every step prints `ok <step>`; the first
mismatch prints `FAIL <step>: <why>` on stderr and exits 1. Any other error exits 2.

Steps: initialize, tools/list, echo, test_simple_text, resources/read test://static-text,
prompts/get test_simple_prompt, test_tool_with_progress (progress seen),
test_sampling (answered by our sampling callback), DELETE on close; then a
reconnect-after-404 check: the session is deleted behind the SDK's back, the next call
on it must fail as "Session terminated" (the SDK's mapping of HTTP 404), and a fresh
session must work.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio
import httpx
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import McpError

EXPECTED_TOOLS = {
    "echo",
    "test_simple_text",
    "test_tool_with_progress",
    "test_sampling",
    "test_image_content",
    "test_error_handling",
}
SIMPLE_TEXT = "This is a simple text response for testing."
STATIC_TEXT = "This is the content of the static text resource."
SIMPLE_PROMPT = "This is a simple prompt for testing."
ECHO_MESSAGE = "interop: héllo ✓ \"quotes\" \\ back\nslash"
SAMPLING_ANSWER = "sampled-by-python-sdk"
TIMEOUT = httpx.Timeout(30.0, read=60.0)


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


def only_text(step: str, result: types.CallToolResult) -> str:
    expect(step, not result.isError, f"isError result: {result.model_dump(mode='json')}")
    expect(step, len(result.content) == 1, f"expected 1 content block, got {len(result.content)}")
    block = result.content[0]
    expect(step, isinstance(block, types.TextContent), f"expected text content, got {block!r}")
    return block.text  # type: ignore[union-attr]


sampling_requests: list[types.CreateMessageRequestParams] = []


async def on_sampling(
    context: Any, params: types.CreateMessageRequestParams
) -> types.CreateMessageResult:
    sampling_requests.append(params)
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=SAMPLING_ANSWER),
        model="interop-python-stub",
        stopReason="endTurn",
    )


def http_client(token: str) -> httpx.AsyncClient:
    return create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)


async def main_sequence(url: str, token: str) -> None:
    async with http_client(token) as client:
        async with streamable_http_client(url, http_client=client) as (read, write, session_id):
            async with ClientSession(read, write, sampling_callback=on_sampling) as session:
                init = await session.initialize()
                expect("initialize", bool(init.serverInfo.name), "empty serverInfo.name")
                expect(
                    "initialize",
                    init.capabilities.tools is not None,
                    "server did not advertise tools",
                )
                expect("initialize", session_id() is not None, "no Mcp-Session-Id issued")
                ok(
                    f"initialize (protocol {init.protocolVersion}, server {init.serverInfo.name}, "
                    f"session {session_id()})"
                )

                tools = await session.list_tools()
                names = {tool.name for tool in tools.tools}
                missing = EXPECTED_TOOLS - names
                expect("tools/list", not missing, f"missing tools {sorted(missing)}; got {sorted(names)}")
                ok(f"tools/list ({len(names)} tools)")

                text = only_text("echo", await session.call_tool("echo", {"message": ECHO_MESSAGE}))
                expect("echo", text == ECHO_MESSAGE, f"expected {ECHO_MESSAGE!r}, got {text!r}")
                ok("tools/call echo")

                text = only_text("test_simple_text", await session.call_tool("test_simple_text", {}))
                expect("test_simple_text", text == SIMPLE_TEXT, f"expected {SIMPLE_TEXT!r}, got {text!r}")
                ok("tools/call test_simple_text")

                resource = await session.read_resource("test://static-text")  # type: ignore[arg-type]
                expect("resources/read", len(resource.contents) == 1, f"got {len(resource.contents)} contents")
                contents = resource.contents[0]
                expect(
                    "resources/read",
                    isinstance(contents, types.TextResourceContents),
                    f"expected text contents, got {contents!r}",
                )
                expect(
                    "resources/read",
                    contents.text == STATIC_TEXT,  # type: ignore[union-attr]
                    f"expected {STATIC_TEXT!r}, got {getattr(contents, 'text', None)!r}",
                )
                expect("resources/read", contents.mimeType == "text/plain", f"mimeType {contents.mimeType!r}")
                ok("resources/read test://static-text")

                prompt = await session.get_prompt("test_simple_prompt")
                expect("prompts/get", len(prompt.messages) == 1, f"got {len(prompt.messages)} messages")
                message = prompt.messages[0]
                expect("prompts/get", message.role == "user", f"role {message.role!r}")
                expect(
                    "prompts/get",
                    isinstance(message.content, types.TextContent) and message.content.text == SIMPLE_PROMPT,
                    f"expected text {SIMPLE_PROMPT!r}, got {message.content!r}",
                )
                ok("prompts/get test_simple_prompt")

                progress: list[tuple[float, float | None]] = []

                async def on_progress(value: float, total: float | None, message: str | None) -> None:
                    progress.append((value, total))

                result = await session.call_tool("test_tool_with_progress", {}, progress_callback=on_progress)
                expect("progress", not result.isError, f"isError result: {result.model_dump(mode='json')}")
                expect(
                    "progress",
                    progress == [(0, 100), (50, 100), (100, 100)],
                    f"expected progress 0/100, 50/100, 100/100 before the result, saw {progress}",
                )
                ok(f"tools/call test_tool_with_progress (progress {progress})")

                sampling_requests.clear()
                text = only_text(
                    "test_sampling",
                    await session.call_tool("test_sampling", {"prompt": "Say hi from Python"}),
                )
                expect("test_sampling", len(sampling_requests) == 1, f"{len(sampling_requests)} sampling requests")
                asked = sampling_requests[0].messages[0].content
                expect(
                    "test_sampling",
                    isinstance(asked, types.TextContent) and asked.text == "Say hi from Python",
                    f"sampling request carried {asked!r}",
                )
                expected = f"LLM response: {SAMPLING_ANSWER}"
                expect("test_sampling", text == expected, f"expected {expected!r}, got {text!r}")
                ok("tools/call test_sampling (sampling/createMessage answered)")

                fingerprint = only_text(
                    "credential_fingerprint", await session.call_tool("credential_fingerprint", {})
                )
                want = os.environ.get("EXPECT_FINGERPRINT")
                if want:
                    expect(
                        "credential_fingerprint",
                        fingerprint == want,
                        f"the child sees token fingerprint {fingerprint!r}, want {want!r} (the caller's token)",
                    )
                ok(f"tools/call credential_fingerprint (child sees token fingerprint {fingerprint!r})")
        # Leaving streamable_http_client sends DELETE with the session id.
        ok("close (DELETE sent by the SDK)")


async def reconnect_after_404(url: str, token: str) -> None:
    step = "reconnect-after-404"
    async with http_client(token) as client:
        async with streamable_http_client(url, http_client=client, terminate_on_close=False) as (
            read,
            write,
            session_id,
        ):
            async with ClientSession(read, write) as session:
                await session.initialize()
                sid = session_id()
                expect(step, sid is not None, "no session id")
                # End the session behind the SDK's back, as an idle TTL or a restart would.
                response = await client.delete(url, headers={"Mcp-Session-Id": sid})  # type: ignore[dict-item]
                expect(step, response.status_code in (200, 202, 204), f"DELETE gave HTTP {response.status_code}")
                # A request on a terminated session gets 404 (spec); the SDK maps that to an
                # McpError "Session terminated" for the pending request.
                probe = await client.post(
                    url,
                    headers={
                        "Mcp-Session-Id": sid,  # type: ignore[dict-item]
                        "Accept": "application/json, text/event-stream",
                        "Content-Type": "application/json",
                        "MCP-Protocol-Version": "2025-11-25",
                    },
                    json={"jsonrpc": "2.0", "id": 99, "method": "ping"},
                )
                expect(step, probe.status_code == 404, f"POST on a deleted session gave HTTP {probe.status_code}, want 404")
                try:
                    await session.call_tool("echo", {"message": "after delete"})
                except McpError as error:
                    expect(
                        step,
                        "Session terminated" in error.error.message,
                        f"unexpected error on the dead session: {error.error.message!r}",
                    )
                else:
                    raise Mismatch(step, "a call on a deleted session succeeded")
    # The client's recovery: a new session, from scratch.
    async with http_client(token) as client:
        async with streamable_http_client(url, http_client=client) as (read, write, session_id):
            async with ClientSession(read, write) as session:
                await session.initialize()
                expect(step, session_id() not in (None, sid), "the new session reused the old id")
                text = only_text(step, await session.call_tool("echo", {"message": "after reconnect"}))
                expect(step, text == "after reconnect", f"echo after reconnect gave {text!r}")
    ok("reconnect after 404 (deleted session refused with 404, a new session works)")


def leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups from anyio task groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


async def main() -> int:
    url = os.environ.get("MCP_URL")
    if not url:
        print("FAIL setup: MCP_URL is not set", file=sys.stderr)
        return 2
    token = os.environ.get("MCP_TOKEN", "mock-token-alice-0001")
    try:
        await main_sequence(url, token)
        await reconnect_after_404(url, token)
    except Exception as error:  # noqa: BLE001 - reported below, with exception groups unwrapped
        for leaf in leaves(error):
            if isinstance(leaf, Mismatch):
                print(f"FAIL {leaf.step}: {leaf.why}", file=sys.stderr)
                return 1
        for leaf in leaves(error):
            if isinstance(leaf, McpError):
                print(f"FAIL: MCP error {leaf.error.code}: {leaf.error.message}", file=sys.stderr)
                return 1
        import traceback

        traceback.print_exception(error)
        print(f"FAIL: unexpected error: {'; '.join(repr(leaf) for leaf in leaves(error))}", file=sys.stderr)
        return 2
    print("PASS python-sdk", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
