// Headless Debian Chromium logs in to the dashboard through h2front; prints one JSON summary on stdout.
//
//   node tests/browser/login.mjs --url https://localhost:8443/ --spki BASE64 [--user admin --password admin]
//                                [--timeout 90000] [--chromium /usr/bin/chromium] [--netlog FILE]
//
// Never downloads a browser: playwright-core drives /usr/bin/chromium (Debian's) over CDP, with a fresh
// profile, and trusts only h2front's self-signed certificate (pinned by its SPKI hash; no blanket
// ignoreHTTPSErrors). Exit status 0 when the summary could be written (the test judges it), 2 on bad
// arguments, 3 when the browser could not be driven at all.
//
// The summary:
//   responses        every response: URL, status, protocol (CDP Network.responseReceived), a few headers
//   earlyHints       103 responses Chromium acted on (CDP Network.responseReceivedEarlyHints; Chromium
//                    does not act on every 103 it receives, so this is informative only)
//   netlog           what Chromium's net-log recorded of HTTP/2 response HEADERS: every 103 received
//                    (stream, link, whether the final response followed on that stream) and how many
//                    HTTP/2 sessions were opened; this is where a 103 reliably shows up
//   consoleErrors, consoleWarnings, pageErrors, failedRequests
//   landed, finalUrl, landingElement, error
//   timing           milliseconds since the script started: launched, navigationStart, documentLoaded,
//                    loginForm, landed, total

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    spki: { type: 'string' },
    user: { type: 'string', default: 'admin' },
    password: { type: 'string', default: 'admin' },
    timeout: { type: 'string', default: '90000' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    netlog: { type: 'string' }, // keep Chromium's net-log in this file (default: a temporary file, removed)
  },
});
if (!opts.url || !opts.spki) {
  console.error('usage: login.mjs --url https://localhost:PORT/ --spki BASE64 [--user U --password P] [--timeout MS]');
  process.exit(2);
}
const timeout = Number(opts.timeout);
const started = Date.now();
const deadline = started + timeout;
const left = () => Math.max(1000, deadline - Date.now());
const elapsed = () => Date.now() - started;

const summary = {
  url: opts.url,
  browser: null,
  responses: [],
  earlyHints: [],
  netlog: null,
  consoleErrors: [],
  consoleWarnings: [],
  pageErrors: [],
  failedRequests: [],
  landed: false,
  finalUrl: null,
  landingElement: null,
  error: null,
  timing: {},
};

// Response headers the test looks at; CDP hands them over with the names as received (lowercase for h2).
const KEPT_HEADERS = ['cache-control', 'content-encoding', 'content-type', 'etag', 'server', 'vary', 'link'];
function keptHeaders(headers) {
  const out = {};
  for (const [name, value] of Object.entries(headers || {}))
    if (KEPT_HEADERS.includes(name.toLowerCase())) out[name.toLowerCase()] = value;
  return out;
}

const scratch = mkdtempSync(join(tmpdir(), 'h2front-chromium-'));
const profile = join(scratch, 'profile');
const netlogPath = opts.netlog || join(scratch, 'netlog.json');

// HTTP/2 response HEADERS as Chromium's net-log records them (written when the browser exits).
function readNetlog() {
  let text;
  try {
    text = readFileSync(netlogPath, 'utf8');
  } catch (e) {
    return { error: `no net-log: ${e.message}` };
  }
  let log;
  for (const candidate of [text, text.replace(/,?\s*$/, '') + ']}']) {
    try {
      log = JSON.parse(candidate);
      break;
    } catch (e) {
      /* a browser killed mid-write leaves the closing brackets out */
    }
  }
  if (!log) return { error: 'net-log is not JSON' };
  const types = {};
  for (const [name, id] of Object.entries(log.constants.logEventTypes)) types[id] = name;
  const out = { sessions: 0, earlyHints: [], acted: 0 };
  const finals = new Set();
  for (const e of log.events || []) {
    const type = types[e.type];
    if (type === 'HTTP2_SESSION_INITIALIZED') out.sessions++;
    else if (type === 'HTTP_TRANSACTION_READ_EARLY_HINTS_RESPONSE_HEADERS') out.acted++;
    else if (type === 'HTTP2_SESSION_RECV_HEADERS') {
      const headers = (e.params && e.params.headers) || [];
      const status = headers.find((h) => h.startsWith(':status: '));
      const key = `${e.source.id}/${e.params.stream_id}`;
      if (status === ':status: 103') {
        const link = headers.find((h) => h.toLowerCase().startsWith('link: '));
        out.earlyHints.push({ key, streamId: e.params.stream_id, link: link ? link.slice(6) : null, finalAfter: false });
      } else if (status) {
        for (const hint of out.earlyHints) if (hint.key === key && !finals.has(key)) hint.finalAfter = true;
        finals.add(key);
      }
    }
  }
  return out;
}

let context;
let finished = false;
// Hard stop: whatever hangs, the summary goes out and the browser is closed before the caller's timeout.
const watchdog = setTimeout(() => {
  summary.error = summary.error || `overall timeout of ${timeout} ms`;
  finish(3);
}, timeout + 5000);

async function finish(code) {
  if (finished) return;
  finished = true;
  clearTimeout(watchdog);
  try {
    if (context) await Promise.race([context.close(), new Promise((r) => setTimeout(r, 5000))]);
  } catch (e) {
    /* closing is best effort */
  }
  summary.netlog = readNetlog();
  summary.timing.total = elapsed();
  rmSync(profile, { recursive: true, force: true });
  if (!opts.netlog) rmSync(scratch, { recursive: true, force: true });
  process.stdout.write(JSON.stringify(summary, null, 1) + '\n');
  process.exit(code);
}

try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: opts.chromium,
    headless: true,
    timeout: left(),
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--ignore-certificate-errors-spki-list=${opts.spki}`,
      '--host-resolver-rules=MAP localhost 127.0.0.1',
      `--log-net-log=${netlogPath}`,
      '--net-log-capture-mode=Default',
    ],
  });
  summary.browser = context.browser()?.version() ?? null;
  summary.timing.launched = elapsed();
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(left());

  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  cdp.on('Network.responseReceived', ({ response }) => {
    summary.responses.push({
      url: response.url,
      status: response.status,
      protocol: response.protocol,
      mimeType: response.mimeType,
      fromDiskCache: !!response.fromDiskCache,
      fromPrefetchCache: !!response.fromPrefetchCache,
      headers: keptHeaders(response.headers),
    });
  });
  cdp.on('Network.responseReceivedEarlyHints', ({ headers }) => {
    summary.earlyHints.push({ link: keptHeaders(headers).link ?? null });
  });
  page.on('console', (msg) => {
    if (msg.type() === 'error') summary.consoleErrors.push(msg.text());
    else if (msg.type() === 'warning') summary.consoleWarnings.push(msg.text());
  });
  page.on('pageerror', (err) => summary.pageErrors.push(String(err && err.stack ? err.stack : err)));
  page.on('requestfailed', (req) => summary.failedRequests.push({ url: req.url(), error: req.failure()?.errorText ?? '' }));

  summary.timing.navigationStart = elapsed();
  await page.goto(opts.url, { waitUntil: 'domcontentloaded', timeout: left() });
  summary.timing.documentLoaded = elapsed();
  const username = page.locator('#username');
  await username.waitFor({ state: 'visible', timeout: left() });
  summary.timing.loginForm = elapsed();
  await username.fill(opts.user);
  await page.locator('#password').fill(opts.password);
  await page.locator('form[name="loginForm"] [type="submit"]').click();
  await page.waitForURL(/#\/dashboard/, { timeout: left() });
  // The landing page: the dashboard component, inside the navigation frame that only a logged-in user gets.
  await page.locator('cd-dashboard').waitFor({ state: 'attached', timeout: left() });
  await page.locator('cd-navigation').first().waitFor({ state: 'visible', timeout: left() });
  summary.landingElement = 'cd-dashboard';
  summary.timing.landed = elapsed();
  summary.landed = true;
  // Let the landing page's first API calls (health, summary) complete so their protocol is recorded too.
  await page.waitForLoadState('networkidle', { timeout: Math.min(15000, left()) }).catch(() => {});
  summary.finalUrl = page.url();
  await finish(0);
} catch (e) {
  summary.error = String(e && e.stack ? e.stack : e);
  try {
    const pages = context ? context.pages() : [];
    if (pages.length) summary.finalUrl = pages[0].url();
  } catch (ignored) {
    /* best effort */
  }
  await finish(context ? 0 : 3);
}
