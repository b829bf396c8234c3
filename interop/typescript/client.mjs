#!/usr/bin/env node
// Interop check: the official MCP TypeScript SDK client against coda-mcp-gateway.
//
// Environment:
//   MCP_URL    the gateway endpoint, e.g. http://127.0.0.1:PORT/mcp (required)
//   MCP_TOKEN  bearer token sent on every request (default: mock-token-alice-0001)
//   EXPECT_FINGERPRINT  if set, `credential_fingerprint` must return it (the caller's token
//              fingerprint, when the gateway hands each caller's token to its child)
//
// The upstream behind the gateway must be `fake-mcp-server`. Every step prints `ok <step>`;
// the first mismatch prints `FAIL <step>: <why>` on stderr and exits 1; other errors exit 2.
//
// Steps: initialize, tools/list, echo, test_simple_text, resources/read test://static-text,
// prompts/get test_simple_prompt, test_tool_with_progress (progress seen), test_sampling
// (answered by our sampling handler), terminateSession() (DELETE), then a request with the
// terminated session id must get HTTP 404 and a new session must work.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const EXPECTED_TOOLS = [
  "echo",
  "test_simple_text",
  "test_tool_with_progress",
  "test_sampling",
  "test_image_content",
  "test_error_handling",
];
const SIMPLE_TEXT = "This is a simple text response for testing.";
const STATIC_TEXT = "This is the content of the static text resource.";
const SIMPLE_PROMPT = "This is a simple prompt for testing.";
const ECHO_MESSAGE = 'interop: héllo ✓ "quotes" \\ back\nslash';
const SAMPLING_ANSWER = "sampled-by-typescript-sdk";
const REQUEST_TIMEOUT_MS = 30_000;

class Mismatch extends Error {
  constructor(step, why) {
    super(`${step}: ${why}`);
    this.step = step;
    this.why = why;
  }
}

function ok(step) {
  console.log(`ok ${step}`);
}

function expect(step, condition, why) {
  if (!condition) throw new Mismatch(step, why);
}

function onlyText(step, result) {
  expect(step, !result.isError, `isError result: ${JSON.stringify(result)}`);
  expect(step, result.content?.length === 1, `expected 1 content block, got ${JSON.stringify(result.content)}`);
  const block = result.content[0];
  expect(step, block.type === "text", `expected text content, got ${JSON.stringify(block)}`);
  return block.text;
}

function connect(url, token, samplingRequests) {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  const client = new Client(
    { name: "coda-mcp-gateway-interop-typescript", version: "0.0.0" },
    { capabilities: { sampling: {} } },
  );
  client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
    samplingRequests.push(request.params);
    return {
      role: "assistant",
      content: { type: "text", text: SAMPLING_ANSWER },
      model: "interop-typescript-stub",
      stopReason: "endTurn",
    };
  });
  return { client, transport };
}

async function run(url, token) {
  const samplingRequests = [];
  const { client, transport } = connect(url, token, samplingRequests);
  const options = { timeout: REQUEST_TIMEOUT_MS };

  await client.connect(transport, options);
  const server = client.getServerVersion();
  const sessionId = transport.sessionId;
  expect("initialize", Boolean(server?.name), "empty serverInfo.name");
  expect("initialize", Boolean(client.getServerCapabilities()?.tools), "server did not advertise tools");
  expect("initialize", Boolean(sessionId), "no Mcp-Session-Id issued");
  ok(`initialize (protocol ${transport.protocolVersion}, server ${server.name}, session ${sessionId})`);

  const tools = await client.listTools(undefined, options);
  const names = new Set(tools.tools.map((tool) => tool.name));
  const missing = EXPECTED_TOOLS.filter((name) => !names.has(name));
  expect("tools/list", missing.length === 0, `missing tools ${missing}; got ${[...names].sort()}`);
  ok(`tools/list (${names.size} tools)`);

  let text = onlyText("echo", await client.callTool({ name: "echo", arguments: { message: ECHO_MESSAGE } }, undefined, options));
  expect("echo", text === ECHO_MESSAGE, `expected ${JSON.stringify(ECHO_MESSAGE)}, got ${JSON.stringify(text)}`);
  ok("tools/call echo");

  text = onlyText("test_simple_text", await client.callTool({ name: "test_simple_text", arguments: {} }, undefined, options));
  expect("test_simple_text", text === SIMPLE_TEXT, `expected ${JSON.stringify(SIMPLE_TEXT)}, got ${JSON.stringify(text)}`);
  ok("tools/call test_simple_text");

  const resource = await client.readResource({ uri: "test://static-text" }, options);
  expect("resources/read", resource.contents.length === 1, `got ${resource.contents.length} contents`);
  const contents = resource.contents[0];
  expect("resources/read", contents.text === STATIC_TEXT, `expected ${JSON.stringify(STATIC_TEXT)}, got ${JSON.stringify(contents)}`);
  expect("resources/read", contents.mimeType === "text/plain", `mimeType ${contents.mimeType}`);
  ok("resources/read test://static-text");

  const prompt = await client.getPrompt({ name: "test_simple_prompt" }, options);
  expect("prompts/get", prompt.messages.length === 1, `got ${prompt.messages.length} messages`);
  const message = prompt.messages[0];
  expect("prompts/get", message.role === "user", `role ${message.role}`);
  expect(
    "prompts/get",
    message.content.type === "text" && message.content.text === SIMPLE_PROMPT,
    `expected text ${JSON.stringify(SIMPLE_PROMPT)}, got ${JSON.stringify(message.content)}`,
  );
  ok("prompts/get test_simple_prompt");

  const progress = [];
  const withProgress = await client.callTool({ name: "test_tool_with_progress", arguments: {} }, undefined, {
    ...options,
    onprogress: (p) => progress.push(`${p.progress}/${p.total}`),
  });
  expect("progress", !withProgress.isError, `isError result: ${JSON.stringify(withProgress)}`);
  expect(
    "progress",
    progress.join(",") === "0/100,50/100,100/100",
    `expected progress 0/100, 50/100, 100/100 before the result, saw [${progress}]`,
  );
  ok(`tools/call test_tool_with_progress (progress ${progress.join(", ")})`);

  text = onlyText(
    "test_sampling",
    await client.callTool({ name: "test_sampling", arguments: { prompt: "Say hi from TypeScript" } }, undefined, options),
  );
  expect("test_sampling", samplingRequests.length === 1, `${samplingRequests.length} sampling requests`);
  const asked = samplingRequests[0].messages[0].content;
  expect("test_sampling", asked?.text === "Say hi from TypeScript", `sampling request carried ${JSON.stringify(asked)}`);
  expect("test_sampling", text === `LLM response: ${SAMPLING_ANSWER}`, `got ${JSON.stringify(text)}`);
  ok("tools/call test_sampling (sampling/createMessage answered)");

  const fingerprint = onlyText("credential_fingerprint", await client.callTool({ name: "credential_fingerprint", arguments: {} }, undefined, options));
  const want = process.env.EXPECT_FINGERPRINT;
  if (want) {
    expect("credential_fingerprint", fingerprint === want, `the child sees token fingerprint ${JSON.stringify(fingerprint)}, want ${JSON.stringify(want)} (the caller's token)`);
  }
  ok(`tools/call credential_fingerprint (child sees token fingerprint ${JSON.stringify(fingerprint)})`);

  await transport.terminateSession();
  expect("terminateSession", transport.sessionId === undefined, "session id still set after terminateSession()");
  ok("terminateSession (DELETE)");
  await client.close();

  // The terminated id must now be refused with 404 (the client's cue to start a new session).
  const probe = await fetch(url, {
    method: "POST",
    headers: {
      Authorization: `Bearer ${token}`,
      "Mcp-Session-Id": sessionId,
      "MCP-Protocol-Version": transport.protocolVersion ?? "2025-11-25",
      Accept: "application/json, text/event-stream",
      "Content-Type": "application/json",
    },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  await probe.arrayBuffer();
  expect("reconnect-after-404", probe.status === 404, `POST on a terminated session gave HTTP ${probe.status}, want 404`);

  const again = connect(url, token, []);
  await again.client.connect(again.transport, options);
  expect("reconnect-after-404", again.transport.sessionId && again.transport.sessionId !== sessionId, "no new session id");
  text = onlyText("reconnect-after-404", await again.client.callTool({ name: "echo", arguments: { message: "after reconnect" } }, undefined, options));
  expect("reconnect-after-404", text === "after reconnect", `echo after reconnect gave ${JSON.stringify(text)}`);
  await again.transport.terminateSession();
  await again.client.close();
  ok("reconnect after 404 (terminated session refused with 404, a new session works)");
}

const url = process.env.MCP_URL;
if (!url) {
  console.error("FAIL setup: MCP_URL is not set");
  process.exit(2);
}
try {
  await run(url, process.env.MCP_TOKEN || "mock-token-alice-0001");
  console.log("PASS typescript-sdk");
  process.exit(0);
} catch (error) {
  if (error instanceof Mismatch) {
    console.error(`FAIL ${error.step}: ${error.why}`);
    process.exit(1);
  }
  console.error(`FAIL: unexpected error: ${error?.stack ?? error}`);
  process.exit(2);
}
