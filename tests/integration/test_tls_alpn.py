"""The TLS front, through real clients: ALPN h2 then http/1.1 on one port, TLS 1.2/1.3 only,
session resumption, certificates from files or generated, and the plain listener's redirect."""

import re
import subprocess

from harness import curl, free_port


def front_yaml(port, backend, tls='self-signed', extra=''):
    return f"""
listen:
  - address: "127.0.0.1:{port}"
    tls: {tls}
backends:
  - url: {backend.url}
{extra}"""


def s_client(port, *args, stdin=b'Q\n'):
    """openssl s_client against h2front; returns its combined output as text."""
    proc = subprocess.run(['openssl', 's_client', '-connect', f'127.0.0.1:{port}', '-servername', 'localhost',
                           *args], input=stdin, capture_output=True, timeout=20)
    return proc.returncode, (proc.stdout + proc.stderr).decode(errors='replace')


def test_alpn_negotiates_what_the_client_asks(tmp_path, testserver, h2front):
    port = free_port()
    h2front(front_yaml(port, testserver))
    url = f'https://127.0.0.1:{port}/json'
    for flag, version in (('--http2', '2'), ('--http1.1', '1.1')):
        r = curl('-k', flag, '-o', '/dev/null', '-w', '%{http_version} %{http_code}', url)
        assert r.stdout.decode() == f'{version} 200', (flag, r.stdout, r.stderr)

    rc, out = s_client(port, '-alpn', 'h2,http/1.1')
    assert 'ALPN protocol: h2' in out
    rc, out = s_client(port, '-alpn', 'http/1.1')
    assert 'ALPN protocol: http/1.1' in out
    rc, out = s_client(port)  # no ALPN at all: HTTP/1.1 still works
    assert 'No ALPN negotiated' in out


def test_only_tls_12_and_13_with_forward_secret_aead(tmp_path, testserver, h2front):
    port = free_port()
    h2front(front_yaml(port, testserver))
    rc, out = s_client(port, '-tls1_3')
    assert rc == 0 and 'New, TLSv1.3, Cipher is TLS_' in out, out
    rc, out = s_client(port, '-tls1_2')
    assert rc == 0, out
    cipher = re.search(r'New, TLSv1.2, Cipher is (\S+)', out).group(1)
    assert cipher.startswith('ECDHE-') and ('GCM' in cipher or 'CHACHA20' in cipher), cipher
    # TLS 1.1 and a CBC suite are refused
    rc, out = s_client(port, '-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0')
    assert rc != 0 or 'Cipher is (NONE)' in out
    rc, out = s_client(port, '-tls1_2', '-cipher', 'AES128-SHA')
    assert rc != 0 or 'Cipher is (NONE)' in out


def test_tls_sessions_are_resumed(tmp_path, testserver, h2front):
    port = free_port()
    h2front(front_yaml(port, testserver))
    session = tmp_path / 'session.pem'
    # an HTTP/1.0 exchange keeps s_client connected until TLS 1.3's ticket has arrived
    request = b'GET /json HTTP/1.0\r\nHost: localhost\r\n\r\n'
    for version in ('-tls1_2', '-tls1_3'):
        # (s_client exits 1 at the end: h2front closes TLS without close_notify, see tls.c)
        rc, out = s_client(port, version, '-ign_eof', '-sess_out', str(session), stdin=request)
        assert 'HTTP/1.1 200' in out, out
        rc, out = s_client(port, version, '-ign_eof', '-sess_in', str(session), stdin=request)
        assert 'Reused, TLSv1' in out, (version, out)


def test_certificate_from_files(tmp_path, testserver, h2front, cert):
    cert_path, key_path = cert
    port = free_port()
    h2front(front_yaml(port, testserver, tls=f'{{certificate: "{cert_path}", key: "{key_path}"}}'))
    r = curl('--cacert', cert_path, '--http2', '-w', '%{http_version}', '-o', '/dev/null',
             f'https://localhost:{port}/json', '--resolve', f'localhost:{port}:127.0.0.1')
    assert r.returncode == 0 and r.stdout == b'2', r.stderr


def test_self_signed_certificate_is_announced_and_pinnable(tmp_path, testserver, h2front):
    port = free_port()
    front = h2front(front_yaml(port, testserver))
    spki = re.search(r'SPKI sha256/([A-Za-z0-9+/=]{44})', front.log()).group(1)
    r = curl('-k', '--pinnedpubkey', f'sha256//{spki}', '-o', '/dev/null', '-w', '%{http_code}',
             f'https://127.0.0.1:{port}/json')
    assert r.stdout == b'200', r.stderr
    wrong = 'A' * 43 + '='
    r = curl('-k', '--pinnedpubkey', f'sha256//{wrong}', f'https://127.0.0.1:{port}/json')
    assert r.returncode != 0


def test_plain_listener_redirects_to_the_tls_address(tmp_path, testserver, h2front):
    tls_port, plain_port = free_port(), free_port()
    h2front(f"""
listen:
  - address: "127.0.0.1:{tls_port}"
    tls: self-signed
  - address: "127.0.0.1:{plain_port}"
    redirect: true
backends:
  - url: {testserver.url}
health_check:
  interval: 1h
""")
    assert curl('-k', f'https://127.0.0.1:{tls_port}/json').returncode == 0  # waits out the first health probe
    before = testserver.stats()['requests']  # the redirect must add nothing to this
    r = curl('-i', f'http://localhost:{plain_port}/api/summary?x=1')
    head = r.stdout.decode()
    assert head.startswith('HTTP/1.1 308'), head
    assert re.search(rf'(?im)^location: https://localhost:{tls_port}/api/summary\?x=1\r$', head), head
    assert testserver.stats()['requests'] == before
    r = curl('-kL', '-o', '/dev/null', '-w', '%{http_code} %{http_version}', f'http://localhost:{plain_port}/json')
    assert r.stdout == b'200 2'
