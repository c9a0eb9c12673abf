"""A real browser through h2front: headless Debian Chromium loads the demo dashboard's login page
over HTTP/2, logs in as admin/admin and reaches the landing page (#/dashboard), with every request
on h2, nothing failing in the page, the build's assets coming from h2front's memory store, and
h2front's 103 Early Hints arriving in Chromium (seen in its net-log) ahead of the document.

The browser is driven by tests/browser/login.mjs (playwright-core over CDP, against /usr/bin/chromium;
no browser is ever downloaded). It trusts only this h2front's self-signed certificate, pinned by the
SPKI hash h2front logs at start. Needs node (>= 20) and `npm ci` in tests/browser (tests/run.sh does it).

Environment: H2FRONT_BIN (the binary), H2FRONT_SOURCE_ROOT (the source tree).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from harness import H2FRONT_BIN, REPO, ensure_dashboard_dist, free_port, start_dashboard

CHROMIUM = '/usr/bin/chromium'
BROWSER_DIR = REPO / 'tests' / 'browser'
SCRIPT_TIMEOUT = 60      # seconds the script gets for launch, login and landing (takes 3-7 s)
LOAD_TIMEOUT = 40        # seconds for h2front's asset load (≈7 s for the real build, more on a busy machine)
IMMUTABLE = 'public, max-age=31536000, immutable'

pytestmark = [
    pytest.mark.skipif(not H2FRONT_BIN, reason='H2FRONT_BIN is not set'),
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason='%s is missing (Debian package chromium; scripts/install-deps.sh --test installs it)'
                       % CHROMIUM),
]


def node_or_fail():
    """node and playwright-core must be there: a missing one is a broken setup, not a reason to skip."""
    node = shutil.which('node')
    assert node, 'node is not on PATH: the browser test needs Node.js >= 20 (preinstalled on CI machines)'
    version = subprocess.run([node, '--version'], capture_output=True, text=True, timeout=10).stdout.strip()
    assert re.match(r'v(\d+)', version) and int(re.match(r'v(\d+)', version).group(1)) >= 20, \
        'node %s is too old: playwright-core needs >= 20' % version
    assert (BROWSER_DIR / 'node_modules' / 'playwright-core' / 'package.json').exists(), \
        'playwright-core is not installed: run `npm ci` in %s (tests/run.sh does)' % BROWSER_DIR
    return node


def run_bounded(argv, timeout):
    """Run the script in its own process group; past `timeout`, that group (node and the Chromium it
    started) is killed, so a hung browser never outlives the test."""
    proc = subprocess.Popen(argv, cwd=BROWSER_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail('login.mjs still running after %ss; killed\nstdout: %s\nstderr: %s'
                    % (timeout, stdout[-3000:], stderr[-3000:]))
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def test_chromium_logs_in_through_h2front_over_http2(tmp_path, h2front):
    node = node_or_fail()
    dist = ensure_dashboard_dist()
    dashboard = start_dashboard(tmp_path)  # with the real login's bcrypt delay
    port = free_port()
    front = h2front(f"""
listen:
  - address: "127.0.0.1:{port}"
    tls: self-signed
backends:
  - url: {dashboard.url}
health_check:
  interval: 1h
assets:
  root: {dist}
""")
    spki = front.proc.wait_for_log(r'SPKI sha256/([A-Za-z0-9+/]+=*)', 5).group(1)
    front.proc.wait_for_log(r'\[assets\] loaded \d+ files', LOAD_TIMEOUT)

    started = time.monotonic()
    run = run_bounded([node, str(BROWSER_DIR / 'login.mjs'), '--url', f'https://localhost:{port}/',
                       '--spki', spki, '--timeout', str(SCRIPT_TIMEOUT * 1000)], SCRIPT_TIMEOUT + 10)
    took = time.monotonic() - started
    (tmp_path / 'browser.json').write_text(run.stdout)
    (tmp_path / 'browser.stderr').write_text(run.stderr)
    try:
        summary = json.loads(run.stdout)
    except ValueError:
        pytest.fail('login.mjs printed no summary (exit %s)\nstdout: %s\nstderr: %s'
                    % (run.returncode, run.stdout[-3000:], run.stderr[-3000:]))
    brief = json.dumps({k: v for k, v in summary.items() if k != 'responses'}, indent=1)
    context = '%s\nh2front:\n%s' % (brief, front.log()[-3000:])

    assert run.returncode == 0 and summary['error'] is None, context
    assert summary['landed'] and '#/dashboard' in summary['finalUrl'], context

    origin = f'https://localhost:{port}/'
    network = [r for r in summary['responses'] if r['url'].startswith(('http:', 'https:'))]
    assert network, context
    assert all(r['url'].startswith(origin) for r in network), [r['url'] for r in network]
    not_h2 = [(r['url'], r['protocol']) for r in network if r['protocol'] != 'h2']
    assert not not_h2, 'requests not on h2: %s\n%s' % (not_h2, context)
    assert summary['consoleErrors'] == [], context
    assert summary['pageErrors'] == [], context
    assert summary['failedRequests'] == [], context
    bad_status = [(r['url'], r['status']) for r in network if r['status'] >= 400]
    assert not bad_status, 'error responses: %s\n%s' % (bad_status, context)

    # the document came from the dashboard, the build from h2front's memory, precompressed
    document = [r for r in network if r['url'] == origin]
    assert document and document[0]['headers'].get('server') == 'Ceph-Dashboard', document
    main = [r for r in network if re.search(r'/main\.[0-9a-f]{16,}\.js$', r['url'])]
    assert main, 'main.*.js was never loaded: %s' % [r['url'] for r in network]
    for r in main:
        assert r['status'] == 200 and r['headers'].get('cache-control') == IMMUTABLE, r
        assert r['headers'].get('content-encoding') == 'br' and r['headers'].get('etag'), r
    # Chromium received h2front's 103 Early Hints on the navigation's stream, ahead of the final response,
    # naming the same set as the document's Link header. (Whether Chromium then acts on them depends on how
    # soon the final response follows; CDP's responseReceivedEarlyHints only fires when it does.)
    netlog = summary['netlog']
    assert netlog and 'error' not in netlog, context
    assert len(netlog['earlyHints']) == 1, context
    hint = netlog['earlyHints'][0]
    assert hint['finalAfter'] and hint['link'] == document[0]['headers'].get('link'), (hint, document[0])
    assert main[0]['url'][len(origin) - 1:] in hint['link'], hint
    api = [r for r in network if '/api/' in r['url']]
    assert any(r['url'].endswith('/api/auth') and r['status'] == 201 for r in api), [(r['url'], r['status']) for r in api]
    assert all(r['headers'].get('server') == 'Ceph-Dashboard' for r in api), api

    timing = summary['timing']
    print('browser %s: %d responses, all h2 on %d HTTP/2 session(s), login form after %d ms, landing after %d ms '
          'from navigation (script %.1fs), 103 received: %d, acted on: %d, console warnings: %s'
          % (summary['browser'], len(network), netlog['sessions'], timing['loginForm'] - timing['navigationStart'],
             timing['landed'] - timing['navigationStart'], took, len(netlog['earlyHints']), len(summary['earlyHints']),
             summary['consoleWarnings']))
