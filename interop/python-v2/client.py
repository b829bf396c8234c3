#!/usr/bin/env python3
"""Interop check: the official MCP Python SDK **2.x** (`mcp` 2.3.0, the current PyPI line)
against coda-mcp-gateway.

This is the 2025-era run: `mode="legacy"`, the `initialize` handshake and a session (mcp 2.x
defaults to `mode="auto"`, which negotiates 2026-07-28 against a gateway that serves it; that
era is checked by modern.py). Then the same sequence as ../python/client.py (1.x): tools/list,
echo, test_simple_text, resources/read, prompts/get, progress, sampling,
credential_fingerprint; closing sends DELETE.

Environment: MCP_URL (required), MCP_TOKEN (default mock-token-alice-0001),
EXPECT_FINGERPRINT (optional, see ../python/client.py).
Prints `ok <step>`; the first mismatch prints `FAIL <step>: <why>` and exits 1; other errors exit 2.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

SIMPLE_TEXT = "This is a simple text response for testing."
STATIC_TEXT = "This is the content of the static text resource."
SIMPLE_PROMPT = "This is a simple prompt for testing."
ECHO_MESSAGE = "interop v2: héllo ✓ \"quotes\" \\ back\nslash"
SAMPLING_ANSWER = "sampled-by-python-sdk-v2"


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


sampling_requests: list[Any] = []


async def on_sampling(context: Any, params: Any) -> types.CreateMessageResult:
    sampling_requests.append(params)
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=SAMPLING_ANSWER),
        model="interop-python-v2-stub",
        stop_reason="endTurn",
    )


async def run(url: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=60.0)) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode="legacy", sampling_callback=on_sampling, read_timeout_seconds=60) as client:
            version = client.protocol_version
            expect("initialize", version in ("2025-11-25", "2025-06-18", "2025-03-26"), f"negotiated {version!r}")
            expect("initialize", client.server_info is not None and bool(client.server_info.name), "no serverInfo")
            ok(f"connect mode=legacy: initialize (protocol {version}, server {client.server_info.name})")

            names = {tool.name for tool in (await client.list_tools()).tools}
            missing = {"echo", "test_simple_text", "test_tool_with_progress", "test_sampling"} - names
            expect("tools/list", not missing, f"missing tools {sorted(missing)}")
            ok(f"tools/list ({len(names)} tools)")

            text = only_text("echo", await client.call_tool("echo", {"message": ECHO_MESSAGE}))
            expect("echo", text == ECHO_MESSAGE, f"expected {ECHO_MESSAGE!r}, got {text!r}")
            ok("tools/call echo")

            text = only_text("test_simple_text", await client.call_tool("test_simple_text", {}))
            expect("test_simple_text", text == SIMPLE_TEXT, f"got {text!r}")
            ok("tools/call test_simple_text")

            resource = await client.read_resource("test://static-text")
            contents = resource.contents
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

            text = only_text("test_sampling", await client.call_tool("test_sampling", {"prompt": "Say hi from v2"}))
            expect("test_sampling", len(sampling_requests) == 1, f"{len(sampling_requests)} sampling requests")
            expect("test_sampling", text == f"LLM response: {SAMPLING_ANSWER}", f"got {text!r}")
            ok("tools/call test_sampling (sampling/createMessage answered)")

            fingerprint = only_text("credential_fingerprint", await client.call_tool("credential_fingerprint", {}))
            want = os.environ.get("EXPECT_FINGERPRINT")
            if want:
                expect("credential_fingerprint", fingerprint == want, f"child sees {fingerprint!r}, want {want!r}")
            ok(f"tools/call credential_fingerprint (child sees token fingerprint {fingerprint!r})")
    ok("close (DELETE sent by the SDK)")


def leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


async def main() -> int:
    url = os.environ.get("MCP_URL")
    if not url:
        print("FAIL setup: MCP_URL is not set", file=sys.stderr)
        return 2
    try:
        await run(url, os.environ.get("MCP_TOKEN", "mock-token-alice-0001"))
    except Exception as error:  # noqa: BLE001 - reported below, exception groups unwrapped
        for leaf in leaves(error):
            if isinstance(leaf, Mismatch):
                print(f"FAIL {leaf.step}: {leaf.why}", file=sys.stderr)
                return 1
        traceback.print_exception(error)
        print(f"FAIL: unexpected error: {'; '.join(repr(leaf) for leaf in leaves(error))}", file=sys.stderr)
        return 2
    print("PASS python-sdk-v2", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
