"""The servers of the benchmark: backends and the proxies under test, started from the configs in
tests/bench/peers/ with ports and paths filled in at run time.

Every server is a process tree (nginx: master + worker; nghttpx: main + worker; h2o: server +
its neverbleed key process) started under `taskset` on the proxy CPU. CPU and memory are summed
over the whole tree.
"""

import gzip
import hashlib
import json
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parents[1]
PEERS = BENCH / 'peers'
sys.path.insert(0, str(REPO / 'tests' / 'integration'))
from harness import Proc, make_cert, free_port, listening_ports, running_procs  # noqa: E402

import measure  # noqa: E402

PYTHON = '/usr/bin/python3'  # Debian's: python3-cherrypy3, python3-h2, python3-matplotlib
API_ACCEPT = 'application/vnd.ceph.api.v1.0+json'
ACCEPT_ENCODING = 'gzip, deflate, br'  # what Chromium sends

# h2front's upstream.max_connections in front of the fast nginx backend. In front of CherryPy it
# is 10 (its thread pool: more connections only queue there). A backend that takes thousands of
# connections gets a bound as large as the load's concurrency, as an operator would set it and as
# many as the peers open (one per concurrent stream: 256 in api-mux), so that the comparison is of
# the proxies and not of their pool sizes. A smaller bound queues requests inside h2front and costs
# it about 1 us per request in api-mux (with 64: 1.04x to 1.10x the best peer in four full runs;
# see README); --fast-max-connections sets another.
FAST_BACKEND_MAX_CONNECTIONS = 256
DASHBOARD_MAX_CONNECTIONS = 10

# The login page's static files, as Chromium fetches them (shared/research/ceph-dashboard-measured.md §3).
LOGIN_ASSETS = [
    'runtime.57d4c22827fd93a5134f.js',
    'polyfills.2068f3f22a496426465b.js',
    'scripts.6bda3fa7e09a87cd4228.js',
    'main.35ec9db61bcbaf2e5786.js',
    'styles.c0c3da54c9c7b1207ad8.css',
    '483.57cfde62253651646349.js',
    '117.9781bbf8cc6a4aaa7e8e.js',
    '281.57d0494f276bf42af928.js',
    'assets/Ceph_Ceph_Logo_with_text_white.svg',
    'ceph_background.e82dd79127290ddbe8cb.gif',
    'forkawesome-webfont.7c20758e3e7c7dff7c8d.woff2?v=1.1.7',
    'favicon.ico',
]
ASSET_200K = '/bench/asset-200k.js'
POLL_PATHS = ['/api/health/minimal', '/api/prometheus/notifications?from=last', '/api/summary']


def render(template, dest, **values):
    """Copy peers/TEMPLATE to dest with every @NAME@ replaced by values['NAME']."""
    text = (PEERS / template).read_text()

    def replace(match):
        key = match.group(1)
        if key not in values:
            raise KeyError('%s needs a value for @%s@' % (template, key))
        return str(values[key])
    text = re.sub(r'@([A-Z_]+)@', replace, text)
    Path(dest).write_text(text)
    return Path(dest)


def spki_hash(cert):
    """base64(sha256(SubjectPublicKeyInfo)): what Chromium's --ignore-certificate-errors-spki-list takes."""
    der = subprocess.run(['openssl', 'x509', '-in', cert, '-pubkey', '-noout'], check=True,
                         capture_output=True).stdout
    der = subprocess.run(['openssl', 'pkey', '-pubin', '-outform', 'der'], input=der, check=True,
                         capture_output=True).stdout
    import base64
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class Workspace:
    """The run's directory, certificate and CPU placement."""

    def __init__(self, workdir, h2front_bin, dist, www, proxy_cpu=None, load_cpu=None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cert, self.key = make_cert(self.dir)
        self.cert_and_key = self.dir / 'cert-and-key.pem'
        self.cert_and_key.write_text(Path(self.cert).read_text() + Path(self.key).read_text())
        self.spki = spki_hash(self.cert)
        self.h2front_bin = h2front_bin
        self.dist = Path(dist)
        self.www = Path(www)
        self.proxy_cpu = proxy_cpu
        self.load_cpu = load_cpu
        self.nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.serial = 0

    def subdir(self, name):
        self.serial += 1
        path = self.dir / ('%03d-%s' % (self.serial, name))
        path.mkdir(parents=True, exist_ok=True)
        return path

    def pinned(self, argv, cpu):
        return (['taskset', '-c', str(cpu)] if cpu is not None else []) + [str(a) for a in argv]


class Server:
    """A started process tree listening on `port` (TLS + HTTP/2 for proxies)."""

    def __init__(self, name, proc, port, workdir, owned=True):
        self.name = name
        self.proc = proc
        self.port = port
        self.workdir = workdir
        self.owned = owned  # False for "direct": the backend itself, stopped elsewhere

    def pids(self):
        return measure.process_tree(self.proc.pid)

    def alive(self):
        return self.proc.returncode is None

    def log_tail(self, lines=30):
        text = self.proc.log()
        for extra in sorted(Path(self.workdir).glob('*.log')):
            text += '\n--- %s\n%s' % (extra.name, extra.read_text(errors='replace'))
        return '\n'.join(text.splitlines()[-lines:])

    def stop(self):
        if self.owned:
            self.proc.stop(timeout=10)


# ---------------------------------------------------------------------------------------------
# The web root: the dashboard build with precompressed siblings, plus the API answers.


WWW_VERSION = '3'  # bump when prepare_www changes what it writes


def prepare_www(dist, cache_dir):
    """cache_dir/www: en-US of the build with .gz (gzip -9) and .br (brotli -q 11) siblings kept
    only where smaller, the API answers of the fast backend, and a 200 KiB asset. Made once;
    redone when the build or this function changes."""
    dist = Path(dist)
    cache_dir = Path(cache_dir)
    www = cache_dir / 'www'
    lang = dist / 'en-US'
    stamp_text = WWW_VERSION + '\n' + '\n'.join(
        '%s %d' % (p.relative_to(lang), p.stat().st_size) for p in sorted(lang.rglob('*')) if p.is_file())
    stamp = cache_dir / 'www.stamp'
    if stamp.exists() and stamp.read_text() == stamp_text and www.is_dir():
        return www
    partial = cache_dir / 'www.partial'
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(lang, partial)
    for path in sorted(partial.rglob('*')):
        if path.is_file():
            precompress(path, gzip_level=9)
    api = partial / 'api'
    (api / 'health').mkdir(parents=True)
    (api / 'prometheus').mkdir(parents=True)
    sys.path.insert(0, str(REPO / 'tests' / 'backend'))
    import dashboard  # noqa: E402  (for the same /api/health/minimal the demo dashboard sends)
    (api / 'health' / 'minimal').write_bytes(json.dumps(dashboard.build_health_minimal()).encode())
    (api / 'summary').write_bytes(json.dumps(
        {'health_status': 'HEALTH_OK', 'mgr_id': 'x', 'mgr_host': 'http://127.0.0.1:8090/',
         'have_mon_connection': True, 'executing_tasks': [], 'finished_tasks': [],
         'version': dashboard.CEPH_VERSION, 'rbd_mirroring': {'warnings': 0, 'errors': 0}}).encode())
    (api / 'prometheus' / 'notifications').write_bytes(b'[]')
    for path in (api / 'health' / 'minimal', api / 'summary'):
        precompress(path, gzip_level=6, brotli=False)  # as the dashboard's own gzip would send them
    bench = partial / 'bench'
    bench.mkdir()
    # 200 KiB of real JavaScript, no compressed sibling: the proxy moves 200 KiB per request.
    (bench / 'asset-200k.js').write_bytes((lang / LOGIN_ASSETS[3]).read_bytes()[:200 * 1024])
    shutil.rmtree(www, ignore_errors=True)
    partial.rename(www)
    stamp.write_text(stamp_text)
    return www


def precompress(path, gzip_level, brotli=True):
    data = path.read_bytes()
    gz = gzip.compress(data, compresslevel=gzip_level, mtime=0)
    if len(gz) < len(data):
        Path(str(path) + '.gz').write_bytes(gz)
    if brotli:
        br = subprocess.run(['brotli', '-c', '-q', '11', str(path)], check=True,
                            capture_output=True).stdout
        if len(br) < len(data):
            Path(str(path) + '.br').write_bytes(br)


# ---------------------------------------------------------------------------------------------
# Backends.


class FastBackend:
    """nginx, one worker, serving the web root over HTTP/1.1 keep-alive on `port`, and over TLS +
    HTTP/2 on `direct_port` (the "direct" row). accepted() reads stub_status."""

    kind = 'fast'

    def __init__(self, ws):
        self.ws = ws
        workdir = ws.subdir('backend-nginx')
        self.port, self.direct_port = free_port(), free_port()
        (workdir / 'backend-nginx-tmp').mkdir(exist_ok=True)
        conf = render('backend-nginx.conf.in', workdir / 'backend-nginx.conf', WORKDIR=workdir,
                      PORT=self.port, DIRECT_PORT=self.direct_port, WWW=ws.www, CERT=ws.cert,
                      KEY=ws.key, NOFILE=ws.nofile, WORKER_CONNECTIONS=ws.nofile - 100)
        argv = ws.pinned(['nginx', '-p', workdir, '-c', conf, '-e', workdir / 'backend-nginx.error.log'],
                         ws.load_cpu)
        self.proc = Proc('backend-nginx', argv, workdir)
        self.proc.wait_listening([self.port, self.direct_port])
        self.workdir = workdir

    def pids(self):
        return measure.process_tree(self.proc.pid)

    def accepted(self):
        """Connections nginx accepted so far, not counting the one asking."""
        with urllib.request.urlopen('http://127.0.0.1:%d/_bench/stub_status' % self.port, timeout=5) as r:
            text = r.read().decode()
        return int(text.splitlines()[2].split()[0]) - 1  # "accepts handled requests" line

    def direct(self):
        return Server('direct', self.proc, self.direct_port, self.workdir, owned=False)

    def check_headers(self):
        return []

    def headers_args(self):
        return []

    def stop(self):
        self.proc.stop()


class DashboardBackend:
    """tests/backend/dashboard.py (CherryPy, 10 threads, keep-alive limit 10) under
    dashboard_counting.py, which counts accepted connections."""

    kind = 'dashboard'

    def __init__(self, ws, login_delay=0.25):
        self.ws = ws
        workdir = ws.subdir('dashboard')
        argv = ws.pinned([PYTHON, BENCH / 'dashboard_counting.py', '--control-port', '0', '--port', '0',
                          '--dist', ws.dist, '--login-delay', login_delay], ws.load_cpu)
        self.proc = Proc('dashboard', argv, workdir)
        self.port = int(self.proc.wait_for_line(r'^ready on http://[^ ]*:(\d+)$', timeout=30).group(1))
        self.control = int(self.proc.wait_for_line(r'^control on http://[^ ]*:(\d+)$').group(1))
        self.workdir = workdir
        self.token = self.login()

    def pids(self):
        return measure.process_tree(self.proc.pid)

    def login(self):
        body = json.dumps({'username': 'admin', 'password': 'admin'}).encode()
        req = urllib.request.Request('http://127.0.0.1:%d/api/auth' % self.port, data=body,
                                     headers={'Accept': API_ACCEPT, 'Content-Type': 'application/json'})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())['token']

    def accepted(self):
        with urllib.request.urlopen('http://127.0.0.1:%d/accepted' % self.control, timeout=5) as r:
            return int(r.read())

    def check_headers(self):
        """What every API request needs: the versioned Accept header and the login cookie."""
        return ['accept: ' + API_ACCEPT, 'cookie: token=' + self.token]

    def headers_args(self):
        args = []
        for h in self.check_headers():
            args += ['-H', h]
        return args

    def stop(self):
        self.proc.stop()


class ConnectionSampler(threading.Thread):
    """Samples /proc/net/tcp{,6} for established connections to a backend port; max_open is the
    most seen at once (connections living shorter than the interval can be missed)."""

    def __init__(self, port, interval=0.1):
        super().__init__(daemon=True)
        self.hex_port = ':%04X' % port
        self.interval = interval
        self.max_open = 0
        self.halt = threading.Event()

    def count(self):
        n = 0
        for table in ('/proc/net/tcp', '/proc/net/tcp6'):
            try:
                with open(table) as f:
                    next(f)
                    for row in f:
                        cols = row.split(None, 4)
                        if cols[3] == '01' and cols[1].endswith(self.hex_port):
                            n += 1
            except OSError:
                pass
        return n

    def run(self):
        while not self.halt.is_set():
            self.max_open = max(self.max_open, self.count())
            self.halt.wait(self.interval)

    def stop(self):
        self.halt.set()
        self.join()
        return self.max_open


# ---------------------------------------------------------------------------------------------
# Proxies. Each start_* returns a Server once it answers a request.


def curl_status(port, path, headers=(), timeout=5):
    """(status, response headers as text) of an HTTPS GET, or (0, error)."""
    argv = ['curl', '-sk', '--http2', '-o', '/dev/null', '-D', '-', '--max-time', str(timeout)]
    for h in headers:
        argv += ['-H', h]
    argv.append('https://127.0.0.1:%d%s' % (port, path))
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        return 0, result.stderr
    status_line = result.stdout.split('\n', 1)[0].split()
    return int(status_line[1]) if len(status_line) > 1 else 0, result.stdout


def tls_parameters(port):
    """'TLSv1.3 TLS_AES_128_GCM_SHA256' as negotiated with Chromium's and h2load's cipher order
    (AES-128 first); the handshake alone, so no request reaches the backend."""
    r = subprocess.run(['openssl', 's_client', '-connect', '127.0.0.1:%d' % port, '-alpn', 'h2', '-ciphersuites',
                        'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256'],
                       input=b'', capture_output=True, timeout=10)
    m = re.search(r'^New, (\S+), Cipher is (\S+)', r.stdout.decode(errors='replace'), re.M)
    return '%s %s' % m.groups() if m else 'unknown'


def wait_ready(server, check_path, headers=(), want=None, timeout=60):
    """Until an HTTPS request to the server answers 2xx/3xx (and `want` appears in the headers)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError('%s exited at start:\n%s' % (server.name, server.log_tail()))
        if set([server.port]) <= listening_ports(server.proc.pid) or not server.owned:
            status, text = curl_status(server.port, check_path, headers)
            last = (status, text)
            if 200 <= status < 400 and (want is None or want in text.lower()):
                return server
        time.sleep(0.1)
    raise RuntimeError('%s not ready after %ds (last answer: %r)\n%s'
                       % (server.name, timeout, last, server.log_tail()))


# Experiment targets, run when --targets names them and in the smoke run: libh2o's own handlers
# (peers/libh2o-proxy.c) built against each of Debian's two libh2o flavours, to tell the event
# loop's share in a difference between h2front (libuv) and the h2o binary (evloop): its proxy
# handler in front of the backend, or its file handler serving the precompressed build.
LIBH2O_FLAVOURS = {
    'uv': ('libh2o-dev', ['-lh2o', '-luv']),
    'evloop': ('libh2o-evloop-dev', ['-DH2O_USE_EPOLL=1', '-lh2o-evloop']),
}
LIBH2O_PROXIES = {'libh2o-uv': 'uv', 'libh2o-evloop': 'evloop'}
LIBH2O_FILE_SERVERS = {'libh2o-uv-files': 'uv', 'libh2o-evloop-files': 'evloop'}
LIBH2O_TARGETS = {**LIBH2O_PROXIES, **LIBH2O_FILE_SERVERS}


def build_libh2o_peer(ws, flavour):
    """Compile peers/libh2o-proxy.c against libh2o's `flavour` into the work directory, once."""
    package, flags = LIBH2O_FLAVOURS[flavour]
    binary = ws.dir / ('libh2o-peer-' + flavour)
    if not binary.exists():
        if subprocess.run(['dpkg-query', '-W', package], capture_output=True).returncode != 0:
            raise RuntimeError('libh2o\'s %s flavour needs Debian\'s %s: apt-get install %s'
                               % (flavour, package, package))
        subprocess.run(['cc', '-O2', '-Wall', '-Wextra', '-Werror', '-o', binary, BENCH / 'peers' / 'libh2o-proxy.c',
                        *flags, '-lssl', '-lcrypto', '-lz'], check=True)
    return binary


def start_target(ws, name, backend, check_path, check_headers=()):
    """Start the target `name` in front of `backend` and wait until it answers."""
    if name == 'direct':
        return wait_ready(backend.direct(), check_path, check_headers)
    workdir = ws.subdir(name)
    port = free_port()
    common = dict(WORKDIR=workdir, PORT=port, BACKEND_PORT=backend.port, CERT=ws.cert, KEY=ws.key,
                  MAX_CLIENTS=ws.nofile - 100, NOFILE=ws.nofile, WORKER_CONNECTIONS=ws.nofile - 100,
                  STATIC_ROOT=ws.www)
    want = None
    if name in ('h2front', 'h2front-assets', 'h2front-assets-no103'):
        assets = name.startswith('h2front-assets')
        max_conns = DASHBOARD_MAX_CONNECTIONS if backend.kind == 'dashboard' else FAST_BACKEND_MAX_CONNECTIONS
        conf = render('h2front.yaml.in', workdir / 'h2front.yaml', MAX_CONNECTIONS=max_conns,
                      ASSETS_ROOT=ws.dist if assets else '~', EARLY_HINTS=str(not name.endswith('no103')).lower(),
                      HEALTH_PATH='/' if backend.kind == 'dashboard' else '/api/summary', **common)
        argv = [ws.h2front_bin, '-c', conf]
        if assets:  # ready once the build is in memory: the backend never sends brotli
            want = 'content-encoding: br'
    elif name in LIBH2O_TARGETS:
        files = name in LIBH2O_FILE_SERVERS
        serve = str(ws.www) if files else 'http://127.0.0.1:%d/' % backend.port
        argv = [build_libh2o_peer(ws, LIBH2O_TARGETS[name]), port, ws.cert, ws.key, serve]
        if files:  # ready once it serves the .br files
            want = 'content-encoding: br'
    elif name in ('h2o', 'h2o-static'):
        conf = render(name + '.yaml.in', workdir / 'h2o.yaml', **common)
        argv = ['h2o', '-c', conf]
        if name == 'h2o-static':
            want = 'content-encoding: br'
    elif name in ('nginx', 'nginx-static'):
        for tmp in ('nginx-client-tmp', 'nginx-proxy-tmp'):
            (workdir / tmp).mkdir(exist_ok=True)
        # Idle connections cached per worker: CherryPy keeps at most 10 itself; in front of the fast
        # backend, more than the load's concurrency, or nginx closes and reopens them all the time.
        keepalive = DASHBOARD_MAX_CONNECTIONS if backend.kind == 'dashboard' else 1024
        conf = render(name + '.conf.in', workdir / 'nginx.conf', KEEPALIVE=keepalive, **common)
        argv = ['nginx', '-p', workdir, '-c', conf, '-e', workdir / 'nginx.error.log']
    elif name in ('haproxy', 'haproxy-mc10'):
        conf = render('haproxy.cfg.in', workdir / 'haproxy.cfg', CERT_AND_KEY=ws.cert_and_key,
                      SERVER_MAXCONN='maxconn 10' if name == 'haproxy-mc10' else '', **common)
        argv = ['haproxy', '-f', conf, '-db']
    elif name == 'nghttpx':
        conf = render('nghttpx.conf.in', workdir / 'nghttpx.conf', **common)
        argv = ['nghttpx', '--conf=%s' % conf]
    else:
        raise ValueError('unknown target %s' % name)
    proc = Proc(name, ws.pinned(argv, ws.proxy_cpu), workdir)
    server = Server(name, proc, port, workdir)
    if want:
        check_headers = [*check_headers, 'accept-encoding: br']
    try:
        return wait_ready(server, check_path, check_headers, want, timeout=180 if want else 60)
    except Exception:
        server.stop()
        raise
