#!/usr/bin/python3
"""A stand-in for the Ceph mgr dashboard, for demoing and testing h2front.

It serves the real Angular frontend build (see get-dashboard-build.sh) and enough of the REST API
for the login page and the landing page to work, on the same stack the real dashboard runs on:
CherryPy with cheroot from Debian. Everything a proxy can trip on is kept as measured on the real
dashboard (shared/research/ceph-dashboard-measured.md): header set, gzip only for HTML and JSON,
no ETag, Last-Modified/304, 411 for bodies without Content-Length, 415 for a missing API version,
the idle timeout, the ~10 keep-alive connection limit, and the standby behaviours.

Run with Debian's interpreter, which has python3-cherrypy3:
    /usr/bin/python3 tests/backend/dashboard.py --port 8090

Demo login: admin / admin.

Test hooks, not in the real dashboard:
    GET  /api/_demo/stream?chunks=N&delay=S  a slow chunked response (needs the API Accept header)
    GET  /_demo/mode                         the current mode as JSON
    POST /_demo/mode {"mode": ..., "active_url": ..., "standby_status": ...}
        switch between active and the standby behaviours at runtime (from loopback only)
"""

import argparse
import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import mimetypes
import os
import random
import re
import signal
import socket
import sys
import time
import uuid

import cherrypy
from cherrypy._cpwsgi_server import CPWSGIServer
from cherrypy.lib.static import serve_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DIST = os.path.join(REPO, '.cache', 'dashboard-dist')
DEFAULT_LANGUAGE = 'en-US'

CEPH_VERSION = 'ceph version 16.2.15 (618f440892089921c3e944a991122ddc44e60516) pacific (stable)'
DEMO_USERS = {'admin': 'admin'}
TOKEN_TTL = 8 * 3600

MODES = ('active', 'standby-redirect', 'standby-error', 'standby-nowhere')

# The real dashboard adds these to every response, errors and standby answers included
# (services/auth.py sets them in the global CherryPy config). HSTS is sent even over plain http.
SECURITY_HEADERS = {
    'response.headers.server': 'Ceph-Dashboard',
    'response.headers.content-security-policy': "frame-ancestors 'self';",
    'response.headers.x-content-type-options': 'nosniff',
    'response.headers.strict-transport-security': 'max-age=63072000; includeSubDomains; preload',
}

# The dashboard's gzip list. JavaScript is listed as application/javascript, but Debian maps .js
# to text/javascript, so JS, CSS, fonts and images all go out uncompressed.
GZIP_MIME_TYPES = ['text/html', 'text/plain', 'application/json', 'application/*+json',
                   'application/javascript']

STANDBY_NOWHERE_PAGE = """
<html>
    <head>
        <title>Ceph</title>
        <meta http-equiv="refresh" content="5">
    </head>
    <body>
        No active ceph-mgr instance is currently running
        the dashboard. A failover may be in progress.
        Retrying in 5 seconds...
    </body>
</html>
"""


def pin_mime_types():
    """Map extensions the way Debian's /etc/mime.types (package media-types) does.

    Python 3.11's built-in table says application/javascript for .js, which the gzip tool would
    compress; the real dashboard on Debian sends text/javascript uncompressed. Pinning the map
    keeps the demo faithful on hosts without /etc/mime.types."""
    for ext, mime in (('.js', 'text/javascript'), ('.css', 'text/css'), ('.woff2', 'font/woff2'),
                      ('.woff', 'font/woff'), ('.svg', 'image/svg+xml')):
        mimetypes.add_type(mime, ext)


# ---------------------------------------------------------------------------------------------
# Mode: active or one of the standby behaviours, switchable at runtime.


@dataclasses.dataclass(frozen=True)
class Mode:
    """Immutable, so worker threads can read it without a lock; a switch replaces it whole."""
    name: str = 'active'
    active_url: str = 'http://127.0.0.1:8091/'
    standby_status: int = 500

    def as_json(self):
        return {'mode': self.name, 'active_url': self.active_url,
                'standby_status': self.standby_status}


CURRENT_MODE = Mode()


def mode_changes(body):
    """Validate a POST /_demo/mode body into arguments for switch_mode()."""
    changes = {}
    if 'mode' in body:
        changes['name'] = body['mode']
    if 'active_url' in body:
        if not isinstance(body['active_url'], str) or not body['active_url']:
            raise cherrypy.HTTPError(400, 'active_url must be a non-empty string')
        changes['active_url'] = body['active_url']
    if 'standby_status' in body:
        if not isinstance(body['standby_status'], int) or not 400 <= body['standby_status'] <= 599:
            raise cherrypy.HTTPError(400, 'standby_status must be an error status, 400..599')
        changes['standby_status'] = body['standby_status']
    return changes


def switch_mode(**changes):
    global CURRENT_MODE
    if changes.get('name', CURRENT_MODE.name) not in MODES:
        raise cherrypy.HTTPError(400, 'mode must be one of ' + ', '.join(MODES))
    CURRENT_MODE = dataclasses.replace(CURRENT_MODE, **changes)


# ---------------------------------------------------------------------------------------------
# Authentication: HS256 JWTs like the real dashboard's, built with the standard library.
# The secret is fixed by default so a token from one demo instance works on another, just as
# real tokens survive a failover because the secret lives in the mon store.


class Tokens:
    def __init__(self, secret):
        self.secret = secret.encode()
        self.revoked = set()

    def issue(self, username):
        now = int(time.time())
        claims = {'iss': 'ceph-dashboard', 'jti': str(uuid.uuid4()), 'exp': now + TOKEN_TTL,
                  'iat': now, 'username': username}
        signing_input = _b64url_json({'typ': 'JWT', 'alg': 'HS256'}) + '.' + _b64url_json(claims)
        return signing_input + '.' + _b64url(self._sign(signing_input))

    def user_of(self, token):
        """The username the token was issued to, or None if it is forged, expired or revoked."""
        try:
            signing_input, signature = token.rsplit('.', 1)
            claims = json.loads(_b64url_decode(signing_input.split('.')[1]))
            good = hmac.compare_digest(_b64url_decode(signature), self._sign(signing_input))
        except (ValueError, IndexError, UnicodeDecodeError):
            return None
        if not good or claims.get('exp', 0) < time.time() or claims.get('jti') in self.revoked:
            return None
        return claims.get('username') if claims.get('username') in DEMO_USERS else None

    def revoke(self, token):
        try:
            self.revoked.add(json.loads(_b64url_decode(token.split('.')[1])).get('jti'))
        except (ValueError, IndexError, UnicodeDecodeError):
            pass

    def _sign(self, signing_input):
        return hmac.new(self.secret, signing_input.encode(), hashlib.sha256).digest()


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def _b64url_json(obj):
    return _b64url(json.dumps(obj, separators=(',', ':')).encode())


def _b64url_decode(text):
    return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))


def request_token():
    """The `token` cookie wins; only without a cookie is `Authorization: Bearer` looked at.

    This is the real dashboard's order, so an invalid cookie plus a valid Bearer header is 401."""
    cookie = cherrypy.request.cookie.get('token')
    if cookie is not None:
        return cookie.value
    scheme, _, credentials = cherrypy.request.headers.get('Authorization', '').partition(' ')
    return credentials if scheme.lower() == 'bearer' and credentials else None


def all_permissions():
    scopes = ['cephfs', 'config-opt', 'dashboard-settings', 'grafana', 'hosts', 'iscsi', 'log',
              'manager', 'monitor', 'nfs-ganesha', 'osd', 'pool', 'prometheus', 'rbd-image',
              'rbd-mirroring', 'rgw', 'user']
    return {scope: ['create', 'delete', 'read', 'update'] for scope in scopes}


# ---------------------------------------------------------------------------------------------
# The API: a route table keyed by (method, path). Each route records whether it needs a login
# and which API version it implements, as the real controllers' decorators do.

API_V1 = (1, 0)
API_EXPERIMENTAL = (0, 1)
ACCEPT_VERSION_RE = re.compile(r'^application/vnd\.ceph\.api\.v(\d+)\.(\d+)\+json$')


@dataclasses.dataclass
class Route:
    handler: object
    secure: bool    # needs a login
    version: tuple  # API version implemented, checked against Accept
    status: int     # on success
    raw: bool       # the handler returns the body and sets Content-Type itself


ROUTES = {}


def api(method, path, secure=True, version=API_V1, status=200, raw=False):
    def register(handler):
        ROUTES[(method, path)] = Route(handler, secure, version, status, raw)
        return handler
    return register


class DashboardError(Exception):
    """An error the dashboard answers with its own JSON body instead of an error page, like
    its DashboardException (e.g. 400 invalid_credentials for a bad login)."""

    def __init__(self, detail, code, component, status=400):
        super().__init__(detail)
        self.status = status
        self.body = {'detail': detail, 'code': code, 'component': component}


def api_media_type(version):
    return 'application/vnd.ceph.api.v%d.%d+json' % version


def check_api_version(route):
    """415 unless Accept names a version the endpoint supports (same major, minor not newer)."""
    match = ACCEPT_VERSION_RE.match(cherrypy.request.headers.get('Accept', ''))
    if not match:
        raise cherrypy.HTTPError(415, 'Unable to find version in request header')
    wanted = (int(match.group(1)), int(match.group(2)))
    if wanted[0] != route.version[0] or wanted[1] > route.version[1]:
        raise cherrypy.HTTPError(415, "Incorrect version: endpoint is '%d.%d', client requested "
                                      "'%d.%d'" % (route.version + wanted))


def run_api(route, params):
    """Authenticate, check the version, then answer JSON, in the order the real dashboard does.

    Body problems (411, 415 for forms) were already raised by CherryPy's json_in tool."""
    if route.secure and app_state().tokens.user_of(request_token() or '') is None:
        raise cherrypy.HTTPError(401, 'You are not authorized to access that resource')
    check_api_version(route)
    try:
        result = route.handler(params)
    except DashboardError as error:
        cherrypy.response.status = error.status
        cherrypy.response.headers['Content-Type'] = 'application/json'
        return json.dumps(error.body).encode()
    cherrypy.response.status = route.status
    if route.raw:
        return result
    cherrypy.response.headers['Content-Type'] = api_media_type(route.version)
    return json.dumps(result).encode()


def request_json():
    return getattr(cherrypy.request, 'json', None) or {}


@api('POST', '/api/auth', secure=False, status=201)
def auth_login(params):
    body = request_json()
    username, password = body.get('username'), body.get('password')
    time.sleep(app_state().login_delay)  # the real one spends this long in bcrypt
    if password is None or DEMO_USERS.get(username) != password:
        raise DashboardError('Invalid credentials', 'invalid_credentials', 'auth')
    token = app_state().tokens.issue(username)
    set_token_cookie(token)
    return {'token': token, 'username': username, 'permissions': all_permissions(),
            'pwdExpirationDate': None, 'sso': False, 'pwdUpdateRequired': False}


@api('POST', '/api/auth/check', secure=False)
def auth_check(params):
    token = params.get('token') or request_json().get('token')
    username = app_state().tokens.user_of(token) if token else None
    if username is None:
        return {'login_url': '#/login', 'cluster_status': 'POST_INSTALLED'}
    return {'username': username, 'permissions': all_permissions(), 'sso': False,
            'pwdUpdateRequired': False}


@api('POST', '/api/auth/logout')
def auth_logout(params):
    token = request_token()
    app_state().tokens.revoke(token)
    cookie = cherrypy.response.cookie
    cookie['token'] = token
    cookie['token']['expires'] = 0
    cookie['token']['max-age'] = 0
    return {'redirect_url': '#/login'}


def set_token_cookie(token):
    cookie = cherrypy.response.cookie
    cookie['token'] = token
    cookie['token']['httponly'] = True
    cookie['token']['path'] = '/'
    cookie['token']['samesite'] = 'Strict'


@api('GET', '/api/summary')
def summary(params):
    return {'health_status': 'HEALTH_OK', 'mgr_id': 'x', 'mgr_host': app_state().own_url,
            'have_mon_connection': True, 'executing_tasks': [], 'finished_tasks': [],
            'version': CEPH_VERSION, 'rbd_mirroring': {'warnings': 0, 'errors': 0}}


@api('GET', '/api/health/minimal')
def health_minimal(params):
    return app_state().health_minimal


@api('GET', '/api/prometheus/notifications')
def prometheus_notifications(params):
    return []


@api('GET', '/api/feature_toggles')
def feature_toggles(params):
    return {feature: True for feature in ('rbd', 'mirroring', 'iscsi', 'cephfs', 'rgw', 'nfs')}


@api('GET', '/api/osd/settings', version=API_EXPERIMENTAL)
def osd_settings(params):
    return {'nearfull_ratio': 0.85, 'full_ratio': 0.95}


@api('GET', '/api/mgr/module/telemetry')
def telemetry_options(params):
    return {'channel_basic': True, 'channel_crash': True, 'channel_device': True,
            'channel_ident': False, 'channel_perf': False, 'contact': '', 'description': '',
            'device_url': 'https://telemetry.ceph.com/device', 'enabled': True, 'interval': 24,
            'last_opt_revision': 3, 'leaderboard': False, 'log_level': '',
            'log_to_cluster': False, 'log_to_cluster_level': 'info', 'log_to_file': False,
            'organization': '', 'proxy': '', 'url': 'https://telemetry.ceph.com/report'}


@api('GET', '/api/settings/alertmanager-api-host')
def alertmanager_host(params):
    return {'name': 'ALERTMANAGER_API_HOST', 'default': '', 'type': 'str', 'value': ''}


@api('GET', '/api/settings/prometheus-api-host')
def prometheus_host(params):
    return {'name': 'PROMETHEUS_API_HOST', 'default': '', 'type': 'str', 'value': ''}


@api('GET', '/ui-api/langs', secure=False)
def langs(params):
    return sorted(app_state().languages)


@api('GET', '/ui-api/login/custom_banner', secure=False)
def custom_banner(params):
    return None


@api('GET', '/ui-api/motd')
def motd(params):
    return None


@api('GET', '/ui-api/standard_settings')
def standard_settings(params):
    return {'user_pwd_expiration_span': 0, 'user_pwd_expiration_warning_1': 10,
            'user_pwd_expiration_warning_2': 5, 'pwd_policy_enabled': True,
            'pwd_policy_min_length': 8, 'pwd_policy_check_length_enabled': True,
            'pwd_policy_check_oldpwd_enabled': True, 'pwd_policy_check_username_enabled': False,
            'pwd_policy_check_exclusion_list_enabled': False,
            'pwd_policy_check_repetitive_chars_enabled': False,
            'pwd_policy_check_sequential_chars_enabled': False,
            'pwd_policy_check_complexity_enabled': False}


@api('GET', '/api/_demo/stream', secure=False, raw=True)
def demo_stream(params):
    """N newline-delimited JSON chunks, `delay` seconds apart, sent as they are produced.

    application/x-ndjson is not in the gzip list, so nothing buffers the chunks on the way out.
    No login needed, so streaming tests need no session; the Accept header still is."""
    try:
        chunks, delay = int(params.get('chunks', 10)), float(params.get('delay', 0.5))
    except ValueError:
        raise cherrypy.HTTPError(400, 'chunks must be an integer and delay a number')
    cherrypy.response.stream = True
    cherrypy.response.headers['Content-Type'] = 'application/x-ndjson'

    def produce():
        for i in range(chunks):
            if i:
                time.sleep(delay)
            # Stop early on shutdown: CherryPy waits for busy workers, so a long stream would
            # otherwise hold up SIGTERM for its whole duration.
            if cherrypy.engine.state != cherrypy.engine.states.STARTED:
                return
            yield (json.dumps({'chunk': i, 'of': chunks}) + '\n').encode()
    return produce()


def build_health_minimal(osd_count=845):
    """A deterministic /api/health/minimal of about 66 KB, the size measured on the real one.

    The bulk is the OSD list; a seeded generator varies it a little so it neither compresses
    absurdly well nor changes between runs or instances."""
    rng = random.Random(45306)
    osds = [{'osd': osd_id, 'in': 1, 'up': 1, 'state': ['exists', 'up'],
             'weight': round(rng.uniform(0.5, 1.0), 5)} for osd_id in range(osd_count)]
    total = osd_count * 4 * 2**40  # 4 TiB disks
    return {
        'health': {'status': 'HEALTH_OK', 'checks': [], 'mutes': []},
        'mon_status': {'monmap': {'mons': [{}, {}, {}]}, 'quorum': [0, 1, 2]},
        'fs_map': {'filesystems': [], 'standbys': []},
        'osd_map': {'osds': osds},
        'scrub_status': 'Inactive',
        'pg_info': {'object_stats': {'num_objects': 1234567, 'num_object_copies': 3703701,
                                     'num_objects_degraded': 0, 'num_objects_misplaced': 0,
                                     'num_objects_unfound': 0},
                    'statuses': {'active+clean': 16384}, 'pgs_per_osd': 35.1},
        'mgr_map': {'active_name': 'x', 'standbys': [{'name': 'y'}]},
        'pools': [{}] * 12,
        'df': {'stats': {'total_avail_bytes': total * 7 // 10, 'total_bytes': total,
                         'total_used_raw_bytes': total * 3 // 10}},
        'client_perf': {'read_bytes_sec': 104857600, 'read_op_per_sec': 2500,
                        'recovering_bytes_per_sec': 0, 'write_bytes_sec': 52428800,
                        'write_op_per_sec': 1200},
        'hosts': 100,
        'rgw': 2,
        'iscsi_daemons': {'up': 0, 'down': 0},
    }


# ---------------------------------------------------------------------------------------------
# Static files, served the way the dashboard's HomeController does.

LANG_TAG_RE = re.compile(r'^(?P<tag>[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*|\*)'
                         r'(;q=(?P<q>[01](\.\d{0,3})?))?$')


def preferred_languages():
    """Language tags in preference order: the cd-lang cookie, else Accept-Language."""
    cookie = cherrypy.request.cookie.get('cd-lang')
    if cookie is not None:
        return [cookie.value.lower()]
    header = cherrypy.request.headers.get('Accept-Language')
    if header is None:
        return [DEFAULT_LANGUAGE.lower()]
    weighted = []
    for item in header.split(',')[:10]:
        match = LANG_TAG_RE.match(item.strip())
        if not match:
            raise cherrypy.HTTPError(400, "Malformed 'Accept-Language' header")
        weighted.append((match.group('tag').lower(), float(match.group('q') or 1)))
    weighted.sort(key=lambda pair: (-pair[1], pair[0]))
    return [tag for tag, _ in weighted]


def language_dir(dist, languages):
    """Pick the first available build; `de` matches `de-DE`. Sets Content-Language."""
    available = {}
    for lang in languages_in(dist):
        available[lang.lower()] = lang
        available.setdefault(lang.split('-')[0].lower(), lang)
    chosen = next((available[tag] for tag in languages if tag in available), DEFAULT_LANGUAGE)
    cherrypy.response.headers['Content-Language'] = chosen
    return os.path.join(dist, chosen)


def languages_in(dist):
    return [entry for entry in os.listdir(dist) if os.path.isdir(os.path.join(dist, entry))]


def serve_static(path):
    base = language_dir(app_state().dist, preferred_languages())
    full = os.path.normpath(os.path.join(base, path.lstrip('/') or 'index.html'))
    if not full.startswith(os.path.normpath(base) + os.sep):
        raise cherrypy.HTTPError(403)
    cherrypy.response.headers['Vary'] = 'Accept-Language'  # gzip appends Accept-Encoding
    cherrypy.response.headers['Cache-Control'] = 'no-cache'
    # serve_file does Last-Modified, If-Modified-Since → 304 and Range → 206; 404 if absent.
    return serve_file(full)


# ---------------------------------------------------------------------------------------------
# Standby answers, as the real StandbyModule gives them for every path and method.


def serve_standby(mode):
    if mode.name == 'standby-redirect':
        # HTTPRedirect picks 303 for HTTP/1.1 and 302 for HTTP/1.0, as the real standby does.
        raise cherrypy.HTTPRedirect(mode.active_url)
    if mode.name == 'standby-error':
        raise cherrypy.HTTPError(mode.standby_status, 'Keep on looking')
    return STANDBY_NOWHERE_PAGE


# ---------------------------------------------------------------------------------------------
# The CherryPy application.


@dataclasses.dataclass
class AppState:
    dist: str
    own_url: str
    tokens: Tokens
    login_delay: float
    languages: list
    health_minimal: dict


def app_state():
    return cherrypy.request.app.root.state


class Root:
    """One catch-all handler: the demo control endpoint, then standby, API or static files."""

    # CherryPy's tree.mount() adds its own /favicon.ico handler unless the root already has this
    # attribute (Debian strips CherryPy's icon, so it would 404); the dashboard serves its own.
    favicon_ico = None

    def __init__(self, state):
        self.state = state

    @cherrypy.expose
    def default(self, *vpath, **params):
        path = cherrypy.request.path_info
        if path == '/_demo/mode':
            return self.mode_endpoint()
        if CURRENT_MODE.name != 'active':
            return serve_standby(CURRENT_MODE)
        if path.startswith(('/api/', '/ui-api/')) or path in ('/api', '/ui-api'):
            return self.api_endpoint(path, params)
        if cherrypy.request.method not in ('GET', 'HEAD'):
            raise cherrypy.HTTPError(405)
        return serve_static(path)

    def api_endpoint(self, path, params):
        method = cherrypy.request.method
        route = ROUTES.get(('GET' if method == 'HEAD' else method, path))
        if route is None:
            allowed = sorted(m for (m, p) in ROUTES if p == path)
            if not allowed:
                raise cherrypy.HTTPError(404)
            cherrypy.response.headers['Allow'] = ', '.join(allowed)
            raise cherrypy.HTTPError(405)
        return run_api(route, params)

    def mode_endpoint(self):
        if cherrypy.request.method == 'POST':
            if cherrypy.request.remote.ip not in ('127.0.0.1', '::1'):
                raise cherrypy.HTTPError(403, 'mode switching is allowed from loopback only')
            switch_mode(**mode_changes(request_json()))
        elif cherrypy.request.method not in ('GET', 'HEAD'):
            raise cherrypy.HTTPError(405)
        cherrypy.response.headers['Content-Type'] = 'application/json'
        return json.dumps(CURRENT_MODE.as_json()).encode()


def json_error_page(status, message, traceback, version):
    """Errors are JSON {status, detail, request_id}, as with the dashboard's debug plugin off.

    CherryPy still pads some short 4xx/5xx bodies to 513 bytes, as it does for the real one."""
    cherrypy.response.headers['Content-Type'] = 'application/json'
    return json.dumps({'status': status, 'detail': message,
                       'request_id': str(cherrypy.request.unique_id)})


def configure(args):
    cherrypy.config.update({
        'environment': 'production',
        'engine.autoreload.on': False,
        'log.screen': False,
        'server.socket_host': args.host,
        'server.socket_port': args.port,
        'server.socket_timeout': args.idle_timeout,  # cheroot's idle keep-alive timeout
        'server.socket_queue_size': args.listen_backlog,
        'server.thread_pool': args.threads,
        'error_page.default': json_error_page,
        'tools.gzip.on': True,
        'tools.gzip.mime_types': GZIP_MIME_TYPES,
        # force=True: non-JSON bodies get 415 and JSON bodies without Content-Length get 411.
        'tools.json_in.on': True,
        'tools.json_in.force': True,
        **SECURITY_HEADERS,
    })
    # Logout is the one endpoint that takes an empty body (`Content-Length: 0`), as the real
    # dashboard's @allow_empty_body does; a POST with no Content-Length at all still gets 411.
    return {'/api/auth/logout': {'tools.json_in.force': False}}


def make_http_server(keepalive_limit):
    """Build cheroot's server ourselves, because CherryPy has no setting for its keep-alive cap.

    cheroot counts the connections idling between requests; once `keep_alive_conn_limit` of
    them exist, further responses say `Connection: close` and their connections are closed.
    The class default is 10, which is what the real dashboard runs with."""
    server = CPWSGIServer(cherrypy.server)
    server.keep_alive_conn_limit = keepalive_limit if keepalive_limit > 0 else None
    return server


def reserve_free_port(host):
    """A free port, held by a bound socket that does not listen, for `--port 0`.

    cheroot leaves SO_REUSEADDR off when it is given port 0, so a dashboard restarted on the
    port it was given would fail with EADDRINUSE for as long as its old connections sit in
    TIME_WAIT. Picking the port here, with SO_REUSEADDR on both sockets, keeps the port from
    other processes until cheroot listens on it, and lets a restart bind it again."""
    placeholder = socket.socket()
    placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    placeholder.bind((host, 0))
    return placeholder


def log_errors_to_stderr(verbose):
    """Tracebacks go to stderr; the access log too with --verbose. Stdout is for `ready` only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter('%(message)s'))
    cherrypy.log.error_log.addHandler(handler)
    cherrypy.log.error_log.setLevel(logging.INFO if verbose else logging.WARNING)
    if verbose:
        cherrypy.log.access_log.addHandler(handler)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=8090, help='0 picks a free port')
    parser.add_argument('--dist', default=DEFAULT_DIST,
                        help='frontend build, as fetched by get-dashboard-build.sh')
    parser.add_argument('--idle-timeout', type=float, default=10,
                        help='close idle keep-alive connections after this many seconds')
    parser.add_argument('--threads', type=int, default=10, help='worker thread pool size')
    parser.add_argument('--keepalive-limit', type=int, default=10,
                        help="cheroot's keep_alive_conn_limit; 0 means unlimited")
    parser.add_argument('--listen-backlog', type=int, default=128)
    parser.add_argument('--mode', choices=MODES, default='active')
    parser.add_argument('--standby-status', type=int, default=500)
    parser.add_argument('--active-url', default='http://127.0.0.1:8091/')
    parser.add_argument('--login-delay', type=float, default=0.25,
                        help='seconds a login takes (the real bcrypt check takes ~0.27 s)')
    parser.add_argument('--jwt-secret', default='h2front-demo-shared-secret',
                        help='instances sharing it accept each other\'s tokens')
    parser.add_argument('--verbose', action='store_true', help='access log on stderr')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    placeholder = reserve_free_port(args.host) if args.port == 0 else None
    if placeholder:
        args.port = placeholder.getsockname()[1]
    if not os.path.isfile(os.path.join(args.dist, DEFAULT_LANGUAGE, 'index.html')):
        sys.exit('no frontend build in %s; run tests/backend/get-dashboard-build.sh' % args.dist)
    pin_mime_types()
    switch_mode(name=args.mode, active_url=args.active_url, standby_status=args.standby_status)
    log_errors_to_stderr(args.verbose)
    app_config = configure(args)
    state = AppState(dist=args.dist, own_url='', tokens=Tokens(args.jwt_secret),
                     login_delay=args.login_delay, languages=languages_in(args.dist),
                     health_minimal=build_health_minimal())
    cherrypy.tree.mount(Root(state), '', app_config)
    cherrypy.server.httpserver = make_http_server(args.keepalive_limit)

    # Only TERM and INT, and no SIGHUP: CherryPy's default SIGHUP handler re-executes the process.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: cherrypy.engine.exit())
    cherrypy.engine.start()
    if placeholder:
        placeholder.close()
    port = cherrypy.server.httpserver.socket.getsockname()[1]
    state.own_url = 'http://%s:%d/' % (args.host, port)
    print('ready on http://%s:%d' % (args.host, port), flush=True)
    cherrypy.engine.block()


if __name__ == '__main__':
    main()
