"""What crosses h2front, checked at both ends: the request the backend receives (/echo shows it as
received) and the response the client gets. Includes the demo dashboard end to end: the unchanged
dashboard must work through h2front over HTTP/2."""

import json
import re

from harness import API_ACCEPT, curl, free_port, h2_connection, security_header_problems


def front_yaml(port, backend, extra='', plain_port=None):
    plain = f'\n  - address: "127.0.0.1:{plain_port}"' if plain_port else ''
    return f"""
listen:
  - address: "127.0.0.1:{port}"
    tls: self-signed{plain}
backends:
  - url: {backend.url}
health_check:
  interval: 1h
log:
  level: debug
{extra}"""


def echoed(response):
    """The request as the backend received it: (method, path, [(name, value)])."""
    assert response.status == 200, (response.status, response.body[:300])
    doc = json.loads(response.body)
    return doc['method'], doc['path'], [(n.lower(), v) for n, v in doc['headers']], doc


def values(headers, name):
    return [v for n, v in headers if n == name]


def test_host_kept_and_forwarded_headers_set_by_h2front(tmp_path, testserver, h2front):
    port = free_port()
    h2front(front_yaml(port, testserver))
    with h2_connection(port) as conn:
        r = conn.request('GET', '/echo?q=1', headers=[('x-forwarded-for', '6.6.6.6'), ('x-forwarded-proto', 'gopher'),
                                                      ('x-forwarded-host', 'evil'), ('forwarded', 'for=6.6.6.6'),
                                                      ('authorization', 'Bearer abc.def')])
    method, path, headers, _ = echoed(r)
    assert (method, path) == ('GET', '/echo?q=1')
    assert values(headers, 'host') == [f'localhost:{port}']
    assert values(headers, 'x-forwarded-for') == ['127.0.0.1']
    assert values(headers, 'x-forwarded-proto') == ['https']
    assert values(headers, 'x-forwarded-host') == [f'localhost:{port}']
    assert values(headers, 'forwarded') == []
    assert values(headers, 'authorization') == ['Bearer abc.def']


def test_split_http2_cookies_arrive_as_one_header(tmp_path, testserver, h2front):
    port = free_port()
    h2front(front_yaml(port, testserver))
    with h2_connection(port) as conn:
        r = conn.request('GET', '/echo', headers=[('cookie', 'token=abc'), ('cookie', 'cd-lang=en-US'), ('cookie', 'x=1')])
    _, _, headers, _ = echoed(r)
    assert values(headers, 'cookie') == ['token=abc; cd-lang=en-US; x=1']


def test_hop_by_hop_request_headers_dropped(tmp_path, testserver, h2front):
    port = free_port()
    h2front(front_yaml(port, testserver))
    r = curl('-k', '--http1.1', '-H', 'Connection: keep-alive, X-Private', '-H', 'X-Private: secret',
             '-H', 'Keep-Alive: timeout=5', '-H', 'TE: trailers', '-H', 'Proxy-Connection: keep-alive',
             '-H', 'X-Kept: yes', f'https://127.0.0.1:{port}/echo')
    headers = [(n.lower(), v) for n, v in json.loads(r.stdout)['headers']]
    names = {n for n, _ in headers}
    assert not names & {'x-private', 'keep-alive', 'te', 'proxy-connection'}, headers
    assert values(headers, 'connection') == []  # HTTP/1.1 keeps the pooled connection alive by default
    assert values(headers, 'x-kept') == ['yes']


def test_hop_by_hop_response_headers_dropped(tmp_path, testserver, h2front):
    port = free_port()
    h2front(front_yaml(port, testserver))
    r = curl('-k', '--http1.1', '-D', '-', '-o', '/dev/null', f'https://127.0.0.1:{port}/hop')
    head = r.stdout.decode().lower()
    assert 'x-end: 1' in head
    assert 'x-hop' not in head and 'proxy-connection' not in head and 'keep-alive: timeout' not in head, head


def test_location_and_refresh_pointing_at_the_backend_are_rewritten(tmp_path, testserver, h2front):
    port = free_port()
    h2front(front_yaml(port, testserver))
    backend = f'127.0.0.1:{testserver.port}'
    cases = [
        (f'/redirect?to=http://{backend}/api/x%3Fa=1&status=303', 'location', f'https://localhost:{port}/api/x?a=1'),
        (f'/redirect?to=https://{backend}/y&status=302', 'location', f'https://localhost:{port}/y'),
        ('/redirect?to=http://example.org/z&status=302', 'location', 'http://example.org/z'),
        ('/redirect?to=/relative&status=302', 'location', '/relative'),
        (f'/refresh?to=http://{backend}/r', 'refresh', f'0; url=https://localhost:{port}/r'),
    ]
    with h2_connection(port) as conn:
        responses = conn.get_many([path for path, _, _ in cases])
    for (path, header, expected), r in zip(cases, responses):
        assert r.header(header) == expected, (path, r.status, r.headers)


def test_cookies_get_secure_over_tls_only(tmp_path, testserver, h2front):
    port, plain = free_port(), free_port()
    h2front(front_yaml(port, testserver, plain_port=plain), ports=[port, plain])
    with h2_connection(port) as conn:
        cookies = conn.request('GET', '/setcookie').header_values('set-cookie')
    assert cookies == ['token=abc; HttpOnly; Path=/; SameSite=Strict; Secure', 'other=1; Path=/; Secure']
    r = curl('-D', '-', '-o', '/dev/null', f'http://127.0.0.1:{plain}/setcookie')
    plain_cookies = re.findall(r'(?im)^set-cookie: (.*)\r$', r.stdout.decode())
    assert plain_cookies == ['token=abc; HttpOnly; Path=/; SameSite=Strict', 'other=1; Path=/']


def test_header_limits_answer_431_and_nothing_is_forwarded(tmp_path, testserver, h2front):
    port = free_port()
    h2front(front_yaml(port, testserver, extra='limits: { header_count: 20, header_bytes: 4KiB }'))
    many = [(f'x-h{i}', 'v') for i in range(25)]
    big = [('x-big', 'a' * 5000)]
    with h2_connection(port) as conn:
        assert conn.request('GET', '/json').status == 200  # also waits out h2front's first health probe
        before = testserver.stats()['requests']
        too_many, too_big, fine = conn.requests([('GET', '/json', many, None), ('GET', '/json', big, None),
                                                 ('GET', '/json', many[:10], None)])
    assert too_many.status == 431 and too_big.status == 431 and fine.status == 200
    assert testserver.stats()['requests'] - before == 1
    assert security_header_problems(too_many) == [] and security_header_problems(too_big) == []


def test_control_characters_in_path_are_refused(tmp_path, testserver, h2front):
    port = free_port()
    h2front(front_yaml(port, testserver))
    with h2_connection(port) as conn:
        assert conn.request('GET', '/json').status == 200  # also waits out h2front's first health probe
        before = testserver.stats()['requests']
        r = conn.request('GET', '/echo HTTP/1.1\r\nX-Smuggled: 1\r\n\r\nGET /x')  # libh2o refuses CR and LF
        spaced = conn.request('GET', '/echo HTTP/1.1')  # h2front refuses what libh2o lets through
    assert r.status == 400 and spaced.status == 400
    assert b'h2front: invalid characters in the request path' in spaced.body, spaced.body
    assert testserver.stats()['requests'] == before
    assert security_header_problems(spaced) == []


def test_demo_dashboard_login_and_api_over_http2(tmp_path, dashboard, h2front):
    """The unchanged dashboard through h2front: an h2 POST without content-length (CherryPy would
    answer 411), the token cookie made Secure, and the cookie-authenticated API."""
    port = free_port()
    h2front(front_yaml(port, dashboard))
    api = [('accept', API_ACCEPT), ('content-type', 'application/json')]
    with h2_connection(port) as conn:
        login = conn.requests([('POST', '/api/auth', api, json.dumps({'username': 'admin', 'password': 'admin'}).encode())],
                              content_length=False)[0]
        assert login.status == 201, login.body
        cookie = login.header('set-cookie')
        assert cookie.startswith('token=') and 'Secure' in cookie and 'HttpOnly' in cookie
        token = cookie.split(';')[0]
        summary, health, index = conn.requests([
            ('GET', '/api/summary', api + [('cookie', token)], None),
            ('GET', '/api/health/minimal', api + [('cookie', token), ('accept-encoding', 'gzip')], None),
            ('GET', '/', [('accept-encoding', 'gzip')], None)])
        assert summary.status == 200 and json.loads(summary.body)
        assert health.status == 200 and health.header('content-encoding') == 'gzip'
        assert index.status == 200 and index.header('server') == 'Ceph-Dashboard'
        logout = conn.requests([('POST', '/api/auth/logout', [('accept', API_ACCEPT), ('cookie', token)], None)])[0]
        assert logout.status == 200, logout.body  # no body: h2front still sends content-length: 0


def test_chunked_http1_body_reaches_the_dashboard_with_a_length(tmp_path, dashboard, h2front):
    port = free_port()
    h2front(front_yaml(port, dashboard))
    r = curl('-k', '--http1.1', '-H', 'Transfer-Encoding: chunked', '-H', f'Accept: {API_ACCEPT}',
             '-H', 'Content-Type: application/json', '--data-binary', '{"username": "admin", "password": "admin"}',
             '-o', '/dev/null', '-w', '%{http_code}', f'https://127.0.0.1:{port}/api/auth')
    assert r.stdout == b'201', r.stderr
