#!/usr/bin/env node
// Interop check: the official MCP TypeScript client 2.x (`@modelcontextprotocol/client` 2.4.0)
// against coda-mcp-gateway in the 2026-07-28 (stateless) era.
//
// Usage: node client.mjs pin|auto
//   pin   versionNegotiation: { mode: { pin: "2026-07-28" } }: the connect-time server/discover
//         must offer 2026-07-28, no fallback;
//   auto  versionNegotiation: { mode: "auto" }: server/discover first, falling back to initialize
//         on a legacy server. Against the gateway it must END UP on 2026-07-28 (asserted).
//
// Environment:
//   MCP_URL    the gateway endpoint, e.g. http://127.0.0.1:PORT/mcp (required)
//   MCP_TOKEN  bearer token sent on every request (default: mock-token-alice-0001)
//   EXPECT_FINGERPRINT  if set, `credential_fingerprint` must return it (the caller's own token
//              fingerprint, when the gateway hands each caller's token to its child)
//
// The upstream behind the gateway must be `fake-mcp-server` (a legacy stdio server: the gateway
// translates). Every step prints `ok <step>`; the first mismatch prints `FAIL <step>: <why>` on
// stderr and exits 1; other errors exit 2.
//
// Steps: connect (era modern, version 2026-07-28, no Mcp-Session-Id), tools/list, echo,
// test_simple_text, resources/read test://static-text, prompts/get test_simple_prompt,
// test_tool_with_progress (progress seen), test_sampling (the server's sampling request comes
// back as an `input_required` result; the SDK answers it with our sampling handler and retries:
// MRTR), credential_fingerprint, close.

import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

const MODERN = "2026-07-28";
const EXPECTED_TOOLS = [
  "echo",
  "test_simple_text",
  "test_tool_with_progress",
  "test_sampling",
  "test_image_content",
  "test_error_handling",
  "credential_fingerprint",
];
const SIMPLE_TEXT = "This is a simple text response for testing.";
const STATIC_TEXT = "This is the content of the static text resource.";
const SIMPLE_PROMPT = "This is a simple prompt for testing.";
const ECHO_MESSAGE = 'interop ts-v2: héllo ✓ "quotes" \\ back\nslash';
const SAMPLING_ANSWER = "sampled-by-typescript-client-v2";
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

async function run(url, token, negotiation) {
  const mode = negotiation === "pin" ? { pin: MODERN } : "auto";
  const samplingRequests = [];
  // Every JSON-RPC message the SDK posts, as sent: proves the era on the wire (no initialize,
  // the version in _meta) and the MRTR retry (the second tools/call carries inputResponses).
  const posted = [];
  const recordingFetch = async (input, init) => {
    if (init?.method === "POST" && typeof init.body === "string") {
      try {
        const body = JSON.parse(init.body);
        for (const m of Array.isArray(body) ? body : [body]) posted.push(m);
      } catch {
        // not JSON: nothing to record
      }
    }
    return fetch(input, init);
  };
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
    fetch: recordingFetch,
  });
  const client = new Client(
    { name: "coda-mcp-gateway-interop-typescript-v2", version: "0.0.0" },
    { capabilities: { sampling: {} }, versionNegotiation: { mode } },
  );
  client.setRequestHandler("sampling/createMessage", async (request) => {
    samplingRequests.push(request.params);
    return {
      role: "assistant",
      content: { type: "text", text: SAMPLING_ANSWER },
      model: "interop-typescript-v2-stub",
      stopReason: "endTurn",
    };
  });
  const options = { timeout: REQUEST_TIMEOUT_MS };

  const step = `connect (${negotiation})`;
  await client.connect(transport, options);
  const version = client.getNegotiatedProtocolVersion();
  expect(step, client.getProtocolEra() === "modern", `era ${client.getProtocolEra()} (version ${version}), want modern`);
  expect(step, version === MODERN, `negotiated ${version}, want ${MODERN}`);
  const discover = client.getDiscoverResult();
  expect(step, discover?.supportedVersions?.includes(MODERN), `server/discover offered ${JSON.stringify(discover?.supportedVersions)}`);
  expect(step, transport.sessionId === undefined, `the gateway minted Mcp-Session-Id ${transport.sessionId} on the modern path`);
  expect(step, Boolean(client.getServerCapabilities()?.tools), "server/discover did not advertise tools");
  ok(`${step}: era modern, protocol ${version}, server ${client.getServerVersion()?.name}, discover offers [${discover.supportedVersions}], no session`);

  const tools = await client.listTools(undefined, options);
  const names = new Set(tools.tools.map((tool) => tool.name));
  const missing = EXPECTED_TOOLS.filter((name) => !names.has(name));
  expect("tools/list", missing.length === 0, `missing tools ${missing}; got ${[...names].sort()}`);
  ok(`tools/list (${names.size} tools)`);

  let text = onlyText("echo", await client.callTool({ name: "echo", arguments: { message: ECHO_MESSAGE } }, options));
  expect("echo", text === ECHO_MESSAGE, `expected ${JSON.stringify(ECHO_MESSAGE)}, got ${JSON.stringify(text)}`);
  ok("tools/call echo");

  text = onlyText("test_simple_text", await client.callTool({ name: "test_simple_text", arguments: {} }, options));
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
  const withProgress = await client.callTool({ name: "test_tool_with_progress", arguments: {} }, {
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

  const ask = `Say hi from TypeScript v2 (${negotiation})`;
  text = onlyText("test_sampling", await client.callTool({ name: "test_sampling", arguments: { prompt: ask } }, options));
  expect("test_sampling", samplingRequests.length === 1, `${samplingRequests.length} sampling requests reached our handler, want 1`);
  const asked = samplingRequests[0].messages?.[0]?.content;
  expect("test_sampling", asked?.text === ask, `sampling request carried ${JSON.stringify(asked)}`);
  expect("test_sampling", text === `LLM response: ${SAMPLING_ANSWER}`, `got ${JSON.stringify(text)}`);
  const samplingCalls = posted.filter((m) => m.method === "tools/call" && m.params?.name === "test_sampling");
  expect(
    "test_sampling",
    samplingCalls.length === 2 && !samplingCalls[0].params.inputResponses && samplingCalls[1].params.inputResponses,
    `want 2 tools/call test_sampling POSTs, the retry with inputResponses (MRTR); saw ${JSON.stringify(samplingCalls.map((m) => m.params))}`,
  );
  ok("tools/call test_sampling (input_required answered by our sampling handler, call retried: MRTR)");

  const fingerprint = onlyText("credential_fingerprint", await client.callTool({ name: "credential_fingerprint", arguments: {} }, options));
  const want = process.env.EXPECT_FINGERPRINT;
  if (want) {
    expect(
      "credential_fingerprint",
      fingerprint === want,
      `the child sees token fingerprint ${JSON.stringify(fingerprint)}, want ${JSON.stringify(want)} (the caller's token)`,
    );
  }
  ok(`tools/call credential_fingerprint (child sees token fingerprint ${JSON.stringify(fingerprint)})`);

  expect("modern era kept", client.getNegotiatedProtocolVersion() === MODERN, `version now ${client.getNegotiatedProtocolVersion()}`);
  expect("modern era kept", transport.sessionId === undefined, `a session id appeared: ${transport.sessionId}`);
  const initialize = posted.filter((m) => m.method === "initialize");
  expect("modern era kept", initialize.length === 0, `the SDK sent initialize ${initialize.length} time(s)`);
  const requests = posted.filter((m) => m.method && m.id !== undefined);
  const unversioned = requests.filter((m) => m.params?._meta?.["io.modelcontextprotocol/protocolVersion"] !== MODERN);
  expect("modern era kept", unversioned.length === 0, `requests without _meta protocolVersion ${MODERN}: ${unversioned.map((m) => m.method)}`);
  ok(`modern era kept (${requests.length} requests, each with _meta protocolVersion ${MODERN}, no initialize)`);
  await client.close();
  ok("close");
}

const negotiation = process.argv[2];
if (negotiation !== "pin" && negotiation !== "auto") {
  console.error("FAIL setup: usage: node client.mjs pin|auto");
  process.exit(2);
}
const url = process.env.MCP_URL;
if (!url) {
  console.error("FAIL setup: MCP_URL is not set");
  process.exit(2);
}
try {
  await run(url, process.env.MCP_TOKEN || "mock-token-alice-0001", negotiation);
  console.log(`PASS typescript-client-v2 (${negotiation})`);
  process.exit(0);
} catch (error) {
  if (error instanceof Mismatch) {
    console.error(`FAIL ${error.step}: ${error.why}`);
    process.exit(1);
  }
  console.error(`FAIL: unexpected error: ${error?.stack ?? error}`);
  process.exit(2);
}
