"""A small 2026-07-28 fixture server on the Python `mcp` SDK (pinned in requirements.txt).

The SDK's own Streamable HTTP app, stateless, with tools, resources and prompts named after the
official conformance fixture contract (modelcontextprotocol/conformance
examples/servers/typescript/everything-server.ts), so the harness's `fixture` scenarios apply.
Written for mcp-harness; nothing here is copied from the SDK or the conformance repository.

    python modern_fixture.py            # binds 127.0.0.1 on a free port, prints the URL
    THIRDPARTY_READY=/path/fifo ...     # also writes the URL there (thirdparty/run.sh)
"""

from __future__ import annotations

import json
import os
import socket
import sys

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.request_state import RequestStateSecurity
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, InputRequiredResult, TextContent

server = MCPServer(
    "mcp-harness-python-fixture",
    instructions="Fixture for mcp-harness third-party runs.",
    request_state_security=RequestStateSecurity.ephemeral(),
)


@server.tool(description="Tests simple text content response")
def test_simple_text() -> str:
    return "This is a simple text response for testing."


@server.tool(description="Tests error response handling")
def test_error_handling() -> str:
    raise RuntimeError("This tool intentionally returns an error for testing")


@server.tool(description="Tests tool that emits log messages during execution")
async def test_tool_with_logging(ctx: Context) -> str:
    for text in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await ctx.info(text)
        await anyio.sleep(0.05)
    return "Tool with logging executed successfully"


@server.tool(description="Tests tool that reports progress notifications (slow: about 3 s)")
async def test_tool_with_progress(ctx: Context) -> str:
    for step in (0, 50, 100):
        await ctx.report_progress(step, 100, f"Completed step {step} of 100")
        await anyio.sleep(1.0)
    return "progress done"


@server.tool(description="Needs the client's sampling capability (-32021 without it)")
def test_missing_capability(ctx: Context) -> str:
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.sampling is None:
        raise MCPError(
            code=-32021,
            message="Client did not declare the sampling capability",
            data={"requiredCapabilities": {"sampling": {}}},
        )
    return "sampling capability present"


def _text(inputs, key: str, field: str) -> str | None:
    if not inputs or key not in inputs:
        return None
    answer = inputs[key]
    data = answer.model_dump(by_alias=True) if hasattr(answer, "model_dump") else answer
    content = (data or {}).get("content") or {}
    value = content.get(field) if isinstance(content, dict) else None
    return value if isinstance(value, str) else None


@server.tool(description="MRTR: asks for a name by elicitation, then greets")
async def test_input_required_result_elicitation(ctx: Context) -> CallToolResult | InputRequiredResult:
    name = _text(ctx.input_responses, "user_name", "name")
    if name is not None:
        return CallToolResult(content=[TextContent(type="text", text=f"Hello, {name}!")])
    return InputRequiredResult(
        input_requests={
            "user_name": {
                "method": "elicitation/create",
                "params": {
                    "mode": "form",
                    "message": "What is your name?",
                    "requestedSchema": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}},
                        "required": ["name"],
                    },
                },
            }
        }
    )


@server.tool(description="MRTR: asks for confirmation and carries requestState")
async def test_input_required_result_request_state(ctx: Context) -> CallToolResult | InputRequiredResult:
    if ctx.request_state and ctx.input_responses and "confirm" in ctx.input_responses:
        state = json.loads(ctx.request_state)
        if state.get("kind") == "request-state":
            return CallToolResult(content=[TextContent(type="text", text="state-ok: requestState validated")])
    return InputRequiredResult(
        input_requests={
            "confirm": {
                "method": "elicitation/create",
                "params": {
                    "mode": "form",
                    "message": "Please confirm",
                    "requestedSchema": {
                        "type": "object",
                        "properties": {"ok": {"type": "boolean"}},
                        "required": ["ok"],
                    },
                },
            }
        },
        request_state=json.dumps({"kind": "request-state"}),
    )


@server.resource("test://static-text", mime_type="text/plain", description="A static text resource")
def static_text() -> str:
    return "This is the content of the static text resource."


@server.resource("test://template/{id}/data", mime_type="application/json", description="A resource template")
def template_data(id: str) -> str:
    return json.dumps({"id": id, "templateTest": True})


@server.prompt(description="A simple prompt without arguments")
def test_simple_prompt() -> str:
    return "This is a simple prompt for testing."


def main() -> None:
    app = server.streamable_http_app(stateless_http=True, json_response=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(os.environ.get("PORT", "0"))))
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    print(url, flush=True)
    ready = os.environ.get("THIRDPARTY_READY")
    if ready:
        with open(ready, "w") as fifo:
            fifo.write(url + "\n")
    config = uvicorn.Config(app, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
