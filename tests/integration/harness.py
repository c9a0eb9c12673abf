"""Shared helpers for h2front's integration tests.

Tests start real processes (the h2front binary, tests/backend/testserver.py, the demo dashboard)
on loopback and talk to them with real clients (curl, and the small HTTP/2 client below). Every
process goes to a Proc, which captures its output to files in the test's tmp_path and is killed
at the end of the test, even when the test fails (see conftest.py), or when pytest itself dies.

Run with Debian's interpreter (/usr/bin/pytest-3 or /usr/bin/python3 -m pytest): python3-h2 and
python3-cherrypy3 live there, not in other Pythons on PATH.
"""

import ctypes
import itertools
import json
import os
import re
import select
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

REPO = Path(os.environ.get('H2FRONT_SOURCE_ROOT') or Path(__file__).resolve().parents[2])
BACKEND_DIR = REPO / 'tests' / 'backend'
DASHBOARD_DIST = REPO / '.cache' / 'dashboard-dist'
PYTHON = '/usr/bin/python3'  # Debian's, which has python3-cherrypy3


def _default_h2front_bin():
    """$H2FRONT_BIN (meson sets it), else a binary in the usual build directory, else None."""
    if os.environ.get('H2FRONT_BIN'):
        return os.environ['H2FRONT_BIN']
    built = REPO / 'build' / 'src' / 'h2front'
    return str(built) if built.exists() else None


H2FRONT_BIN = _default_h2front_bin()

# Every h2front the tests start runs under this command when set, e.g. for a sweep of the whole
# suite under memcheck: H2FRONT_WRAPPER='valgrind --error-exitcode=99 --log-file=/tmp/vg.%p'
H2FRONT_WRAPPER = shlex.split(os.environ.get('H2FRONT_WRAPPER', ''))

# Whether h2front's RSS is h2front's own: not when it runs under a wrapper (valgrind), nor when it
# is built with sanitizers (meson sets H2FRONT_SANITIZED from b_sanitize): AddressSanitizer keeps
# freed memory in quarantine (256 MB) and adds shadow memory. Tests measure memory only if so.
RSS_IS_H2FRONTS = not (H2FRONT_WRAPPER or os.environ.get('H2FRONT_SANITIZED'))

sys.path.insert(0, str(BACKEND_DIR))
from testserver import chunk_byte, pattern_bytes  # noqa: E402  (re-exported for tests)
from dashboard import SECURITY_HEADERS as _DASHBOARD_RESPONSE_CONFIG  # noqa: E402

# What the dashboard adds to every response, errors included: h2front adds the same to every
# answer it makes itself (files from memory, its own errors). {header name: value}
DASHBOARD_SECURITY_HEADERS = {key.rsplit('.', 1)[1]: value for key, value in _DASHBOARD_RESPONSE_CONFIG.items()
                              if not key.endswith('.server')}


def security_header_problems(response):
    """What differs from the dashboard's security headers in a response (anything with .header(name))."""
    return ['%s: %r' % (name, response.header(name)) for name, value in DASHBOARD_SECURITY_HEADERS.items()
            if response.header(name) != value]

__all__ = ['REPO', 'H2FRONT_BIN', 'RSS_IS_H2FRONTS', 'free_port', 'make_cert', 'Proc', 'start_testserver',
           'start_dashboard', 'start_h2front', 'curl', 'curl_json', 'h2_connection', 'H2Client',
           'H2Response', 'open_and_reset', 'read_until_closed', 'send_header_block', 'pattern_bytes',
           'chunk_byte', 'API_ACCEPT', 'DASHBOARD_SECURITY_HEADERS', 'security_header_problems']

API_ACCEPT = 'application/vnd.ceph.api.v1.0+json'


def free_port():
    """A TCP port free on 127.0.0.1 right now. Another process may take it before it is used:
    prefer `--port 0` and the announced port where the program supports it."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def make_cert(directory):
    """A self-signed P-256 certificate for localhost and 127.0.0.1: (cert_path, key_path).

    Made once per directory; later calls return the same files."""
    directory = Path(directory)
    cert, key = directory / 'cert.pem', directory / 'key.pem'
    if not (cert.exists() and key.exists()):
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                        'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost',
                        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '2',
                        '-keyout', str(key), '-out', str(cert)],
                       check=True, capture_output=True)
    return str(cert), str(key)


# ---------------------------------------------------------------------------------------------
# Processes.

_RUNNING = set()  # every Proc not yet stopped; conftest.py and atexit stop the leftovers
STARTED = []      # every Proc ever started, in order; conftest.py inspects the h2front ones after each test


SANITIZER_REPORT = re.compile(r'(ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer)')


def h2front_health_problems(proc):
    """What went wrong inside an h2front the test has stopped: a sanitizer report, a crash, or an
    exit other than the clean one SIGTERM gives. Empty when it ran clean."""
    problems = []
    log = proc.log()
    if SANITIZER_REPORT.search(log):
        problems.append('sanitizer report in h2front\'s output')
    status = proc.popen.returncode
    if status is not None and status != 0 and not getattr(proc, 'expected_exit', False):
        problems.append('h2front exited with status %s' % status)
    return problems


def running_procs():
    return set(_RUNNING)


def _die_with_parent():
    """In the child, before exec: have the kernel SIGKILL it when pytest dies, so a crashed or
    killed test run leaves no servers holding ports. (Strictly, when the thread that started it
    ends: start processes from the main thread, as tests and fixtures do.)"""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Proc:
    """A subprocess with stdout and stderr in files under `workdir`, stopped by SIGTERM and, if
    it lingers for 5 s, SIGKILL. Use as a context manager or call stop()."""

    def __init__(self, name, argv, workdir, env=None):
        self.name = name
        self.argv = [str(arg) for arg in argv]
        self.workdir = Path(workdir)
        self.stdout_path = self._unused_path('.stdout')
        self.stderr_path = self.stdout_path.with_suffix('.stderr')
        with open(self.stdout_path, 'wb') as out, open(self.stderr_path, 'wb') as err:
            self.popen = subprocess.Popen(self.argv, stdout=out, stderr=err,
                                          stdin=subprocess.DEVNULL, cwd=self.workdir,
                                          env=env, preexec_fn=_die_with_parent)
        _RUNNING.add(self)
        STARTED.append(self)

    def _unused_path(self, suffix):
        for n in range(1, 1000):
            path = self.workdir / ('%s%s%s' % (self.name, '' if n == 1 else '-%d' % n, suffix))
            if not path.exists():
                return path
        raise RuntimeError('too many %s processes in %s' % (self.name, self.workdir))

    @property
    def pid(self):
        return self.popen.pid

    @property
    def returncode(self):
        return self.popen.poll()

    def stdout(self):
        return self.stdout_path.read_text(errors='replace')

    def stderr(self):
        return self.stderr_path.read_text(errors='replace')

    def log(self):
        """Everything the process printed, stdout then stderr, for assertion messages."""
        return '--- %s stdout\n%s--- %s stderr\n%s' % (self.name, self.stdout(),
                                                        self.name, self.stderr())

    def wait_for_line(self, pattern, timeout=10):
        """Wait until a stdout line matches `pattern`; returns the match."""
        regex = re.compile(pattern)

        def first_match():
            for line in self.stdout().splitlines():
                match = regex.search(line)
                if match:
                    return match
            return None
        return self._wait(first_match, timeout, 'a stdout line matching %r' % pattern)

    def wait_for_log(self, pattern, timeout=10):
        """Wait until stderr (where h2front logs, and testserver.py with --verbose) matches
        `pattern`; returns the match."""
        regex = re.compile(pattern)
        return self._wait(lambda: regex.search(self.stderr()), timeout, 'a stderr line matching %r' % pattern)

    def wait_listening(self, ports, timeout=10):
        """Wait until this process has a listening TCP socket on each port."""
        wanted = set(ports)
        self._wait(lambda: wanted <= listening_ports(self.pid), timeout,
                   'listening on ports %s' % sorted(wanted))

    def _wait(self, probe, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            result = probe()
            if result:
                return result
            if self.returncode is not None:
                raise RuntimeError('%s exited with status %s before %s\n%s'
                                   % (self.name, self.returncode, what, self.log()))
            if time.monotonic() > deadline:
                raise TimeoutError('%s not %s after %ss\n%s' % (self.name, what, timeout,
                                                                 self.log()))
            time.sleep(0.02)

    def stop(self, timeout=5):
        """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        _RUNNING.discard(self)
        return self.popen.returncode

    def kill(self):
        """SIGKILL at once, as when a mgr dies without cleaning up."""
        self.popen.kill()
        self.popen.wait()
        _RUNNING.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return '<Proc %s pid %d>' % (self.name, self.pid)


def listening_ports(pid):
    """TCP ports on which process `pid` has a socket in LISTEN state, read from /proc.

    This proves the kernel accepts connections there without opening one: a probe connection
    would show up in h2front's logs and connection counts, and on a TLS port as a failed
    handshake."""
    inodes = set()
    fd_dir = Path('/proc/%d/fd' % pid)
    try:
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue  # closed meanwhile
            if target.startswith('socket:['):
                inodes.add(target[8:-1])
    except OSError:
        return set()  # the process is gone
    ports = set()
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        with open(table) as f:
            for row in f.read().splitlines()[1:]:
                cols = row.split()
                if cols[3] == '0A' and cols[9] in inodes:  # 0A is TCP_LISTEN
                    ports.add(int(cols[1].rsplit(':', 1)[1], 16))
    return ports


# ---------------------------------------------------------------------------------------------
# Backends.


def _flags(options):
    """{'idle_close': 5, 'verbose': True} -> ['--idle-close', '5', '--verbose']."""
    argv = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        argv.append('--' + key.replace('_', '-'))
        if value is not True:
            argv.append(str(value))
    return argv


def _announced_port(proc, prefix):
    return int(proc.wait_for_line(r'^%s http://[^ ]*:(\d+)$' % prefix).group(1))


class Backend:
    """A started backend: .port, .url ('http://127.0.0.1:PORT'), .proc, .log(), .stop()."""

    def __init__(self, proc, host, port):
        self.proc = proc
        self.host = host
        self.port = port
        self.url = 'http://%s:%d' % (host, port)

    def log(self):
        return self.proc.log()

    def stop(self):
        return self.proc.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class TestServer(Backend):
    """tests/backend/testserver.py. stats() and reset() use its control port, so the numbers
    they return contain nothing of the asking itself."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, proc, host, port, control_port):
        super().__init__(proc, host, port)
        self.control_url = 'http://%s:%d' % (host, control_port)

    def stats(self):
        """{open, max_open, accepted, requests}, read directly (not through the proxy)."""
        return _http_json(self.control_url + '/_stats')

    def reset(self):
        """Zero accepted and requests; max_open restarts from the connections open now."""
        return _http_json(self.control_url + '/_stats/reset', data=b'')


def start_testserver(tmp_path, **options):
    """Start testserver.py; options become flags (idle_close=5, max_keepalive=10, verbose=True).

    Ports are picked by the server itself (port 0) and read from its announcement, so two
    tests can never race for the same port."""
    options.setdefault('port', 0)
    options.setdefault('control_port', 0)
    proc = Proc('testserver', [PYTHON, BACKEND_DIR / 'testserver.py', *_flags(options)], tmp_path)
    control = _announced_port(proc, 'control on')
    return TestServer(proc, '127.0.0.1', _announced_port(proc, 'ready on'), control)


_DIST_READY = False


def ensure_dashboard_dist():
    """Fetch the real frontend build into REPO/.cache/dashboard-dist once (a no-op if there)."""
    global _DIST_READY
    if not _DIST_READY:
        subprocess.run(['bash', str(BACKEND_DIR / 'get-dashboard-build.sh'), str(DASHBOARD_DIST)],
                       check=True, capture_output=True)
        _DIST_READY = True
    return DASHBOARD_DIST


class Dashboard(Backend):
    """tests/backend/dashboard.py, with helpers for its demo login and runtime mode switch."""

    def set_mode(self, mode=None, active_url=None, standby_status=None):
        """Switch between active, standby-redirect, standby-error and standby-nowhere."""
        body = {key: value for key, value in (('mode', mode), ('active_url', active_url),
                                              ('standby_status', standby_status))
                if value is not None}
        return _http_json(self.url + '/_demo/mode', data=json.dumps(body).encode())

    def login(self, username='admin', password='admin'):
        """Log in directly (not through the proxy); returns the token for `Cookie: token=`."""
        body = json.dumps({'username': username, 'password': password}).encode()
        return _http_json(self.url + '/api/auth', data=body, accept=API_ACCEPT)['token']


def start_dashboard(tmp_path, **options):
    """Start the demo dashboard; options become flags (idle_timeout=10, threads=10,
    mode='standby-redirect', active_url=..., login_delay=0, ...)."""
    options.setdefault('port', 0)
    options.setdefault('dist', ensure_dashboard_dist())
    proc = Proc('dashboard', [PYTHON, BACKEND_DIR / 'dashboard.py', *_flags(options)], tmp_path)
    return Dashboard(proc, '127.0.0.1', _announced_port(proc, 'ready on'))


def _http_json(url, data=None, accept='application/json'):
    """A direct HTTP/1.1 request with `Connection: close`, so it leaves no connection behind."""
    request = urllib.request.Request(url, data=data, headers={
        'Accept': accept, 'Content-Type': 'application/json', 'Connection': 'close'})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


# ---------------------------------------------------------------------------------------------
# h2front.


class H2front:
    """A running h2front: .proc, .pid, .ports, .config_path, .log(), .stop()."""

    def __init__(self, proc, config_path, ports):
        self.proc = proc
        self.config_path = config_path
        self.ports = ports

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        return self.proc.log()

    def stop(self):
        return self.proc.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


LISTEN_ADDRESS_RE = re.compile(r'''^\s*(?:-\s*)?address:\s*["']?[^"'\s#]*:(\d+)["']?''', re.M)


def listen_ports_in(yaml_text):
    """The ports of the `address:` entries (only listeners have that key). A regex, because
    Debian's python3 has no YAML module by default; pass ports= for anything it cannot read."""
    return [int(port) for port in LISTEN_ADDRESS_RE.findall(yaml_text)]


def start_h2front(tmp_path, yaml_text, ports=None, args=(), timeout=10, env=None, wrapper=()):
    """Write yaml_text to tmp_path/h2front.yaml, run `$H2FRONT_BIN -c FILE`, and wait until
    h2front listens on every port (from `ports`, else from the YAML's listen addresses).
    `wrapper` goes before the binary on the command line (valgrind and its options).

    Raises, with h2front's output, if it exits or is not listening within `timeout`."""
    if not H2FRONT_BIN:
        raise RuntimeError('set H2FRONT_BIN to the h2front binary (meson test does)')
    tmp_path = Path(tmp_path)
    config = tmp_path / 'h2front.yaml'
    n = 2
    while config.exists():  # a second instance in the same test gets its own file
        config = tmp_path / ('h2front-%d.yaml' % n)
        n += 1
    config.write_text(yaml_text)
    ports = list(ports) if ports is not None else listen_ports_in(yaml_text)
    if not ports:
        raise ValueError('no listen ports found in the YAML; pass ports=')
    proc = Proc('h2front', [*(wrapper or H2FRONT_WRAPPER), H2FRONT_BIN, '-c', config, *args], tmp_path, env=env)
    proc.wait_listening(ports, timeout)
    return H2front(proc, config, ports)


# ---------------------------------------------------------------------------------------------
# A configured h2front for tests that need one TLS and one plain listener in front of one backend.

def render_yaml(sections, indent=0):
    """{'upstream': {'timeouts': {'first_byte': '500ms'}}} -> YAML lines (maps of scalars only)."""
    lines = []
    for key, value in sections.items():
        if isinstance(value, dict):
            lines.append("%s%s:" % (" " * indent, key))
            lines += render_yaml(value, indent + 2)
        else:
            lines.append("%s%s: %s" % (" " * indent, key, value))
    return lines


class Front:
    """A started h2front with a TLS listener (.port) and a plain one (.plain_port), in front of
    `backend` (a started testserver, or a URL). Health probes run once at start only (interval 1h)
    unless the test says otherwise; with settle, the constructor waits until that probe found the
    backend active, then resets a testserver's counters so they show only what the test does (the
    probe's connection may stay open and idle in the pool)."""

    def __init__(self, h2front, backend, settle=True, **sections):
        backend_url = backend if isinstance(backend, str) else backend.url
        sections.setdefault("log", {"level": "debug"})
        sections.setdefault("health_check", {"interval": "1h"})
        self.port, self.plain_port = free_port(), free_port()
        text = textwrap.dedent(f"""\
            listen:
              - address: "127.0.0.1:{self.port}"
                tls: self-signed
              - address: "127.0.0.1:{self.plain_port}"
            backends:
              - url: {backend_url}
            """) + "\n".join(render_yaml(sections)) + "\n"
        self.h2front = h2front(text)
        self.proc = self.h2front.proc
        if settle:
            deadline = time.monotonic() + 5
            while " -> active " not in self.proc.stderr():
                assert time.monotonic() < deadline, "backend not found active\n" + self.h2front.log()
                time.sleep(0.02)
            if not isinstance(backend, str):
                backend.reset()

    def url(self, path, tls=True):
        if tls:
            return "https://127.0.0.1:%d%s" % (self.port, path)
        return "http://127.0.0.1:%d%s" % (self.plain_port, path)

    def log(self):
        return self.h2front.log()

    def alive(self):
        return self.proc.returncode is None



# ---------------------------------------------------------------------------------------------
# curl.


def curl(*args, timeout=30):
    """Run `curl -sS --max-time 30 ARGS...`; returns the CompletedProcess (stdout as bytes).

    The check on returncode is the caller's: some tests expect curl to fail."""
    return subprocess.run(['curl', '-sS', '--max-time', str(timeout), *map(str, args)],
                          capture_output=True, timeout=timeout + 10)


def curl_json(*args, timeout=30):
    """curl, asserting success, and the body parsed as JSON."""
    result = curl(*args, timeout=timeout)
    assert result.returncode == 0, 'curl %s failed (%d): %s' % (
        ' '.join(map(str, args)), result.returncode, result.stderr.decode(errors='replace'))
    return json.loads(result.stdout)


# ---------------------------------------------------------------------------------------------
# A small HTTP/2 client on python3-h2, for what curl cannot do: many streams on one connection,
# exact control over request headers, resets, pushes and informational responses.


_STREAM_ENDS = itertools.count()


@dataclass
class H2Response:
    """One stream's outcome. Unpacks as (status, headers, body).

    status is None when the stream was reset before a response head (see `reset`)."""
    status: int = None
    headers: list = field(default_factory=list)  # [(name, value)] as received, lowercase names
    body: bytes = b''
    reset: int = None           # RST_STREAM error code, if the server reset the stream
    informational: list = field(default_factory=list)  # [(status, headers)], e.g. 103 hints
    trailers: list = field(default_factory=list)
    path: str = None            # the request's :path (for pushes: the promised path)
    ended: bool = False
    end_order: int = None       # 0, 1, 2, ... in the order the streams ended, over the whole run
    received: bytearray = field(default_factory=bytearray, repr=False)  # body so far

    def finish(self, reset=None):
        self.body, self.reset, self.ended = bytes(self.received), reset, True
        self.end_order = next(_STREAM_ENDS)

    def __iter__(self):
        return iter((self.status, self.headers, self.body))

    def header(self, name):
        """The last value of a response header (name matched case-insensitively), or None."""
        values = self.header_values(name)
        return values[-1] if values else None

    def header_values(self, name):
        name = name.lower()
        return [value for key, value in self.headers if key == name]


class H2Client:
    """One TLS connection speaking HTTP/2 (ALPN h2, certificate not verified).

    requests() sends many requests concurrently (as many streams as the server allows at once;
    the rest wait for a free stream), feeds request bodies within flow-control windows, returns
    received data to the window so large bodies complete, and collects server pushes in .pushes.
    """

    def __init__(self, port, host='127.0.0.1', server_name='localhost', timeout=10.0,
                 enable_push=True, window=16 * 1024 * 1024):
        self.authority = '%s:%d' % (server_name, port)
        self.timeout = timeout
        self.sock = self._connect_tls(host, port, server_name)
        config = h2.config.H2Configuration(client_side=True, header_encoding='utf-8')
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.ENABLE_PUSH: int(enable_push),
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.h2.initiate_connection()
        # The connection window starts at 64 KiB whatever SETTINGS say; open it to match.
        self.h2.increment_flow_control_window(window - 65535)
        self._flush()
        self.streams = {}   # stream id -> H2Response, for every stream of this connection
        self.pushes = []    # H2Response of every pushed stream, in promise order
        self.goaway = None  # the ConnectionTerminated event, once the server sent GOAWAY
        self._await_server_settings()

    def _await_server_settings(self):
        """Read until the server's SETTINGS arrive, so the first requests() knows its
        MAX_CONCURRENT_STREAMS instead of assuming the unlimited default."""
        while True:
            events = self._receive_events('the server SETTINGS frame')
            if any(isinstance(e, h2.events.RemoteSettingsChanged) for e in events):
                self._flush()  # our SETTINGS ack
                return

    def _receive_events(self, waiting_for):
        """One read from the socket, fed to h2; returns the events.

        The timeout is for silence, not for the whole exchange: a 50 MB body that keeps
        arriving is fine, a server that says nothing for `timeout` seconds is not."""
        if not self.sock.pending():  # TLS may hold decrypted bytes select() cannot see
            readable, _, _ = select.select([self.sock], [], [], self.timeout)
            if not readable:
                raise TimeoutError('nothing received for %ss; waiting for %s'
                                   % (self.timeout, waiting_for))
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError('server closed the connection; waiting for %s' % waiting_for)
        return self.h2.receive_data(data)

    def _connect_tls(self, host, port, server_name):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(['h2'])
        raw = socket.create_connection((host, port), timeout=self.timeout)
        # Frames go out as soon as they are ready; otherwise Nagle's algorithm and delayed ACKs
        # add ~40 ms to every flow-control round trip and a 10 MiB upload takes seconds.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = context.wrap_socket(raw, server_hostname=server_name)
        if sock.selected_alpn_protocol() != 'h2':
            sock.close()
            raise ConnectionError('server did not negotiate h2 (ALPN: %r)'
                                  % sock.selected_alpn_protocol())
        return sock

    def request(self, method, path, headers=(), body=None, content_length=True):
        """One request; returns its H2Response."""
        return self.requests([(method, path, headers, body)], content_length)[0]

    def get_many(self, paths, headers=()):
        """GET every path concurrently on this connection; responses in the same order."""
        return self.requests([('GET', path, headers, None) for path in paths])

    def requests(self, specs, content_length=True):
        """specs: [(method, path, headers, body)]; body None means no body (END_STREAM on the
        HEADERS frame). A content-length header is added for bodies unless one is given or
        content_length is False (h2front must then work the length out itself)."""
        exchange = _Exchange(self, list(specs), content_length)
        exchange.run()
        return exchange.responses

    def _flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def close(self):
        try:
            self.h2.close_connection()
            self._flush()
        except (OSError, h2.exceptions.ProtocolError):
            pass
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Exchange:
    """The state of one requests() call: streams waiting to open, bodies still to send, and
    responses still open (pushed ones included)."""

    def __init__(self, client, specs, content_length):
        self.client = client
        self.h2 = client.h2
        self.waiting = list(enumerate(specs))  # not yet opened
        self.responses = [H2Response(path=spec[1]) for spec in specs]
        self.mine = []                          # H2Responses of this call, pushes included
        self.bodies = {}                        # stream id -> memoryview still to send
        self.content_length = content_length

    def run(self):
        while self.waiting or not all(r.ended for r in self.mine):
            self.open_streams()
            self.send_bodies()
            self.client._flush()
            pending = [r.path for r in self.mine if not r.ended]
            pending += [spec[1] for _, spec in self.waiting]
            for event in self.client._receive_events('streams %s' % pending):
                self.on_event(event)

    def open_streams(self):
        """Open as many waiting streams as the server's SETTINGS_MAX_CONCURRENT_STREAMS allow."""
        while self.waiting and (self.h2.open_outbound_streams
                                < self.h2.remote_settings.max_concurrent_streams):
            index, (method, path, headers, body) = self.waiting.pop(0)
            stream_id = self.h2.get_next_available_stream_id()
            self.h2.send_headers(stream_id, self.request_headers(method, path, headers, body),
                                 end_stream=body is None)
            self.client.streams[stream_id] = self.responses[index]
            self.mine.append(self.responses[index])
            if body is not None:
                self.bodies[stream_id] = memoryview(bytes(body))  # slices without copying

    def request_headers(self, method, path, headers, body):
        pseudo = [(':method', method), (':scheme', 'https'),
                  (':authority', self.client.authority), (':path', path)]
        headers = [(name.lower(), str(value)) for name, value in headers]
        if (body is not None and self.content_length
                and not any(name == 'content-length' for name, _ in headers)):
            headers.append(('content-length', str(len(body))))
        return pseudo + headers

    def send_bodies(self):
        """Send what the flow-control windows allow; the rest waits for WINDOW_UPDATE."""
        for stream_id, rest in list(self.bodies.items()):
            response = self.client.streams[stream_id]
            if response.ended:  # answered or reset early: the rest of the body is unwanted
                del self.bodies[stream_id]
                if response.reset is None:
                    self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.NO_ERROR)
                continue
            while rest:
                size = min(len(rest), self.h2.local_flow_control_window(stream_id),
                           self.h2.max_outbound_frame_size)
                if size <= 0:
                    break
                self.h2.send_data(stream_id, bytes(rest[:size]))
                rest = rest[size:]
            if rest:
                self.bodies[stream_id] = rest
            else:
                self.h2.end_stream(stream_id)
                del self.bodies[stream_id]

    def on_event(self, event):
        if isinstance(event, h2.events.DataReceived):
            # Give the bytes back to both windows at once, or big bodies stall at the window.
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        response = self.client.streams.get(getattr(event, 'stream_id', None))
        if isinstance(event, h2.events.PushedStreamReceived):
            self.on_push(event)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.on_goaway(event)
        elif response is not None:
            self.on_stream_event(event, response)

    def on_stream_event(self, event, response):
        if isinstance(event, h2.events.ResponseReceived):
            response.status = int(dict(event.headers)[':status'])
            response.headers = [(k, v) for k, v in event.headers if not k.startswith(':')]
        elif isinstance(event, h2.events.InformationalResponseReceived):
            headers = [(k, v) for k, v in event.headers if not k.startswith(':')]
            response.informational.append((int(dict(event.headers)[':status']), headers))
        elif isinstance(event, h2.events.DataReceived):
            response.received.extend(event.data)  # bytes += bytes would be quadratic
        elif isinstance(event, h2.events.TrailersReceived):
            response.trailers = list(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            response.finish()
        elif isinstance(event, h2.events.StreamReset):
            response.finish(reset=int(event.error_code))

    def on_push(self, event):
        """PUSH_PROMISE comes before its parent stream ends, so waiting for every stream we
        know of also waits for every pushed response."""
        request = dict(event.headers)
        pushed = H2Response(path=request.get(':path'))
        self.client.streams[event.pushed_stream_id] = pushed
        self.client.pushes.append(pushed)
        self.mine.append(pushed)

    def on_goaway(self, event):
        """Streams above last_stream_id were never processed; the rest may still finish, but
        nothing new can start on this connection."""
        self.client.goaway = event
        for stream_id, response in self.client.streams.items():
            ours = stream_id % 2 == 1  # last_stream_id counts only client-initiated streams
            if ours and stream_id > (event.last_stream_id or 0) and not response.ended:
                response.finish(reset=int(event.error_code))
        if self.waiting:
            raise ConnectionError('GOAWAY (%s) before %d requests could start'
                                  % (event.error_code, len(self.waiting)))


# ---------------------------------------------------------------------------------------------
# An HTTP/2 client misbehaving on purpose (tests/integration/test_hardening.py, test_memcheck.py).

def open_and_reset(conn, count, method='GET', path='/json', batch=50):
    """Opens `count` streams and resets each at once (CANCEL), `batch` pairs per write, the way a
    Rapid Reset attacker does. Stops early when the server has closed the connection; returns
    how many pairs went out."""
    sent = 0
    try:
        while sent < count:
            for _ in range(min(batch, count - sent)):
                stream_id = conn.h2.get_next_available_stream_id()
                conn.h2.send_headers(stream_id, [(':method', method), (':scheme', 'https'), (':authority', conn.authority),
                                                 (':path', path)], end_stream=method == 'GET')
                conn.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
                sent += 1
            conn._flush()
    except (OSError, ssl.SSLError):
        pass  # the server closed the connection under us: what the test waits for
    return sent


def read_until_closed(conn, timeout=5):
    """Reads what the server sends until it closes the connection; returns the GOAWAY event (or
    None) and whether the connection was closed within `timeout`."""
    goaway, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not conn.sock.pending() and not select.select([conn.sock], [], [], deadline - time.monotonic())[0]:
            break
        try:
            data = conn.sock.recv(65536)
        except (OSError, ssl.SSLError):
            return goaway, True
        if not data:
            return goaway, True
        for event in conn.h2.receive_data(data):
            if isinstance(event, h2.events.ConnectionTerminated):
                goaway = event
    return goaway, False


def send_header_block(conn, fields, method='POST', path='/echo'):
    """Opens a stream whose header block carries `fields` (name, value) pairs after the request's
    pseudo-headers; a POST leaves the stream open, waiting for a body that never comes."""
    stream_id = conn.h2.get_next_available_stream_id()
    conn.h2.send_headers(stream_id, [(':method', method), (':scheme', 'https'), (':authority', conn.authority),
                                     (':path', path)] + list(fields), end_stream=method == 'GET')
    try:
        conn._flush()
    except (OSError, ssl.SSLError):
        pass  # closed while we sent: the test reads why
    return stream_id


def h2_connection(port, **options):
    """An H2Client to h2front on `port`; use as `with h2_connection(port) as conn:`."""
    return H2Client(port, **options)
