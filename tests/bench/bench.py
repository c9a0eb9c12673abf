#!/usr/bin/python3
"""h2front's benchmark driver: h2front against h2o 2.2.5, nginx 1.22, HAProxy 2.6 and nghttpx 1.52,
each a TLS + HTTP/2 front with one worker thread, over HTTP/1.1 keep-alive to a fast nginx backend
and to the CherryPy demo dashboard; plus static assets, 10,000 idle connections and a Chromium
page load. Run it through tests/bench/run.sh, which installs and builds what it needs.

    bench.py [--quick] [--smoke] [--only SCENARIO[,SCENARIO...]] [--runs N] ...

Runs are interleaved (A B C A B C ...), each figure is the median of --runs runs, and the results
go to tests/bench/results/latest.{json,md,png}; goals are printed as PASS/FAIL lines (they never
make the run fail; a harness error does).
"""

import argparse
import atexit
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure  # noqa: E402
import targets  # noqa: E402
from targets import ACCEPT_ENCODING, BENCH, REPO  # noqa: E402

RESULTS = BENCH / 'results'
PROXIES = ['h2front', 'h2o', 'nginx', 'haproxy', 'nghttpx']


@dataclass
class Scenario:
    name: str
    group: str            # what --only also accepts: fast, dashboard, assets, idle, pageload
    title: str
    backend: str          # 'fast' or 'dashboard'
    targets: list
    load: list = field(default_factory=list)  # h2load arguments besides duration, headers, URIs
    paths: list = field(default_factory=list)  # one path, or several for -i (cycled per client)
    long: bool = False    # twice the duration (rate-limited polling needs time to collect samples)
    tabs: int = 0         # polling: this many clients, opened in TAB_GROUPS groups one after another,
    tab_rps: float = 0.0  # each sending this many requests per second (h2load --rps)
    check_path: str = '/api/summary'


def scenarios(args):
    fast = PROXIES + ['direct'] + list(targets.LIBH2O_PROXIES)
    dash = ['h2front', 'h2o', 'nginx', 'haproxy', 'haproxy-mc10', 'nghttpx']
    assets = ['h2front-assets', 'h2o-static', 'nginx-static', 'haproxy', 'nghttpx'] + list(targets.LIBH2O_FILE_SERVERS)
    login = [targets.LOGIN_ASSETS[3]]
    all_ = [
        Scenario('api-mux', 'fast', 'GET /api/summary (302 B JSON), 16 connections x 16 streams',
                 'fast', fast, ['-c', 16, '-m', 16], ['/api/summary']),
        Scenario('api-conns', 'fast', 'GET /api/summary, 64 connections x 1 stream',
                 'fast', fast, ['-c', 64, '-m', 1], ['/api/summary']),
        Scenario('asset-200k', 'fast', 'GET a 200 KiB asset (no compression), 8 connections x 4 streams',
                 'fast', fast, ['-c', 8, '-m', 4], [targets.ASSET_200K]),
        Scenario('polling', 'fast', 'polling mix (health/minimal, notifications, summary) from %d tabs '
                 'at %.1f req/s each' % (args.tabs_fast, args.tab_rps),
                 'fast', fast, ['-m', 1], targets.POLL_PATHS, long=True, tabs=args.tabs_fast,
                 tab_rps=args.tab_rps),
        Scenario('dash-api-mux', 'dashboard', 'CherryPy: GET /api/summary, 16 connections x 16 streams',
                 'dashboard', dash, ['-c', 16, '-m', 16], ['/api/summary']),
        Scenario('dash-api-conns', 'dashboard', 'CherryPy: GET /api/summary, 64 connections x 1 stream',
                 'dashboard', dash, ['-c', 64, '-m', 1], ['/api/summary']),
        Scenario('dash-polling', 'dashboard', 'CherryPy: polling mix from %d tabs at %.1f req/s each'
                 % (args.tabs_dash, args.tab_rps),
                 'dashboard', dash, ['-m', 1], targets.POLL_PATHS, long=True, tabs=args.tabs_dash,
                 tab_rps=args.tab_rps),
        Scenario('login-assets', 'assets', "the login page's 12 static files (Accept-Encoding: gzip, "
                 "deflate, br), 8 connections x 12 streams; h2front from memory, h2o and nginx "
                 "serving the precompressed build themselves, HAProxy and nghttpx proxying nginx",
                 'fast', assets, ['-c', 8, '-m', 12], ['/' + p for p in targets.LOGIN_ASSETS],
                 check_path='/' + login[0]),
    ]
    return all_


# ---------------------------------------------------------------------------------------------
# One h2load run against one target.


# Polling tabs are opened in this many groups, spread over one polling period, so that they do not
# all ask at the same instant (see measure.StaggeredH2load).
TAB_GROUPS = 20


def start_load(scen, port, duration, warmup, backend, workdir, cpu_list):
    """h2load for one run, its warm-up starting now: one process, or staggered groups of tabs."""
    args = h2load_args(scen, port, backend, workdir)
    log = Path(workdir) / 'h2load.log'
    if scen.tabs:
        groups = min(TAB_GROUPS, scen.tabs)
        return measure.StaggeredH2load(args, scen.tabs, groups, 1.0 / scen.tab_rps / groups, warmup, duration, log,
                                       cpu_list=cpu_list)
    timing = ['--warm-up-time=%dms' % (warmup * 1000), '-D', '%dms' % (duration * 1000)]
    return measure.H2load(timing + args, log, cpu_list=cpu_list)


def h2load_args(scen, port, backend, workdir):
    argv = [*scen.load, *(['--rps', scen.tab_rps] if scen.tab_rps else []),
            '-H', 'accept-encoding: ' + ACCEPT_ENCODING, *backend.headers_args()]
    urls = ['https://127.0.0.1:%d%s' % (port, p) for p in scen.paths]
    if len(urls) == 1:
        argv.append(urls[0])
    else:
        uri_file = Path(workdir) / 'uris.txt'
        uri_file.write_text('\n'.join(urls) + '\n')
        argv += ['-i', uri_file]
    return argv


def run_load(ctx, scen, target, rep):
    """Start the target, run h2load once: connect, --warm-up-time (not counted), then the measured
    duration. The server's CPU and peak RSS are taken from the end of the warm-up (the driver
    sleeps as long as h2load warms up) to the end; backend connections over the server's life."""
    backend = ctx.backends[scen.backend]
    duration = ctx.duration * (2 if scen.long else 1)
    warmup = ctx.warmup
    rec = {'scenario': scen.name, 'target': target, 'rep': rep, 'started': time.time()}
    accepted_before = backend.accepted()
    server = targets.start_target(ctx.ws, target, backend, scen.check_path, backend.check_headers())
    try:
        if target not in ctx.tls:
            ctx.tls[target] = targets.tls_parameters(server.port)
        workdir = server.workdir if server.owned else ctx.ws.subdir('direct')
        pids, backend_pids = server.pids(), backend.pids()
        same = not server.owned  # "direct": the server is the backend
        sampler = targets.ConnectionSampler(backend.port)
        load = start_load(scen, server.port, duration, warmup, backend, workdir, ctx.ws.load_cpu)
        time.sleep(warmup)
        tracers = start_tracers(ctx, target, pids, Path(workdir))
        clock = measure.TaskClock(pids, Path(workdir) / 'task-clock.csv')
        time.sleep(0.1)  # perf attaches
        cpu0, bcpu0 = measure.cpu_seconds(pids), measure.cpu_seconds(backend_pids)
        busy0, self0 = measure.system_busy_seconds(), measure.self_cpu_seconds()
        measure.reset_peak_rss(pids)
        sampler.start()
        # Connections opened while serving, before h2load leaves: its disconnect with requests in
        # flight makes some proxies open more (reported separately).
        time.sleep(max(0.0, duration - 0.3))
        accepted_serving = backend.accepted()
        res = load.wait(duration + 120)
        cpu1, bcpu1 = measure.cpu_seconds(pids), measure.cpu_seconds(backend_pids)
        busy1, self1 = measure.system_busy_seconds(), measure.self_cpu_seconds()
        task_clock = clock.stop()
        max_open = sampler.stop()
        syscalls = stop_tracers(tracers, Path(workdir))
        peak = measure.peak_rss_kib(pids)
        if not server.alive():
            raise RuntimeError('%s died during the run:\n%s' % (target, server.log_tail()))
    finally:
        server.stop()
    accepted_after = backend.accepted()
    measured = max(res.seconds - warmup, 1e-9)
    stat_cpu = cpu1 - cpu0
    proxy_cpu = task_clock if task_clock is not None else stat_cpu
    backend_cpu = 0.0 if same else bcpu1 - bcpu0
    # h2load's CPU is only known for its whole life: count the measured part pro rata.
    client_cpu = res.client_cpu * measured / res.seconds if res.seconds else 0.0
    window = res.wall - warmup
    ours = proxy_cpu + backend_cpu + client_cpu + (self1 - self0)
    rec.update({
        'ok': res.ok and res.requests > 0,
        'requests': res.requests, 'failed': res.failed, 'seconds': measured,
        'rps': res.requests / measured, 'p50_ms': res.p50_ms, 'p99_ms': res.p99_ms,
        'mean_ms': res.mean_ms,
        'cpu_s': proxy_cpu, 'cpu_us_per_req': proxy_cpu / res.requests * 1e6 if res.requests else None,
        'cpu_source': 'task-clock' if task_clock is not None else 'stat',
        'stat_cpu_s': stat_cpu,
        'backend_cpu_s': backend_cpu, 'client_cpu_s': client_cpu,
        'peak_rss_mib': peak / 1024.0,
        'backend_opened': None if same else accepted_after - accepted_before,
        'backend_opened_serving': None if same else accepted_serving - accepted_before,
        'backend_max_open': None if same else max_open,
        'bytes_per_req': res.bytes_total / res.requests if res.requests else None,
        'other_cores': max(0.0, (busy1 - busy0) - ours) / window if window > 0 else None,
        'status': res.status,
    })
    if scen.long:
        # A polling run has only a few hundred requests, so its own p99 is its 7th slowest and swings
        # from run to run; keeping every latency lets the report pool them over all runs.
        rec['latencies_ms'] = [round(us / 1000.0, 1) for us in res.latencies_us]
    if syscalls is not None and res.requests:
        rec['syscalls_per_req'] = {k: v / res.requests for k, v in syscalls.items()}
    if not rec['ok']:
        rec['error'] = res.output[-1500:]
    return rec


SYSCALLS = ('read', 'readv', 'recvfrom', 'recvmsg', 'write', 'writev', 'sendto', 'sendmsg', 'epoll_ctl',
            'epoll_wait', 'epoll_pwait', 'accept4', 'connect', 'close')


def start_tracers(ctx, target, pids, workdir):
    """--perf: perf record (cpu-clock, DWARF call graphs) of h2front during the measured window.
    --syscalls: perf stat of syscall tracepoints of every server (adds a little CPU to all)."""
    tracers = {}
    if ctx.perf and target.startswith('h2front'):
        tracers['record'] = subprocess.Popen(
            ['perf', 'record', '-e', 'cpu-clock', '-F', '999', '--call-graph', 'dwarf,16384', '-o',
             str(workdir / 'perf.data'), '-p', ','.join(map(str, pids))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if ctx.syscalls:
        events = ','.join('syscalls:sys_enter_' + n for n in SYSCALLS)
        tracers['stat'] = subprocess.Popen(
            ['perf', 'stat', '-x', ',', '-e', events, '-o', str(workdir / 'syscalls.csv'), '-p',
             ','.join(map(str, pids))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if tracers:
        time.sleep(0.2)  # perf attaches
    return tracers


def stop_tracers(tracers, workdir):
    for proc in tracers.values():
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    if 'stat' not in tracers:
        return None
    counts = {}
    for line in (workdir / 'syscalls.csv').read_text().splitlines():
        cols = line.split(',')
        if len(cols) > 2 and cols[2].startswith('syscalls:sys_enter_') and cols[0].strip().isdigit():
            counts[cols[2][len('syscalls:sys_enter_'):]] = int(cols[0])
    return {k: v for k, v in counts.items() if v}


# ---------------------------------------------------------------------------------------------
# 10,000 idle connections.


def run_idle(ctx, target, rep):
    backend = ctx.backends['fast']
    rec = {'scenario': 'idle', 'target': target, 'rep': rep, 'started': time.time()}
    server = targets.start_target(ctx.ws, target, backend, '/api/summary')
    client = None
    try:
        time.sleep(1)
        pids = server.pids()
        rss0 = measure.rss_kib(pids)
        cpu_start = measure.cpu_seconds(pids)
        argv = ctx.ws.pinned([targets.PYTHON, BENCH / 'idle.py', '--port', server.port,
                              '--connections', ctx.idle_connections, '--path', '/api/summary'],
                             ctx.ws.load_cpu)
        client_err = open(Path(server.workdir) / 'idle-client.stderr', 'w')
        client = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=client_err,
                                  text=True, start_new_session=True)
        line = client.stdout.readline().strip()
        if not line.startswith('ready'):
            raise RuntimeError('idle client: %r' % line)
        ready = dict(kv.split('=', 1) for kv in line.split()[1:] if '=' in kv)
        connected = int(ready['ok'])
        time.sleep(2)
        pids = server.pids()
        rss1 = measure.rss_kib(pids)
        cpu_a = measure.cpu_seconds(pids)
        time.sleep(ctx.idle_hold)
        cpu_b = measure.cpu_seconds(pids)
        # A new client while the others idle: TLS handshake + one request, curl's own timing.
        times = []
        for _ in range(5):
            r = subprocess.run(['curl', '-sk', '--http2', '-o', '/dev/null', '-w', '%{http_code} %{time_total}',
                                'https://127.0.0.1:%d/api/summary' % server.port],
                               capture_output=True, text=True, timeout=30)
            code, total = r.stdout.split()
            times.append(float(total) * 1000 if code == '200' else float('inf'))
        rss2 = measure.rss_kib(pids)
        client.stdin.write('quit\n')
        client.stdin.flush()
        closed = client.stdout.readline().strip()
        client.wait(60)
        if not server.alive():
            raise RuntimeError('%s died:\n%s' % (target, server.log_tail()))
    finally:
        if client is not None and client.poll() is None:
            client.kill()
            client.wait()
        server.stop()
    growth = rss1 - rss0
    rec.update({
        'ok': connected == ctx.idle_connections,
        'connections': connected, 'failed': int(ready['failed']), 'connect_seconds': float(ready['seconds']),
        'rss_before_mib': rss0 / 1024.0, 'rss_growth_mib': growth / 1024.0,
        'kib_per_conn': growth / connected if connected else None,
        'idle_cpu_ms': (cpu_b - cpu_a) * 1000, 'idle_seconds': ctx.idle_hold,
        'setup_cpu_s': cpu_a - cpu_start,
        'new_client_ms': statistics.median(times),
        'dropped': int(closed.split('=')[1]) if closed.startswith('closed') else None,
        'rss_after_probe_mib': rss2 / 1024.0,
        'other_cores': None,
    })
    return rec


# ---------------------------------------------------------------------------------------------
# Page loads in Chromium.


def run_pageload(ctx, target, condition, rep):
    backend = ctx.backends['dashboard']
    rec = {'scenario': 'pageload', 'target': target, 'condition': condition, 'rep': rep,
           'started': time.time()}
    server = relay = None
    try:
        if target == 'dashboard':
            port, scheme = backend.port, 'http'
        else:
            server = targets.start_target(ctx.ws, target, backend, '/' + targets.LOGIN_ASSETS[3])
            port, scheme = server.port, 'https'
        server_port = port
        relay_stats = None
        if condition == 'relay':
            workdir = ctx.ws.subdir('relay')
            relay = targets.Proc('relay', [targets.PYTHON, BENCH / 'relay.py', '--target-port', port,
                                           '--rtt-ms', 40, '--down-mbit', 20, '--up-mbit', 5,
                                           '--stats', workdir / 'relay-stats.json'], workdir)
            port = int(relay.wait_for_line(r'^relay on (\d+)$').group(1))
        workdir = ctx.ws.subdir('chromium')
        argv = ['node', BENCH / 'pageload' / 'pageload.js', '--url', '%s://127.0.0.1:%d/' % (scheme, port),
                '--server-port', server_port, '--condition', condition, '--spki', ctx.ws.spki, '--user-data-dir', workdir / 'profile']
        result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300,
                                cwd=BENCH / 'pageload')
        if relay is not None:
            relay.stop()
            relay_stats = json.loads((Path(relay.workdir) / 'relay-stats.json').read_text())
        if result.returncode != 0:
            raise RuntimeError('pageload.js failed:\n%s\n%s' % (result.stdout[-2000:], result.stderr[-3000:]))
        data = json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        if relay is not None:
            relay.stop()
        if server is not None:
            server.stop()
    rec.update(data)
    rec['ok'] = True
    if relay_stats:
        rec['relay_connections'] = relay_stats.get('connections')
    shutil.rmtree(workdir / 'profile', ignore_errors=True)
    return rec


# ---------------------------------------------------------------------------------------------


class Context:
    pass


def machine_description(h2front_bin):
    def cmd(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ''

    def pkg(name):
        return cmd(['dpkg-query', '-W', '-f=${Version}', name]) or 'not installed'
    model = ''
    for line in Path('/proc/cpuinfo').read_text().splitlines():
        if line.startswith('model name'):
            model = line.split(':', 1)[1].strip()
            break
    mem = int(Path('/proc/meminfo').read_text().split()[1]) // 1024
    commit = cmd(['git', '-C', str(REPO), 'rev-parse', '--short', 'HEAD'])
    dirty = cmd(['git', '-C', str(REPO), 'status', '--porcelain', '--', 'src'])
    modified = [line.split(None, 1)[1] for line in dirty.splitlines() if line.strip()]  # cmd() strips the first line's ' M'
    playwright = ''
    lock = BENCH / 'pageload' / 'node_modules' / 'playwright-core' / 'package.json'
    if lock.exists():
        playwright = json.loads(lock.read_text())['version']
    return {
        'nproc': os.cpu_count(), 'cpu': model, 'kernel': platform.release(), 'memory_mib': mem,
        'os': cmd(['sh', '-c', '. /etc/os-release && echo "$PRETTY_NAME"']),
        'h2front': '%s (git %s%s)' % (cmd([h2front_bin, '--version']), commit,
                                      (', with uncommitted changes to ' + ', '.join(modified)) if modified else ''),
        'packages': {p: pkg(p) for p in ('h2o', 'libh2o0.13', 'nginx-light', 'haproxy', 'nghttp2-proxy',
                                         'nghttp2-client', 'openssl', 'python3-cherrypy3', 'chromium')},
        'node': cmd(['node', '--version']), 'playwright-core': playwright,
    }


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--quick', action='store_true', help='one short run of everything (CI)')
    p.add_argument('--smoke', action='store_true',
                   help='with --quick: h2front and nginx only, the shortest runs, a few scenarios (meson test)')
    p.add_argument('--only', default='', help='comma-separated scenario names or groups: '
                   'api-mux, api-conns, asset-200k, polling, dash-api-mux, dash-api-conns, dash-polling, '
                   'login-assets, idle, pageload; groups fast, dashboard, assets')
    p.add_argument('--targets', default='', help='comma-separated subset of targets (h2front is always kept); '
                   'libh2o-uv and libh2o-evloop, libh2o\'s own proxy on each event loop, and '
                   'libh2o-uv-files and libh2o-evloop-files, its file handler (login-assets), run only when named')
    p.add_argument('--conditions', help='page load: comma-separated subset of loopback, devtools, relay')
    p.add_argument('--runs', type=int, help='runs per target and scenario (default 5; --quick 1)')
    p.add_argument('--duration', type=float, help='seconds per measured run (default 10; --quick 3)')
    p.add_argument('--idle-connections', type=int, help='default 10000; --quick 2000')
    p.add_argument('--tabs-fast', type=int, default=500)
    p.add_argument('--tabs-dash', type=int, default=100)
    p.add_argument('--tab-rps', type=float, default=0.6, help='a dashboard tab polls 3 requests every 5 s')
    p.add_argument('--h2front', default=os.environ.get('H2FRONT_BIN'), help='the h2front binary')
    p.add_argument('--dist', default=str(REPO / '.cache' / 'dashboard-dist'))
    p.add_argument('--out', default=str(RESULTS), help='where latest.{json,md,png} go')
    p.add_argument('--no-pin', action='store_true', help='do not pin servers and load to separate CPUs')
    p.add_argument('--keep-work', action='store_true', help='keep the work directory (configs, logs)')
    p.add_argument('--perf', action='store_true',
                   help='record h2front with perf (cpu-clock, DWARF call graphs) during each load run: '
                        'results/.../work/NNN-h2front/perf.data (implies --keep-work)')
    p.add_argument('--syscalls', action='store_true',
                   help='count syscalls per request of every server (perf stat on tracepoints; costs them '
                        'a little CPU, so not for the reference numbers)')
    p.add_argument('--fast-max-connections', type=int, default=targets.FAST_BACKEND_MAX_CONNECTIONS,
                   help="h2front's upstream.max_connections in front of the fast backend (default %(default)s)")
    args = p.parse_args(argv)
    if not args.h2front:
        p.error('give --h2front BIN or set H2FRONT_BIN')
    quick = args.quick or args.smoke
    args.quick = quick
    args.runs = args.runs or (1 if quick else 5)
    args.duration = args.duration or (1.5 if args.smoke else 3 if quick else 10)
    args.idle_connections = args.idle_connections or (300 if args.smoke else 2000 if quick else 10000)
    if args.smoke:
        args.tabs_fast = min(args.tabs_fast, 50)
        args.tabs_dash = min(args.tabs_dash, 20)
    return args


def select(args, all_scenarios):
    names = [s.name for s in all_scenarios] + ['idle', 'pageload']
    groups = {s.group for s in all_scenarios}
    wanted = [w.strip() for w in args.only.split(',') if w.strip()]
    if not wanted:
        wanted = ['api-mux', 'polling', 'login-assets', 'dash-api-mux', 'idle', 'pageload'] if args.smoke else names
    chosen = []
    for w in wanted:
        if w in groups:
            chosen += [s.name for s in all_scenarios if s.group == w]
        elif w in names:
            chosen.append(w)
        else:
            sys.exit('unknown scenario %r; choose from %s or a group %s' % (w, ', '.join(names), ', '.join(sorted(groups))))
    return [n for n in names if n in chosen]


def filter_targets(args, names):
    """The scenario's targets that this run measures. The libh2o experiment targets run only when
    --targets names them, and in the smoke run, so that they keep building."""
    asked = set(t.strip() for t in args.targets.split(',')) if args.targets else set()
    names = [n for n in names if n not in targets.LIBH2O_TARGETS or n in asked or args.smoke]
    if args.smoke:
        keep = {'h2front', 'h2front-assets', 'nginx', 'nginx-static', 'dashboard', 'haproxy-mc10',  # not -no103
                *targets.LIBH2O_TARGETS}
        names = [n for n in names if n in keep]
    if args.targets:
        names = [n for n in names if n in asked | {'h2front', 'h2front-assets'}]
    return names


def stop_leftovers():
    """Stop every server still running (newest first) when the driver ends early: an exception, ^C or
    SIGTERM. Without this, a SIGKILL from PR_SET_PDEATHSIG would leave nginx's workers orphaned."""
    for load in list(measure.RUNNING_LOADS):
        load.kill()
    for proc in sorted(targets.running_procs(), key=lambda p: -p.pid):
        proc.stop(timeout=5)


def results_json(results):
    """latest.json, one field per line, except each run's list of latencies (thousands of numbers)
    on one line of its own."""
    lists = {}

    def placeholder(run):
        if 'latencies_ms' not in run:
            return run
        key = '@latencies-%d@' % len(lists)
        lists[key] = json.dumps(run['latencies_ms'], separators=(',', ':'))
        return dict(run, latencies_ms=key)
    text = json.dumps(dict(results, runs=[placeholder(r) for r in results['runs']]), indent=1, default=str)
    for key, value in lists.items():
        text = text.replace('"%s"' % key, value, 1)
    return text


def main(argv=None):
    atexit.register(stop_leftovers)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda s, f: sys.exit(128 + s))
    args = parse_args(argv)
    t_start = time.monotonic()
    all_scenarios = scenarios(args)
    chosen = select(args, all_scenarios)
    out = Path(args.out).resolve()  # servers run in their own directories: a relative path would not reach them
    out.mkdir(parents=True, exist_ok=True)
    work = out / 'work'
    shutil.rmtree(work, ignore_errors=True)
    www = targets.prepare_www(args.dist, REPO / '.cache' / 'bench')
    pin = not args.no_pin and os.cpu_count() >= 2
    ctx = Context()
    ctx.ws = targets.Workspace(work, args.h2front, args.dist, www,
                               proxy_cpu=1 if pin else None, load_cpu=0 if pin else None)
    ctx.duration = args.duration
    ctx.warmup = max(1.0, round(args.duration / 5, 1))
    ctx.idle_connections = args.idle_connections
    ctx.idle_hold = 3 if args.quick else 10
    ctx.perf, ctx.syscalls = args.perf, args.syscalls
    if args.perf:
        args.keep_work = True
    targets.FAST_BACKEND_MAX_CONNECTIONS = args.fast_max_connections
    ctx.backends = {}
    ctx.tls = {}
    if ctx.ws.nofile < ctx.idle_connections + 500 and 'idle' in chosen:
        ctx.idle_connections = ctx.ws.nofile - 500
        print('note: open-file limit %d: idle connections reduced to %d' % (ctx.ws.nofile, ctx.idle_connections))

    results = {'args': {k: v for k, v in vars(args).items()}, 'machine': machine_description(args.h2front),
               'started': datetime.datetime.now().isoformat(timespec='seconds'), 'runs': [],
               'errors': [], 'scenarios': {}}
    print('h2front benchmark: %s; %d run(s) each, %gs per run; scenarios: %s'
          % ('smoke' if args.smoke else 'quick' if args.quick else 'full', args.runs, args.duration,
             ', '.join(chosen)), flush=True)
    harness_errors = 0
    try:
        needs = {s.backend for s in all_scenarios if s.name in chosen}
        if 'idle' in chosen:
            needs.add('fast')
        if 'pageload' in chosen:
            needs.add('dashboard')
        if 'fast' in needs:
            ctx.backends['fast'] = targets.FastBackend(ctx.ws)
        if 'dashboard' in needs:
            ctx.backends['dashboard'] = targets.DashboardBackend(ctx.ws)

        for scen in all_scenarios:
            if scen.name not in chosen:
                continue
            names = filter_targets(args, scen.targets)
            results['scenarios'][scen.name] = {'title': scen.title, 'targets': names, 'backend': scen.backend}
            print('\n== %s: %s' % (scen.name, scen.title), flush=True)
            for rep in range(args.runs):
                for target in names:
                    harness_errors += record(results, lambda: run_load(ctx, scen, target, rep), scen.name, target, rep)
        if 'idle' in chosen:
            names = filter_targets(args, PROXIES)
            results['scenarios']['idle'] = {
                'title': '%d idle TLS + HTTP/2 connections, one request each, held %ds'
                         % (ctx.idle_connections, ctx.idle_hold), 'targets': names, 'backend': 'fast'}
            print('\n== idle: %s' % results['scenarios']['idle']['title'], flush=True)
            for rep in range(args.runs):
                for target in names:
                    harness_errors += record(results, lambda: run_idle(ctx, target, rep), 'idle', target, rep)
        if 'pageload' in chosen:
            ready = (BENCH / 'pageload' / 'node_modules' / 'playwright-core').is_dir()
            names = filter_targets(args, ['dashboard', 'h2front-assets', 'h2front-assets-no103', 'nginx-static'])
            conditions = ['loopback'] if args.smoke else ['loopback', 'devtools', 'relay']
            if args.conditions:
                conditions = [c for c in conditions if c in args.conditions.split(',')]
            results['scenarios']['pageload'] = {
                'title': 'Chromium: cold login page, log in, warm reload of the landing page',
                'targets': names, 'conditions': conditions, 'backend': 'dashboard'}
            print('\n== pageload: %s' % results['scenarios']['pageload']['title'], flush=True)
            if not ready:
                print('SKIP pageload: tests/bench/pageload/node_modules missing (run.sh installs it with npm ci)')
                results['scenarios']['pageload']['skipped'] = 'playwright-core not installed'
            else:
                for rep in range(args.runs):
                    for condition in conditions:
                        for target in names:
                            harness_errors += record(results, lambda: run_pageload(ctx, target, condition, rep),
                                                     'pageload', target, rep, condition)
    except (KeyboardInterrupt, SystemExit) as e:
        # Interrupted (^C, SIGTERM): what was measured so far is still written out, marked as such.
        results['interrupted'] = 'interrupted (%s) after %d runs' % (type(e).__name__, len(results['runs']))
        print('\n%s: writing the partial results' % results['interrupted'], flush=True)
    finally:
        for backend in ctx.backends.values():
            backend.stop()
    results['tls'] = ctx.tls
    results['finished'] = datetime.datetime.now().isoformat(timespec='seconds')
    results['elapsed_s'] = time.monotonic() - t_start
    (out / 'latest.json').write_text(results_json(results))
    import report
    goals = report.write(results, out, smoke=args.smoke)
    if results.get('interrupted'):
        harness_errors += 1
    print()
    for line in goals:
        print(line)
    print('\nresults: %s  (%.0f s)' % (out / 'latest.md', results['elapsed_s']))
    if not args.keep_work and harness_errors == 0:
        shutil.rmtree(work, ignore_errors=True)
    elif harness_errors:
        print('work directory kept for the errors: %s' % work)
    if args.smoke:
        # the smoke test guards the harness and h2front; a peer timing out on a busy CI machine is
        # reported above but is not h2front's failure
        own = [e for e in results['errors'] if e['target'].startswith('h2front')]
        return 1 if own or not results['runs'] else 0
    return 1 if harness_errors else 0


def record(results, run, scenario, target, rep, condition=None):
    """Run one measurement; print a one-line summary. Returns 1 on a harness error."""
    label = '%s %s%s #%d' % (scenario, target, (' ' + condition) if condition else '', rep + 1)
    try:
        rec = run()
    except Exception as e:  # a harness or server failure: recorded, reported, and the run goes on
        results['errors'].append({'scenario': scenario, 'target': target, 'rep': rep, 'condition': condition,
                                  'error': '%s\n%s' % (e, traceback.format_exc()[-3000:])})
        print('  %-40s ERROR %s' % (label, str(e).splitlines()[0] if str(e) else type(e).__name__), flush=True)
        return 1
    results['runs'].append(rec)
    print('  %-40s %s' % (label, summary_line(rec)), flush=True)
    return 0 if rec.get('ok') else 1


def summary_line(r):
    if r['scenario'] == 'idle':
        return ('%d conns in %.0fs, +%.1f MiB (%.1f KiB/conn), idle CPU %.0f ms, new client %.1f ms'
                % (r['connections'], r['connect_seconds'], r['rss_growth_mib'], r['kib_per_conn'] or 0,
                   r['idle_cpu_ms'], r['new_client_ms']))
    if r['scenario'] == 'pageload':
        return ('cold %.0f ms (%d req, %.0f KB, %d conns), login %.0f ms, reload %.0f ms (%d req, %d hashed)'
                % (r['cold']['settled_ms'], r['cold']['requests'], r['cold']['bytes'] / 1000,
                   r['cold']['connections'], r['login']['settled_ms'], r['reload']['settled_ms'],
                   r['reload']['requests'], r['reload']['hashed_requests']))
    fmt = lambda v, f: (f % v) if v is not None else '-'  # noqa: E731
    return ('%8.0f req/s  p50 %s ms  p99 %s ms  %s us/req  %s MiB  backend conns %s  failed %d%s'
            % (r['rps'], fmt(r['p50_ms'], '%.2f'), fmt(r['p99_ms'], '%.1f'), fmt(r['cpu_us_per_req'], '%.1f'),
               fmt(r['peak_rss_mib'], '%.1f'), fmt(r['backend_opened'], '%d'), r['failed'],
               '  (other load %.2f cores)' % r['other_cores'] if (r['other_cores'] or 0) > 0.15 else ''))


if __name__ == '__main__':
    sys.exit(main())
