#!/usr/bin/env node
// One page-load measurement of the Ceph dashboard in Debian's Chromium, driven by playwright-core
// (never a downloaded browser):
//   1. cold: a fresh profile opens the login page; done when the login form is visible and the
//      network has been quiet for 500 ms;
//   2. login: admin/admin, until the landing page shows its health cards and the network is quiet;
//   3. reload: the landing page again with a warm cache, until the same.
// Prints one JSON line: per phase the time to settle, requests, bytes on the wire, connections,
// protocols, and for the reload the requests for content-hashed files that went to the network
// (304 revalidations included). Settled = the later of: the end of the phase's last request, and
// the first frame painted after the phase's element (#username, then the landing page's health
// cards) entered the DOM; both measured in the browser (CDP timestamps, and performance.now() from
// a MutationObserver installed before any page script), from the phase's first request. Timing
// from Node (waitForSelector's polling) is not used: it lags the page by up to half a second.
//
// Bytes on the wire are TCP payload in both directions (TLS included) of the server's sockets,
// read with `ss -ti` (bytes_acked + bytes_received) every 100 ms: CDP's encodedDataLength misses
// what Chromium fetched for 103 Early Hints (it reports 0 bytes for those). Connections are the
// server sockets that carried bytes in the phase.
//
//   node pageload.js --url URL --server-port PORT --condition loopback|devtools|relay
//                    --spki HASH --user-data-dir DIR
//
// devtools: Network.emulateNetworkConditions, 40 ms latency, 20 Mbit/s down, 5 up. relay: the
// harness points --url at tests/bench/relay.py; nothing is emulated in the browser.
//
// For looking at single runs: PAGELOAD_DUMP=FILE appends every request's CDP timeline as one JSON
// line; PAGELOAD_NETLOG=PREFIX makes Chromium write its net log to PREFIX.<ms>.json, which
// tests/bench/netlog_streams.py turns into wire times per HTTP/2 stream (what CDP cannot show for
// files a 103 preloaded).
'use strict';

const { execFileSync } = require('child_process');
const { chromium } = require('playwright-core');

const QUIET_MS = 500;
const HASHED = /\.[0-9a-f]{16,}\.[a-z0-9]+(\?|$)/;

function parseArgs(argv) {
  const args = {};
  for (let i = 2; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const key of ['url', 'server-port', 'condition', 'user-data-dir']) {
    if (!args[key]) throw new Error(`--${key} is required`);
  }
  return args;
}

// Per server socket (local and peer address), payload bytes both ways so far.
function socketBytes(port) {
  const out = execFileSync('ss', ['-tinH', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
  const sockets = new Map();
  let key = null;
  for (const line of out.split('\n')) {
    if (!line.trim()) continue;
    if (!/^\s/.test(line)) {
      const cols = line.trim().split(/\s+/);  // Recv-Q Send-Q Local Peer
      key = `${cols[2]} ${cols[3]}`;
    } else if (key) {
      const sent = /bytes_acked:(\d+)/.exec(line);
      const received = /bytes_received:(\d+)/.exec(line);
      sockets.set(key, (sent ? Number(sent[1]) : 0) + (received ? Number(received[1]) : 0));
      key = null;
    }
  }
  return sockets;
}

class Recorder {
  constructor(cdp, serverPort) {
    this.requests = new Map();  // requestId -> record
    this.phase = null;
    this.lastActivity = Date.now();
    this.serverPort = serverPort;
    this.seen = new Map();       // socket -> bytes counted so far
    this.wire = {};              // phase -> {bytes, sockets: Set}
    cdp.on('Network.requestWillBeSent', (e) => {
      if (!this.phase) return;
      const prev = this.requests.get(e.requestId);
      if (prev && e.redirectResponse) prev.end = e.timestamp;  // a redirect ends the previous hop
      this.requests.set(e.requestId, {
        phase: this.phase, url: e.request.url, method: e.request.method, start: e.timestamp,
        end: null, bytes: 0, cached: false, status: null, connection: null, protocol: null,
      });
      this.lastActivity = Date.now();
    });
    cdp.on('Network.requestServedFromCache', (e) => {
      const r = this.requests.get(e.requestId);
      if (r) r.cached = true;
    });
    cdp.on('Network.responseReceived', (e) => {
      const r = this.requests.get(e.requestId);
      if (!r) return;
      r.status = e.response.status;
      r.protocol = e.response.protocol;
      if (e.response.fromDiskCache || e.response.fromPrefetchCache || e.response.fromServiceWorker) r.cached = true;
      if (!r.cached && e.response.connectionId) r.connection = e.response.connectionId;
      this.lastActivity = Date.now();
    });
    cdp.on('Network.loadingFinished', (e) => {
      const r = this.requests.get(e.requestId);
      if (!r) return;
      r.end = e.timestamp;
      r.bytes = e.encodedDataLength || 0;
      this.lastActivity = Date.now();
    });
    cdp.on('Network.loadingFailed', (e) => {
      const r = this.requests.get(e.requestId);
      if (!r) return;
      r.end = e.timestamp;
      r.failed = e.errorText;
      this.lastActivity = Date.now();
    });
  }

  start(phase) {
    this.poll();  // what came before belongs to the previous phase
    this.phase = phase;
    this.wire[phase] = { bytes: 0, sockets: new Set() };
    this.lastActivity = Date.now();
  }

  poll() {
    for (const [key, bytes] of socketBytes(this.serverPort)) {
      const delta = bytes - (this.seen.get(key) || 0);
      this.seen.set(key, bytes);
      if (delta > 0 && this.phase) {
        this.wire[this.phase].bytes += delta;
        this.wire[this.phase].sockets.add(key);
      }
    }
  }

  inFlight() {
    let n = 0;
    for (const r of this.requests.values()) if (r.phase === this.phase && r.end === null) n++;
    return n;
  }

  async quiet(timeoutMs = 60000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.poll();
      if (this.inFlight() === 0 && Date.now() - this.lastActivity >= QUIET_MS) return;
      if (Date.now() > deadline) throw new Error(`network not quiet after ${timeoutMs} ms in ${this.phase}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  firstStart(phase) {
    return Math.min(...[...this.requests.values()].filter((r) => r.phase === phase).map((r) => r.start));
  }

  summary(phase, visibleMs) {
    const rs = [...this.requests.values()].filter((r) => r.phase === phase);
    const first = Math.min(...rs.map((r) => r.start));
    const last = Math.max(...rs.map((r) => r.end || r.start));
    const network = rs.filter((r) => !r.cached);
    const protocols = {};
    for (const r of network) if (r.protocol) protocols[r.protocol] = (protocols[r.protocol] || 0) + 1;
    return {
      settled_ms: Math.round(Math.max((last - first) * 1000, visibleMs || 0)),
      network_ms: Math.round((last - first) * 1000),
      visible_ms: Math.round(visibleMs),
      requests: rs.length,
      network_requests: network.length,
      bytes: this.wire[phase].bytes,
      cdp_bytes: rs.reduce((sum, r) => sum + r.bytes, 0),
      connections: this.wire[phase].sockets.size,
      protocols,
      hashed_requests: network.filter((r) => HASHED.test(r.url)).length,
      failed: rs.filter((r) => r.failed || (r.status && r.status >= 400)).map((r) => `${r.status || r.failed} ${r.url}`),
    };
  }
}

// The cold page's own milestones in page time (ms from its navigation start), for PAGELOAD_DUMP: when the
// document and its load event ended, and when the login form entered the DOM and was painted.
async function pageMarks(page) {
  return page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const round = (v) => (v === undefined ? null : Math.round(v));
    return { response_end: round(nav.responseEnd), dom_content_loaded: round(nav.domContentLoadedEventEnd),
      load_event: round(nav.loadEventStart), username_in_dom: round(window.__benchSeen.username),
      username_painted: round(window.__benchSeen.usernamePainted) };
  });
}

async function main() {
  const args = parseArgs(process.argv);
  const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'];
  if (args.spki) flags.push(`--ignore-certificate-errors-spki-list=${args.spki}`);
  if (process.env.PAGELOAD_NETLOG) flags.push(`--log-net-log=${process.env.PAGELOAD_NETLOG}.${Date.now()}.json`);
  const context = await chromium.launchPersistentContext(args['user-data-dir'], {
    executablePath: '/usr/bin/chromium', headless: true, args: flags, viewport: { width: 1280, height: 800 },
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    if (args.condition === 'devtools') {
      await cdp.send('Network.emulateNetworkConditions', {
        offline: false, latency: 40, downloadThroughput: 20e6 / 8, uploadThroughput: 5e6 / 8,
      });
    }
    const rec = new Recorder(cdp, Number(args['server-port']));
    await page.addInitScript(() => {
      // When each phase's element first appears, and the next frame after it, in page time.
      const seen = window.__benchSeen = {};
      const watch = { username: '#username', cards: 'cd-health cd-info-card' };
      new MutationObserver(() => {
        for (const [key, selector] of Object.entries(watch)) {
          if (seen[key] === undefined && document.querySelector(selector)) {
            seen[key] = performance.now();
            requestAnimationFrame(() => { seen[key + 'Painted'] = performance.now(); });
          }
        }
      }).observe(document, { childList: true, subtree: true });
    });
    const painted = async (key) => {
      await page.waitForFunction((k) => window.__benchSeen && window.__benchSeen[k + 'Painted'] !== undefined,
        key, { timeout: 60000, polling: 50 });
      return page.evaluate((k) => window.__benchSeen[k + 'Painted'], key);
    };
    const result = { condition: args.condition };

    rec.start('cold');
    await page.goto(args.url, { waitUntil: 'commit' });
    await page.waitForSelector('#username', { state: 'visible', timeout: 60000 });
    const coldPaint = await painted('username');  // page time: from this document's navigation start
    await rec.quiet();
    const coldMarks = process.env.PAGELOAD_DUMP ? await pageMarks(page) : null;  // only the dump shows them
    const coldNav = rec.firstStart('cold');
    result.cold = rec.summary('cold', coldPaint);

    await page.fill('#username', 'admin');
    await page.fill('#password', 'admin');
    rec.start('login');
    await page.click('input[type=submit]');
    await page.waitForSelector('cd-health cd-info-card', { state: 'visible', timeout: 60000 });
    const loginPaint = await painted('cards');  // same document as the login page
    await rec.quiet();
    result.login = rec.summary('login', loginPaint - (rec.firstStart('login') - coldNav) * 1000);

    rec.start('reload');
    await page.reload({ waitUntil: 'commit' });
    await page.waitForSelector('cd-health cd-info-card', { state: 'visible', timeout: 60000 });
    const reloadPaint = await painted('cards');  // a new document: page time restarts
    await rec.quiet();
    result.reload = rec.summary('reload', reloadPaint);

    if (process.env.PAGELOAD_DUMP) {  // every request, for looking at one run's timeline
      const t0 = Math.min(...[...rec.requests.values()].map((r) => r.start));
      const rows = [...rec.requests.values()].map((r) => ({ ...r, start: Math.round((r.start - t0) * 1000),
        end: r.end === null ? null : Math.round((r.end - t0) * 1000) }));
      require('fs').appendFileSync(process.env.PAGELOAD_DUMP,
        JSON.stringify({ url: args.url, cold_marks: coldMarks, rows }) + '\n');
    }
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    await context.close();
  }
}

main().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
