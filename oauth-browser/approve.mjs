// Drives the gateway's OAuth authorize page in headless Chromium, as a person would:
// open the authorize URL, paste a Coda token into the password field, click a button, and
// follow the redirect to the client's loopback callback.
//
//   node approve.mjs <authorize-url> <coda-token> <callback-prefix> [approve|deny] [screenshot.png]
//
// Prints one JSON line on stdout:
//   {"outcome":"redirected","url":"<callback URL with code/state/iss>","title":...,"client":...}
//   {"outcome":"page","status":401,"error":"<the page's error text>"}   (no redirect happened)
// Exits 0 when the run itself worked (whatever the page said), 1 on a driver failure.
// Uses Debian's Chromium (CHROMIUM_PATH, default /usr/bin/chromium); downloads no browser.

import { chromium } from 'playwright-core';

const [authorizeUrl, token, callbackPrefix, decision = 'approve', screenshot] = process.argv.slice(2);
if (!authorizeUrl || token === undefined || !callbackPrefix) {
  console.error('usage: node approve.mjs <authorize-url> <coda-token> <callback-prefix> [approve|deny] [screenshot.png]');
  process.exit(1);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  timeout: 30_000,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
let result;
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(15_000);
  const violations = [];
  page.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
  });
  const first = await page.goto(authorizeUrl);
  if (first.status() !== 200) {
    result = { outcome: 'page', status: first.status(), error: await page.textContent('body') };
  } else {
    const client = (await page.textContent('#client-name'))?.trim();
    const host = (await page.textContent('#redirect-host'))?.trim();
    await page.fill('#coda_token', token);
    const redirected = page
      .waitForURL((url) => url.href.startsWith(callbackPrefix), { timeout: 15_000 })
      .then(() => true, () => false);
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().includes('/oauth/authorize') && r.request().method() === 'POST'),
      page.click(decision === 'deny' ? '#deny' : '#approve'),
    ]);
    if (response.status() === 303) {
      const ok = await redirected;
      result = ok
        ? { outcome: 'redirected', url: page.url(), client, host, violations }
        : { outcome: 'stuck', url: page.url(), status: response.status(), violations };
    } else {
      await page.waitForLoadState('domcontentloaded');
      const error = (await page.textContent('#error').catch(() => null))?.trim() ?? null;
      result = { outcome: 'page', status: response.status(), error, client, host, violations };
    }
  }
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
} catch (e) {
  // A blocked navigation (for example a CSP form-action refusal) lands here.
  result = { outcome: 'error', error: String(e?.message || e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
if (result.outcome === 'error') process.exit(1);
