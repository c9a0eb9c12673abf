"""The in-memory asset store (assets.root), checked against the real Ceph frontend build.

Every file of the build is fetched through h2front with Accept-Encoding br, gzip and none and must
decode to the bytes on disk, with the Content-Type the dashboard itself sends, a strong ETag that
answers If-None-Match with 304, and a Cache-Control that follows the name (content hash: a year,
immutable; otherwise no-cache). The document (/ and /index.html), the API and anything odd go on
to the dashboard. Navigations are announced: a 103 Early Hints over HTTP/2 and a Link header naming
the critical set, which this file derives on its own from index.html, the stylesheet and the
scripts (webpack's chunk map, images in Angular's component styles and templates), and with
`push: true` the same set is pushed once per browser (h2o's CASPer cookie).

One dashboard and four h2fronts per module (assets with defaults, push, url_prefix, no assets),
started together so that their loads (≈7 s each: brotli 11 on the 3.5 MB main.js) overlap.

Environment: H2FRONT_BIN (the binary), H2FRONT_SOURCE_ROOT (the source tree).
"""

import gzip
import hashlib
import html.parser
import http.client
import posixpath
import re
import subprocess
import time
from dataclasses import dataclass

import brotli  # Debian: python3-brotli
import pytest

import harness
from harness import H2FRONT_BIN, API_ACCEPT, curl, ensure_dashboard_dist, free_port, h2_connection, start_dashboard

pytestmark = pytest.mark.skipif(not H2FRONT_BIN, reason="H2FRONT_BIN is not set")

IMMUTABLE = 'public, max-age=31536000, immutable'
BROWSER_AE = 'gzip, deflate, br'  # what Chromium sends; CherryPy answers 406 to "br" alone for its gzip-tool types
ENCODINGS = ('br', 'gzip', None)  # Accept-Encoding sent; None: no header at all
LOAD_TIMEOUT = 60


# ---------------------------------------------------------------------------------------------
# The build, read independently of h2front.

DIST = ensure_dashboard_dist()
LANG_DIR = DIST / 'en-US'
FILES = sorted('/' + str(p.relative_to(LANG_DIR)) for p in LANG_DIR.rglob('*')
               if p.is_file() and p.relative_to(LANG_DIR).as_posix() != 'index.html')
MAIN_JS = next(f for f in FILES if re.fullmatch(r'/main\.[0-9a-f]{16,}\.js', f))
WOFF2 = next(f for f in FILES if f.endswith('.woff2'))
HASHED_NAME = re.compile(r'(^|\.)[0-9a-f]{16,}(\.|$)')  # a dot-separated component of >= 16 hex digits


def disk(url_path):
    """The bytes of the file a URL path (query ignored) names in en-US/."""
    return (LANG_DIR / url_path.split('?', 1)[0].lstrip('/')).read_bytes()


def is_hashed(url_path):
    name = url_path.split('?', 1)[0].rsplit('/', 1)[-1]
    return any(HASHED_NAME.fullmatch(part) for part in name.split('.'))


def decode(body, encoding):
    if encoding is None:
        return body
    if encoding == 'br':
        return brotli.decompress(body)
    if encoding == 'gzip':
        return gzip.decompress(body)
    raise AssertionError('unexpected Content-Encoding %r' % encoding)


def tokens(value):
    return {t.strip().lower() for t in (value or '').split(',') if t.strip()}


class _DocumentRefs(html.parser.HTMLParser):
    """Stylesheets (<link rel=stylesheet href>) and classic scripts (<script src>) in document order."""

    def __init__(self):
        super().__init__()
        self.styles, self.scripts = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == 'link' and 'stylesheet' in (a.get('rel') or '').lower().split() and a.get('href'):
            if a['href'] not in self.styles:
                self.styles.append(a['href'])
        elif tag == 'script' and a.get('src') and a['src'] not in self.scripts:
            self.scripts.append(a['src'])


CSS_URL = re.compile(r'''url\(\s*(?:"([^"]*)"|'([^']*)'|([^)'"\s]*))\s*\)''')
FONT_FACE = re.compile(r'@font-face\s*\{[^}]*\}', re.I)


def _css_resources(css):
    """What a stylesheet needs, in its order: of each @font-face only the woff2 source (as font),
    every other url() that is not data: (as image)."""
    out = []
    faces = [(m.start(), m.end(), m.group(0)) for m in FONT_FACE.finditer(css)]
    for start, end, block in faces:
        woff2 = [u for u in (m.group(1) or m.group(2) or m.group(3) for m in CSS_URL.finditer(block))
                 if u.split('?')[0].split('#')[0].endswith('.woff2')]
        if woff2:
            out.append((start, woff2[0], 'font'))
    for m in CSS_URL.finditer(css):
        ref = m.group(1) or m.group(2) or m.group(3)
        if ref.startswith('data:') or any(s <= m.start() < e for s, e, _ in faces):
            continue
        out.append((m.start(), ref, 'image'))
    return [(ref, kind) for _, ref, kind in sorted(out)]


# webpack's chunk map in the runtime, r.u=e=>e+"."+{117:"9781bbf8cc6a4aaa7e8e",...}[e]+".js": a number
# (not glued to an identifier) or a quoted name, then a quoted hash of 16+ hex digits
CHUNK_MAP_ENTRY = re.compile(r'''(?:(?<![\w$.])(\d+)|(["'])([A-Za-z0-9_.~-]+)\2):(["'])([0-9a-fA-F]{16,})\4''')
IMAGE_SUFFIXES = ('.svg', '.png', '.gif', '.jpg', '.jpeg', '.webp', '.avif', '.ico')
MAX_CHUNKS, MAX_SCRIPT_IMAGES = 16, 8


def _chunk_refs(js):
    """Every ID.HASH.js a chunk map in a script names, in its order (whether or not the file exists)."""
    return ['%s.%s.js' % (m.group(1) or m.group(3), m.group(5)) for m in CHUNK_MAP_ENTRY.finditer(js)]


# Angular's compiled template attributes, ["src","assets/logo.svg","alt","Ceph"]: "src" and a string
# literal without escapes
TEMPLATE_SRC = re.compile(r'''(["'])src\1[ \t\r\n\f]*,[ \t\r\n\f]*(?:"([^"\\\n]*)"|'([^'\\\n]*)')''')


def _script_image_refs(js):
    """What a script names as images: url() in component styles embedded in it, then <img src> in its
    templates; every non-empty reference that is not data: or another origin (whether or not it
    names an image of the build)."""
    refs = [m.group(1) or m.group(2) or m.group(3) or '' for m in re.finditer(r'(?<![\w-])' + CSS_URL.pattern, js, re.I)]
    refs += [m.group(2) or m.group(3) or '' for m in TEMPLATE_SRC.finditer(js)]
    return [r for r in refs if r and not re.match(r'[A-Za-z][A-Za-z0-9+.-]*:|//', r)]


def expected_critical_set(prefix=''):
    """[(url, {param: value})] as a Link header should list them: stylesheets, scripts (document
    order), then what the stylesheets load (woff2 font with crossorigin, images), the lazy chunks
    the scripts' chunk maps name (at most 16), the images their embedded styles name (at most 8)."""
    doc = _DocumentRefs()
    doc.feed((LANG_DIR / 'index.html').read_text())
    entries = []

    def add(ref, kind, base='/'):
        """Adds ref (relative to the file at `base`) when it names a file of the build; True if added."""
        ref = ref.split('#', 1)[0]
        path, _, query = ref.partition('?')
        path = posixpath.normpath(posixpath.join(posixpath.dirname(base), path))
        url = path + ('?' + query if query else '')
        if (LANG_DIR / path.lstrip('/')).is_file() and prefix + url not in [u for u, _ in entries]:
            params = {'rel': 'preload', 'as': kind}
            if kind == 'font':
                params['crossorigin'] = None
            entries.append((prefix + url, params))
            return True
        return False

    for href in doc.styles:
        add(href, 'style')
    for src in doc.scripts:
        add(src, 'script')
    for href in doc.styles:
        for ref, kind in _css_resources((LANG_DIR / href).read_text(errors='replace')):
            add(ref, kind)
    scripts = ['/' + src.lstrip('/') for src in doc.scripts]
    chunks = 0
    for script in scripts:
        for ref in _chunk_refs((LANG_DIR / script.lstrip('/')).read_text(errors='replace')):
            if chunks < MAX_CHUNKS and add(ref, 'script'):  # relative to the page: webpack's public path is ''
                chunks += 1
    images = 0
    for script in scripts:
        for ref in _script_image_refs((LANG_DIR / script.lstrip('/')).read_text(errors='replace')):
            if images < MAX_SCRIPT_IMAGES and ref.split('?')[0].lower().endswith(IMAGE_SUFFIXES) and add(ref, 'image'):
                images += 1
    return entries


def parse_link(value):
    """A Link header value -> [(url, {param: value or None})]."""
    entries = []
    for m in re.finditer(r'<([^>]*)>((?:\s*;\s*[^,;]+)*)', value or ''):
        params = {}
        for p in m.group(2).split(';')[1:]:
            key, _, v = p.strip().partition('=')
            params[key.lower()] = v.strip('"') if _ else None
        entries.append((m.group(1), params))
    return entries


def test_expected_critical_set_is_sane():
    """Guards the derivation itself against a changed build: the order assets.h documents."""
    urls = [u for u, _ in expected_critical_set()]
    kinds = [p['as'] for _, p in expected_critical_set()]
    assert re.fullmatch(r'/styles\.[0-9a-f]+\.css', urls[0])
    assert [re.sub(r'\.[0-9a-f]{16,}\.js$', '', u) for u in urls[1:5]] == ['/runtime', '/polyfills', '/scripts', '/main']
    assert urls[5].startswith(WOFF2) and urls[5].endswith('?v=1.1.7') and kinds[5] == 'font'
    # the runtime's lazy chunks, then the image main.js's component styles name, after the stylesheet's,
    # then the logos its templates show (the login page's first)
    chunks = [u for u in urls if re.fullmatch(r'/\d+\.[0-9a-f]{16,}\.js', u)]
    assert len(chunks) == 3 and urls[-6:-3] == chunks, urls
    assert re.fullmatch(r'/ceph_background\.[0-9a-f]{16,}\.gif', urls[-3]), urls
    assert urls[-2:] == ['/assets/Ceph_Ceph_Logo_with_text_white.svg', '/assets/Ceph_Ceph_Logo_with_text_red_white.svg']
    assert kinds == ['style'] + ['script'] * 4 + ['font'] + ['image'] * (len(kinds) - 12) + ['script'] * 3 + ['image'] * 3


# ---------------------------------------------------------------------------------------------
# The processes.


@dataclass
class Front:
    name: str
    port: int
    h2front: object

    @property
    def proc(self):
        return self.h2front.proc

    def wait_loaded(self):
        """Until `[assets] loaded` (h2front logs on stderr); fails at once on a load error."""
        deadline = time.monotonic() + LOAD_TIMEOUT
        while True:
            log = self.proc.stderr()
            if re.search(r'\[assets\] loaded \d+ files', log):
                return log
            if '[assets]' in log and 'serving everything from the backend' in log:
                pytest.fail('asset load failed:\n' + log)
            if self.proc.returncode is not None:
                pytest.fail('h2front exited (%s)\n%s' % (self.proc.returncode, self.proc.log()))
            if time.monotonic() > deadline:
                pytest.fail('assets not loaded after %ss\n%s' % (LOAD_TIMEOUT, self.proc.log()))
            time.sleep(0.05)

    def connect(self, **options):
        return h2_connection(self.port, **options)


def front_yaml(port, backend, assets):
    return f"""
listen:
  - address: "127.0.0.1:{port}"
    tls: self-signed
backends:
  - url: {backend.url}
health_check:
  interval: 1h
log:
  level: info
{assets}
"""


@pytest.fixture(scope='module')
def stack(tmp_path_factory):
    """The dashboard and four h2fronts in front of it, all started at once."""
    tmp = tmp_path_factory.mktemp('assets')
    dashboard = start_dashboard(tmp, login_delay=0)
    configs = {
        'default': f'assets:\n  root: {DIST}',
        'push': f'assets:\n  root: {DIST}\n  push: true',
        'prefix': f'assets:\n  root: {DIST}\n  url_prefix: /ceph',
        'none': '',
    }
    fronts = {}
    for name, assets in configs.items():
        port = free_port()
        fronts[name] = Front(name, port, harness.start_h2front(tmp, front_yaml(port, dashboard, assets)))
    yield dashboard, fronts
    problems = []
    for front in fronts.values():
        front.proc.stop()
        for problem in harness.h2front_health_problems(front.proc):
            problems.append('%s: %s\n%s' % (front.name, problem, front.proc.log()[-4000:]))
    dashboard.stop()
    if problems:
        pytest.fail('\n'.join(problems), pytrace=False)


@pytest.fixture(scope='module')
def dashboard(stack):
    return stack[0]


@pytest.fixture(scope='module')
def front(stack):
    """h2front with assets.root and every other assets key at its default."""
    f = stack[1]['default']
    f.wait_loaded()
    return f


@pytest.fixture(scope='module')
def push_front(stack):
    f = stack[1]['push']
    f.wait_loaded()
    return f


@pytest.fixture(scope='module')
def prefix_front(stack):
    f = stack[1]['prefix']
    f.wait_loaded()
    return f


@pytest.fixture(scope='module')
def plain_front(stack):
    """h2front without assets.root: everything forwarded."""
    return stack[1]['none']


# What a file from memory answers exactly as the dashboard does: its type, and the security headers
# the dashboard sets on every response (304s included).
SECURITY_HEADERS = tuple(harness.DASHBOARD_SECURITY_HEADERS)
SAME_AS_DASHBOARD = ('content-type',) + SECURITY_HEADERS


@pytest.fixture(scope='module')
def dashboard_headers(dashboard):
    """What the dashboard itself sends for every file of the build: {path: {header: value}} for
    SAME_AS_DASHBOARD."""
    headers = {}
    conn = http.client.HTTPConnection('127.0.0.1', dashboard.port, timeout=10)
    try:
        for path in FILES:
            conn.request('GET', path)
            response = conn.getresponse()
            response.read()
            assert response.status == 200, (path, response.status)
            headers[path] = {name: response.getheader(name) for name in SAME_AS_DASHBOARD}
            assert None not in headers[path].values(), (path, response.getheaders())
    finally:
        conn.close()
    return headers


def from_memory(r):
    """The dashboard never sends an ETag and always sends `Server: Ceph-Dashboard`."""
    return r.header('etag') is not None and r.header('server') != 'Ceph-Dashboard'


# ---------------------------------------------------------------------------------------------
# Every file, every encoding.


def test_every_file_decodes_to_the_bytes_on_disk_in_every_encoding(front, dashboard_headers):
    problems = []
    seen = {}  # path -> {accept-encoding: response}
    with front.connect() as conn:
        for ae in ENCODINGS:
            headers = [('accept-encoding', ae)] if ae else []
            for path, r in zip(FILES, conn.get_many(FILES, headers=headers)):
                seen.setdefault(path, {})[ae] = r

    for path in FILES:
        want = disk(path)
        encoded_somewhere = False
        for ae, r in seen[path].items():
            where = '%s (accept-encoding: %s)' % (path, ae)
            if r.status != 200:
                problems.append('%s: status %s' % (where, r.status))
                continue
            ce = r.header('content-encoding')
            if ce not in (None, ae):
                problems.append('%s: content-encoding %r' % (where, ce))
                continue
            if ce:
                encoded_somewhere = True
                if len(r.body) >= len(want):
                    problems.append('%s: %s variant of %d bytes is not smaller than %d' % (where, ce, len(r.body), len(want)))
            try:
                body = decode(r.body, ce)
            except Exception as e:  # noqa: BLE001 -- reported with the path
                problems.append('%s: body does not decode as %s: %s' % (where, ce, e))
                continue
            if body != want:
                problems.append('%s: decoded %d bytes sha256 %s, disk %d bytes sha256 %s'
                                % (where, len(body), hashlib.sha256(body).hexdigest()[:16], len(want),
                                   hashlib.sha256(want).hexdigest()[:16]))
            if r.header('content-length') != str(len(r.body)):
                problems.append('%s: content-length %r for %d bytes' % (where, r.header('content-length'), len(r.body)))
            for name, value in dashboard_headers[path].items():
                if r.header(name) != value:
                    problems.append('%s: %s %r, the dashboard sends %r' % (where, name, r.header(name), value))
            if not from_memory(r):
                problems.append('%s: not served from memory: %s' % (where, r.headers))
            etag = r.header('etag') or ''
            if not re.fullmatch(r'"[\x21\x23-\x7e]+"', etag):
                problems.append('%s: ETag %r is not a strong entity tag' % (where, etag))
            cc = IMMUTABLE if is_hashed(path) else 'no-cache'
            if r.header('cache-control') != cc:
                problems.append('%s: cache-control %r, want %r' % (where, r.header('cache-control'), cc))
        # text compresses well: the precompressed variants must be there and be chosen
        if path.endswith(('.js', '.css', '.svg', '.txt')):
            for ae in ('br', 'gzip'):
                if seen[path][ae].header('content-encoding') != ae:
                    problems.append('%s: accept-encoding %s answered with content-encoding %r'
                                    % (path, ae, seen[path][ae].header('content-encoding')))
        # a resource with a compressed variant varies on Accept-Encoding, whichever variant was sent
        if encoded_somewhere:
            for ae, r in seen[path].items():
                if 'accept-encoding' not in tokens(r.header('vary')):
                    problems.append('%s (accept-encoding: %s): vary %r lacks Accept-Encoding' % (path, ae, r.header('vary')))
        # different representations, different ETags
        by_encoding = {seen[path][ae].header('content-encoding'): seen[path][ae].header('etag') for ae in ENCODINGS}
        if len(set(by_encoding.values())) != len(by_encoding):
            problems.append('%s: the same ETag for different encodings: %s' % (path, by_encoding))
    assert not problems, '%d problem(s):\n%s' % (len(problems), '\n'.join(problems))


def test_if_none_match_gives_304_and_head_gives_headers_only(front, dashboard_headers):
    problems = []
    with front.connect() as conn:
        for ae in ENCODINGS:
            ae_header = [('accept-encoding', ae)] if ae else []
            full = dict(zip(FILES, conn.get_many(FILES, headers=ae_header)))
            specs = []
            for path in FILES:
                etag = full[path].header('etag')
                specs.append(('GET', path, ae_header + [('if-none-match', etag)], None))
                specs.append(('GET', path, ae_header + [('if-none-match', '"nope", %s' % etag)], None))
                specs.append(('GET', path, ae_header + [('if-none-match', '"nope"')], None))
                specs.append(('HEAD', path, ae_header, None))
            responses = conn.requests(specs)
            for i, path in enumerate(FILES):
                got, listed, other, head = responses[4 * i:4 * i + 4]
                where = '%s (accept-encoding: %s)' % (path, ae)
                etag = full[path].header('etag')
                for what, r in (('If-None-Match: etag', got), ('If-None-Match: "nope", etag', listed)):
                    if (r.status, r.body) != (304, b''):
                        problems.append('%s %s: %s with %d body bytes, want 304 without body'
                                        % (where, what, r.status, len(r.body)))
                    elif r.header('etag') != etag:
                        problems.append('%s %s: 304 carries etag %r, want %r' % (where, what, r.header('etag'), etag))
                    for name in SECURITY_HEADERS:
                        if r.header(name) != dashboard_headers[path][name]:
                            problems.append('%s %s: 304 has %s %r' % (where, what, name, r.header(name)))
                if other.status != 200 or other.body != full[path].body:
                    problems.append('%s: a non-matching If-None-Match got %s' % (where, other.status))
                if head.status != 200 or head.body != b'':
                    problems.append('%s HEAD: %s with %d body bytes' % (where, head.status, len(head.body)))
                for name in ('content-length', 'content-type', 'content-encoding', 'etag', 'cache-control'):
                    if head.header(name) != full[path].header(name):
                        problems.append('%s HEAD: %s %r, GET has %r' % (where, name, head.header(name), full[path].header(name)))
                if head.header('content-length') is None:
                    problems.append('%s HEAD: no content-length' % where)
    assert not problems, '%d problem(s):\n%s' % (len(problems), '\n'.join(problems))


def test_cache_control_follows_the_content_hash(front):
    cases = [(MAIN_JS, IMMUTABLE), (WOFF2 + '?v=1.1.7', IMMUTABLE), (WOFF2, IMMUTABLE), ('/favicon.ico', 'no-cache')]
    cases += [(f, 'no-cache') for f in FILES if re.fullmatch(r'/assets/[^/]+\.svg', f)]
    assert len(cases) > 5  # assets/*.svg exist in the build
    with front.connect() as conn:
        responses = conn.get_many([p for p, _ in cases], headers=[('accept-encoding', BROWSER_AE)])
    for (path, cc), r in zip(cases, responses):
        assert r.status == 200 and from_memory(r), (path, r.status, r.headers)
        assert r.header('cache-control') == cc, (path, r.headers)
        assert decode(r.body, r.header('content-encoding')) == disk(path), path


def test_scripts_and_styles_go_first_to_clients_without_stream_dependencies(front):
    """A client that gives its streams no dependencies (Safari; h2load) gets render-blocking files
    ahead of the others, as from the h2o server: a 233 KB script asked for after a 98 KB image
    still ends first. With equal shares the image, smaller, would end first; Chromium's own
    dependency chain is left alone."""
    image = next(f for f in FILES if re.fullmatch(r'/ceph_background\.[0-9a-f]{20}\.gif', f))
    script = next(f for f in FILES if re.fullmatch(r'/483\.[0-9a-f]{20}\.js', f))
    assert len(disk(image)) * 2 < len(disk(script)) < len(disk(image)) * 16
    with front.connect() as conn:
        first, second = conn.get_many([image, script], headers=[('accept-encoding', 'identity')])
    assert first.status == second.status == 200 and from_memory(first) and from_memory(second)
    assert first.body == disk(image) and second.body == disk(script)
    assert second.end_order < first.end_order, 'the image ended before the script'


def test_an_asset_over_http11_is_served_compressed_from_memory(front):
    r = curl('-k', '--http1.1', '-H', 'Accept-Encoding: gzip', '-D', '-', f'https://127.0.0.1:{front.port}{MAIN_JS}')
    head, _, body = r.stdout.partition(b'\r\n\r\n')
    head = head.decode().lower()
    assert r.returncode == 0 and head.startswith('http/1.1 200'), (r.returncode, head)
    assert 'content-encoding: gzip' in head and 'cache-control: ' + IMMUTABLE in head and 'etag: "' in head, head
    assert gzip.decompress(body) == disk(MAIN_JS)


# ---------------------------------------------------------------------------------------------
# What is not an asset goes to the dashboard.


def test_document_and_api_are_forwarded(front, dashboard):
    token = dashboard.login()
    index = (LANG_DIR / 'index.html').read_bytes()
    with front.connect() as conn:
        doc, doc2, doc_plain = conn.requests([
            ('GET', '/', [('accept-encoding', BROWSER_AE)], None),
            ('GET', '/index.html', [('accept-encoding', BROWSER_AE)], None),
            ('GET', '/', [], None)])
        summary, anonymous, missing = conn.requests([
            ('GET', '/api/summary', [('accept', API_ACCEPT), ('cookie', 'token=' + token)], None),
            ('GET', '/api/summary', [('accept', API_ACCEPT)], None),
            ('GET', '/no-such-file.35ec9db61bcbaf2e5786.js', [], None)])
    for r in (doc, doc2, doc_plain):
        assert r.status == 200, (r.path, r.status, r.body[:200])
        assert r.header('server') == 'Ceph-Dashboard' and r.header('content-language') == 'en-US', (r.path, r.headers)
        assert r.header('etag') is None and r.header('cache-control') == 'no-cache', (r.path, r.headers)
        assert decode(r.body, r.header('content-encoding')) == index, r.path
    assert summary.status == 200 and summary.header('server') == 'Ceph-Dashboard', (summary.status, summary.body[:200])
    assert b'HEALTH_OK' in decode(summary.body, summary.header('content-encoding'))
    assert anonymous.status == 401 and anonymous.header('server') == 'Ceph-Dashboard', (anonymous.status, anonymous.headers)
    assert missing.status == 404 and missing.header('server') == 'Ceph-Dashboard', (missing.status, missing.headers)


def test_traversal_and_odd_paths_are_not_served_from_memory(front):
    etc = ['/..%2f..%2fetc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/assets/..%2f..%2f..%2fetc/passwd',
           '/..%2f..%2f..%2f..%2f..%2f..%2fetc/passwd']
    # these would name a real file once decoded or normalised; the dashboard may answer them, h2front must not
    aliases = ['/assets/..%2f' + MAIN_JS[1:], '/assets/%2e%2e/' + MAIN_JS[1:], '/assets/..' + MAIN_JS,
               '/.' + MAIN_JS, '/%2f' + MAIN_JS[1:]]
    with front.connect() as conn:
        responses = conn.get_many(etc + aliases)
    for path, r in zip(etc + aliases, responses):
        assert r.status is not None, (path, r.reset)
        assert not from_memory(r), (path, r.status, r.headers)
        # refused by h2front itself, or answered by the dashboard: never a file from the store
        assert r.status >= 400 or r.header('server') == 'Ceph-Dashboard', (path, r.status, r.headers)
    for path, r in zip(etc, responses):
        assert r.status in (400, 403, 404) and b'root:x:0:0' not in r.body, (path, r.status)


# ---------------------------------------------------------------------------------------------
# Announcing the critical set: 103 Early Hints, Link, push.


def test_early_hints_over_http2_name_the_critical_set(front):
    expected = expected_critical_set()
    with front.connect() as conn:
        r = conn.request('GET', '/', headers=[('accept-encoding', BROWSER_AE)])
    assert r.status == 200, (r.status, r.headers)
    assert [status for status, _ in r.informational] == [103], r.informational
    hints = dict(r.informational[0][1])
    assert parse_link(hints.get('link')) == expected, hints.get('link')
    assert r.header_values('link') == [hints['link']], r.headers
    assert conn.pushes == []


def test_no_103_over_http11_but_the_link_header(front):
    r = subprocess.run(['curl', '-sS', '-k', '--http1.1', '-v', '--max-time', '20', '-o', '/dev/null',
                        f'https://127.0.0.1:{front.port}/'], capture_output=True, timeout=30)
    trace = r.stderr.decode(errors='replace')
    assert r.returncode == 0, trace
    statuses = re.findall(r'(?m)^< HTTP/1\.1 (\d{3})', trace)
    assert statuses == ['200'], trace
    links = re.findall(r'(?mi)^< link: (.*?)\r?$', trace)
    assert len(links) == 1 and parse_link(links[0]) == expected_critical_set(), trace


def test_no_push_promise_by_default(front):
    with front.connect(enable_push=True) as conn:
        responses = conn.get_many(['/', '/index.html'], headers=[('accept-encoding', BROWSER_AE)])
        assert all(r.status == 200 for r in responses)
        assert conn.pushes == [], [p.path for p in conn.pushes]


def _casper_cookies(responses):
    out = []
    for r in responses:
        for value in r.header_values('set-cookie'):
            if value.startswith('h2o_casper='):
                out.append(value.split(';', 1)[0])
    return out


def test_push_sends_the_critical_set_once_per_browser(push_front):
    expected = [url for url, _ in expected_critical_set()]
    with push_front.connect(enable_push=True) as conn:
        doc = conn.request('GET', '/', headers=[('accept-encoding', BROWSER_AE)])
        pushes = list(conn.pushes)
    assert doc.status == 200, (doc.status, doc.headers)
    assert [p.path for p in pushes] == expected
    for p in pushes:
        assert p.status == 200 and p.ended and p.reset is None, (p.path, p.status, p.reset)
        assert decode(p.body, p.header('content-encoding')) == disk(p.path), p.path
        assert from_memory(p), (p.path, p.headers)
    scripts = [p for p in pushes if p.path.endswith('.js')]
    assert len(scripts) == 7 and [p.header('content-encoding') for p in scripts] == ['br'] * 7, [p.path for p in scripts]
    cookies = _casper_cookies([doc] + pushes)
    assert cookies, 'no h2o_casper cookie set on the first visit: %s' % doc.headers

    # the browser comes back with the cookie: it has them all, nothing is pushed
    with push_front.connect(enable_push=True) as conn:
        again = conn.request('GET', '/', headers=[('accept-encoding', BROWSER_AE), ('cookie', '; '.join(cookies))])
        assert again.status == 200
        assert conn.pushes == [], [p.path for p in conn.pushes]
        assert parse_link(again.header('link')) == expected_critical_set()


def nghttp_rows(port):
    """`nghttp -ans` (fetch the page and what it links, print statistics): [(pushed, status, path)]."""
    r = subprocess.run(['nghttp', '-ans', f'https://127.0.0.1:{port}/'], capture_output=True, timeout=30)
    out = r.stdout.decode(errors='replace')
    assert r.returncode == 0, out + r.stderr.decode(errors='replace')
    rows = re.findall(r'(?m)^\s*\d+\s+\+\S+\s+(\*?)\s*\+\S+\s+\S+\s+(\d{3})\s+\S+\s+(\S+)\s*$', out)
    assert rows, out
    return [(star == '*', int(code), path) for star, code, path in rows], out


def test_nghttp_sees_exactly_the_critical_set_pushed(push_front):
    rows, out = nghttp_rows(push_front.port)
    pushed = sorted(path for is_push, _, path in rows if is_push)
    assert pushed == sorted(url for url, _ in expected_critical_set()), out
    assert all(code == 200 for _, code, _ in rows), out
    assert [path for is_push, _, path in rows if not is_push] == ['/'], out  # nothing left to fetch


def test_nghttp_sees_no_push_by_default(front):
    rows, out = nghttp_rows(front.port)
    assert not any(is_push for is_push, _, _ in rows), out
    assert (False, 200, '/') in rows, out


# ---------------------------------------------------------------------------------------------
# Without assets.root, and under a url_prefix.


def test_without_root_everything_is_forwarded(plain_front):
    with plain_front.connect() as conn:
        js, doc = conn.get_many([MAIN_JS, '/'], headers=[('accept-encoding', BROWSER_AE)])
        assert conn.pushes == []
    assert js.status == 200 and js.header('server') == 'Ceph-Dashboard', (js.status, js.headers)
    assert js.header('cache-control') == 'no-cache' and js.header('etag') is None, js.headers
    assert decode(js.body, js.header('content-encoding')) == disk(MAIN_JS)
    assert doc.status == 200 and doc.informational == [] and doc.header('link') is None, (doc.informational, doc.headers)
    assert '[assets]' not in plain_front.proc.stderr()


def test_url_prefix_serves_the_build_below_the_prefix(prefix_front):
    with prefix_front.connect() as conn:
        js, icon, outside = conn.get_many(['/ceph' + MAIN_JS, '/ceph/favicon.ico', MAIN_JS],
                                          headers=[('accept-encoding', BROWSER_AE)])
        navigation = conn.request('GET', '/ceph/', headers=[('accept-encoding', BROWSER_AE)])
    assert js.status == 200 and from_memory(js), (js.status, js.headers)
    assert js.header('content-encoding') == 'br' and js.header('cache-control') == IMMUTABLE, js.headers
    assert brotli.decompress(js.body) == disk(MAIN_JS)
    assert icon.status == 200 and from_memory(icon) and icon.header('cache-control') == 'no-cache', icon.headers
    assert decode(icon.body, icon.header('content-encoding')) == disk('/favicon.ico')
    # the dashboard here has no prefix: outside the prefix is not an asset, so it answers itself
    assert not from_memory(outside) and outside.header('server') == 'Ceph-Dashboard', outside.headers
    # the announced URLs carry the prefix
    hints = [dict(h).get('link') for status, h in navigation.informational if status == 103]
    assert len(hints) == 1 and parse_link(hints[0]) == expected_critical_set('/ceph'), navigation.informational
