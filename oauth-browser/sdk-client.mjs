// The official MCP TypeScript SDK client's OAuth support against the gateway, with the
// authorize page driven in headless Chromium as a person would.
//
//   node sdk-client.mjs <mcp-url> <coda-token>
//
// The SDK discovers (401 → protected resource metadata → authorization server metadata),
// registers (RFC 7591), sends the user to the authorize page (PKCE S256, resource, state);
// Chromium pastes the token and approves; a loopback server here receives the callback; the SDK
// exchanges the code, connects, calls `credential_fingerprint`, refreshes (rotation) and calls
// again. Prints one JSON line with what it saw; exits 1 on any failure.

import http from 'node:http';
import { chromium } from 'playwright-core';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, auth } from '@modelcontextprotocol/sdk/client/auth.js';

const [mcpUrl, codaToken] = process.argv.slice(2);
if (!mcpUrl || !codaToken) {
  console.error('usage: node sdk-client.mjs <mcp-url> <coda-token>');
  process.exit(1);
}

// The client's loopback redirect target.
const callbacks = [];
const server = http.createServer((req, res) => {
  callbacks.push(req.url);
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('signed in; you can close this window');
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const redirectUrl = `http://127.0.0.1:${server.address().port}/callback`;

class MemoryProvider {
  authorizationUrl;
  #client;
  #tokens;
  #verifier;
  get redirectUrl() { return redirectUrl; }
  get clientMetadata() {
    return {
      client_name: 'MCP TypeScript SDK (oauth-browser)',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() { return 'sdk-state-42'; }
  clientInformation() { return this.#client; }
  saveClientInformation(info) { this.#client = info; }
  tokens() { return this.#tokens; }
  saveTokens(tokens) { this.#tokens = tokens; }
  redirectToAuthorization(url) { this.authorizationUrl = url; }
  saveCodeVerifier(verifier) { this.#verifier = verifier; }
  codeVerifier() { return this.#verifier; }
}

async function fingerprint(provider) {
  const client = new Client({ name: 'oauth-sdk-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider }));
  const result = await client.callTool({ name: 'credential_fingerprint', arguments: {} });
  await client.close();
  return result.content[0].text;
}

const provider = new MemoryProvider();
const out = {};
let browser;
try {
  // 1. Unauthorized: the SDK discovers, registers and asks us to send the user to the page.
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
  const first = new Client({ name: 'oauth-sdk-test', version: '1.0.0' });
  try {
    await first.connect(transport);
    throw new Error('connected without signing in');
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
  }
  const url = provider.authorizationUrl;
  out.clientId = provider.clientInformation()?.client_id;
  out.authorize = {
    method: url.searchParams.get('code_challenge_method'),
    resource: url.searchParams.get('resource'),
    state: url.searchParams.get('state'),
  };

  // 2. A person approves in Chromium.
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    timeout: 30_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage();
  page.setDefaultTimeout(15_000);
  await page.goto(url.href);
  out.pageClient = (await page.textContent('#client-name'))?.trim();
  await page.fill('#coda_token', codaToken);
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(redirectUrl)),
    page.click('#approve'),
  ]);
  const landed = new URL(page.url());
  out.callbackState = landed.searchParams.get('state');
  out.callbackIss = landed.searchParams.get('iss');
  const code = landed.searchParams.get('code');

  // 3. The SDK exchanges the code, then connects and calls a tool.
  await transport.finishAuth(code);
  out.tokenType = provider.tokens()?.token_type;
  out.fingerprint = await fingerprint(provider);

  // 4. Refresh (rotation), then call again with the new access token.
  const before = provider.tokens();
  out.refreshResult = await auth(provider, { serverUrl: mcpUrl });
  const after = provider.tokens();
  out.rotated = before.access_token !== after.access_token && before.refresh_token !== after.refresh_token;
  out.fingerprintAfterRefresh = await fingerprint(provider);
  out.callbacks = callbacks.filter((c) => c.startsWith('/callback')).length;
  out.ok = true;
} catch (e) {
  out.ok = false;
  out.error = String(e?.stack || e);
} finally {
  await browser?.close();
  server.close();
}
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);
