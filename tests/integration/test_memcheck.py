"""h2front's whole life under valgrind's memcheck: start, load assets, proxy over both protocols,
push and hint, lose a backend, reset a stream, end an abusive client's connection (h2guard),
drain a request in flight at SIGTERM, exit.

AddressSanitizer sees only what the compiler instrumented. h2front's memory is also touched by
libuv and libh2o, which Debian builds without it: a struct freed while libuv still holds a
timer inside it (libuv writes to the timer when it finishes closing it) goes unnoticed by ASan
and crashes the release build now and then, on exit. Memcheck watches every access of every
library, so this test runs the release build under it (meson registers it only for a build
without sanitizers: valgrind cannot run an ASan binary)."""

import hashlib
import json
import shutil
import textwrap
import threading

import h2.errors
import pytest

import harness
from harness import curl, free_port, h2_connection, open_and_reset, pattern_bytes, read_until_closed, send_header_block

VALGRIND = shutil.which('valgrind')

pytestmark = pytest.mark.skipif(VALGRIND is None, reason='valgrind is not installed (scripts/install-deps.sh --test)')

INDEX_HTML = b'''<!doctype html><html><head><link rel="stylesheet" href="styles.0123456789abcdef.css">
</head><body><script src="main.0123456789abcdef.js" defer></script></body></html>'''
STYLES_CSS = b'body { background: url(bg.0123456789abcdef.png) }\n' + b'.x { color: red }\n' * 2000
MAIN_JS = b'console.log("main");\n' * 5000


def write_build(root):
    """A dashboard build in miniature: dist/en-US/ with a page, its stylesheet, script and image."""
    lang = root / 'en-US'
    lang.mkdir(parents=True)
    (lang / 'index.html').write_bytes(INDEX_HTML)
    (lang / 'styles.0123456789abcdef.css').write_bytes(STYLES_CSS)
    (lang / 'main.0123456789abcdef.js').write_bytes(MAIN_JS)
    (lang / 'bg.0123456789abcdef.png').write_bytes(pattern_bytes(3000))
    return root


def memcheck_yaml(port, plain_port, backend, dead_port, build):
    return textwrap.dedent(f"""\
        listen:
          - address: "127.0.0.1:{port}"
            tls: self-signed
          - address: "127.0.0.1:{plain_port}"
        backends:
          - url: {backend.url}
          - url: http://127.0.0.1:{dead_port}
        upstream:
          max_connections: 2
        limits:
          stream_resets: 20
        health_check:
          interval: 300ms
        assets:
          root: {build}
          push: true
        log:
          level: debug
        """)


def exercise_http2(port):
    """Assets from memory with 103 and push, proxied requests with bodies in both directions
    through a pool of two connections, and a stream the client resets mid-body."""
    with h2_connection(port, timeout=60) as conn:
        upload = pattern_bytes(300 * 1024, seed='up')
        responses = conn.requests([
            ('GET', '/', [('accept', 'text/html')], None),
            ('GET', '/main.0123456789abcdef.js', [('accept-encoding', 'br')], None),
            ('GET', '/styles.0123456789abcdef.css', [('accept-encoding', 'gzip')], None),
            ('GET', '/json', [], None),
            ('POST', '/echo', [('content-type', 'application/octet-stream')], upload),
            ('GET', '/chunked', [], None),
            ('GET', '/bytes?n=1000000', [], None),
        ])
        document, js, css, api, echo, chunked, big = responses
        assert any(status == 103 for status, _ in document.informational), document
        assert js.status == 200 and js.header('content-encoding') == 'br', js
        assert css.status == 200 and css.header('content-encoding') == 'gzip', css
        assert api.status == 200 and b'"hello"' in api.body, api
        assert echo.status == 200, echo
        assert json.loads(echo.body)['body_sha256'] == hashlib.sha256(upload).hexdigest(), echo.body
        assert chunked.status == 200 and chunked.body, chunked
        assert big.status == 200 and big.body == pattern_bytes(1000000), big.status
        assert conn.pushes, 'the critical set was not pushed'

        # a reset in the middle of a proxied body: the exchange ends, the connection goes on
        stream_id = conn.h2.get_next_available_stream_id()
        conn.h2.send_headers(stream_id, [(':method', 'GET'), (':scheme', 'https'), (':authority', conn.authority),
                                         (':path', '/bytes?n=20000000')], end_stream=True)
        conn._flush()
        conn._receive_events('the start of /bytes?n=20000000')
        conn.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        conn._flush()
        again = conn.request('GET', '/json')
        assert again.status == 200, again


def exercise_http2_abuse(port):
    """h2guard ends a Rapid Reset and a header flood: its frame reader hands over to libh2o's, and
    its per-connection state goes with the socket."""
    with h2_connection(port, timeout=60) as attacker:
        assert attacker.request('GET', '/json').status == 200
        open_and_reset(attacker, 200)
        goaway, closed = read_until_closed(attacker, timeout=60)
        assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM and closed, goaway
    with h2_connection(port, timeout=60) as attacker:
        send_header_block(attacker, [('accept', '')] * 1000)
        goaway, closed = read_until_closed(attacker, timeout=60)
        assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM and closed, goaway


def exercise_http1(port, plain_port):
    for url in ('https://127.0.0.1:%d/json' % port, 'http://127.0.0.1:%d/json' % plain_port):
        result = curl('-sk', '--http1.1', url, '-o', '/dev/null', url, '-o', '/dev/null', '-w', '%{http_code} ', timeout=60)
        assert result.stdout.decode().split() == ['200', '200'], result


def test_a_whole_life_touches_no_freed_or_unowned_memory(tmp_path):
    testserver = harness.start_testserver(tmp_path, verbose=True)
    build = write_build(tmp_path / 'dist')
    port, plain_port, dead_port = free_port(), free_port(), free_port()
    report = tmp_path / 'memcheck.log'
    wrapper = [VALGRIND, '--error-exitcode=99', '--leak-check=full', '--show-leak-kinds=definite',
               '--errors-for-leak-kinds=definite', '--log-file=%s' % report]
    front = harness.start_h2front(tmp_path, memcheck_yaml(port, plain_port, testserver, dead_port, build),
                                  timeout=120, wrapper=wrapper)
    front.proc.wait_for_log(r'\[assets\] loaded ', 120)
    front.proc.wait_for_log(' -> active ', 60)
    front.proc.wait_for_log(' -> down ', 60)  # the backend nobody listens on: refused connects, every 300 ms

    exercise_http2(port)
    exercise_http2_abuse(port)
    exercise_http1(port, plain_port)

    # SIGTERM with a request in flight: the drain lets it finish, then h2front exits on its own
    in_flight = {}
    request = threading.Thread(target=lambda: in_flight.update(result=curl(
        '-sk', '--http1.1', 'https://127.0.0.1:%d/slow-head?delay=3' % port, timeout=120)))
    request.start()
    testserver.proc.wait_for_log('/slow-head', 60)  # the backend has it: h2front is mid-exchange
    status = front.proc.stop(timeout=120)
    request.join()
    memcheck = report.read_text(errors='replace')
    assert in_flight['result'].stdout == b'slow\n', in_flight['result']
    assert status == 0, 'exit status %s\n%s\n%s' % (status, memcheck[-12000:], front.log()[-3000:])
    assert 'ERROR SUMMARY: 0 errors' in memcheck, memcheck[-12000:]
