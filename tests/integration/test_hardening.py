"""HTTP/2 abuse that Debian's libh2o 2.2.5 does not stop by itself, and that h2front must: Rapid
Reset (CVE-2023-44487), streams opened and cancelled at once so that the concurrent-stream limit
never bites; and header floods, header blocks that decode into hundreds of thousands of fields.
A real HTTP/2 client (python3-h2) plays the attacker; the backend counts what reaches it; a
second client checks that everybody else is still served."""

import json
import select
import socket
import ssl
import time

import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import pytest

from harness import RSS_IS_H2FRONTS, Front, h2_connection, open_and_reset, read_until_closed, send_header_block


def start_front(h2front, backend, **sections):
    """h2front in front of the test backend (harness.Front: its first health probe done, the
    backend's counters reset), logging at info: the floods below would fill a debug log."""
    return Front(h2front, backend, log={'level': 'info'}, **sections)


def test_rapid_reset_ends_the_connection_with_goaway_and_spares_the_backend(tmp_path, testserver, h2front):
    front = start_front(h2front, testserver, limits={'stream_resets': '50'})
    port = front.port
    with h2_connection(port) as attacker:
        assert attacker.request('GET', '/json').status == 200  # one finished stream, counted below
        before = testserver.stats()['requests']
        sent = open_and_reset(attacker, 5000)
        goaway, closed = read_until_closed(attacker)
    assert goaway is not None and closed, 'h2front kept serving a client that reset %d streams' % sent
    assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert b'limits.stream_resets' in (goaway.additional_data or b'')
    # one finished stream, then at most 51 cancelled ones before the 52nd reset ends it all
    assert goaway.last_stream_id <= 2 * 53 + 1, goaway.last_stream_id
    assert testserver.stats()['requests'] - before <= 52
    assert 'reset 52 of its 53 streams (limits.stream_resets: 50)' in front.log()
    with h2_connection(port) as bystander:
        assert bystander.request('GET', '/json').status == 200


def test_streams_reset_before_any_request_completes_count_too(tmp_path, testserver, h2front):
    """POST streams whose body never comes reach no handler; libh2o alone would let a client
    open and cancel them forever. h2front watches every HTTP/2 connection from its second read."""
    front = start_front(h2front, testserver, limits={'stream_resets': '50'})
    port = front.port
    with h2_connection(port) as warmup:
        assert warmup.request('GET', '/json').status == 200
    before = testserver.stats()['requests']
    with h2_connection(port) as attacker:
        open_and_reset(attacker, 5000, method='POST', path='/echo')
        goaway, closed = read_until_closed(attacker)
    assert goaway is not None and closed
    assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert testserver.stats()['requests'] == before
    assert 'reset 51 of its 51 streams' in front.log()


def test_default_budget_is_two_hundred(tmp_path, testserver, h2front):
    front = start_front(h2front, testserver)
    port = front.port
    with h2_connection(port) as attacker:
        assert attacker.request('GET', '/json').status == 200
        open_and_reset(attacker, 1000)
        goaway, closed = read_until_closed(attacker)
    assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM and closed
    assert 'reset 202 of its 203 streams (limits.stream_resets: 200)' in front.log()


def test_a_client_that_lets_streams_finish_may_cancel_some(tmp_path, testserver, h2front):
    """A browser cancels streams when the user moves on (a route change aborts its API calls), but
    lets far more finish: it keeps its connection, however many it cancels over time."""
    front = start_front(h2front, testserver, limits={'stream_resets': '20'})
    port = front.port
    with h2_connection(port) as browser:
        for _ in range(3):  # 90 cancelled in all, far over the budget, but 120 finished
            responses = browser.get_many(['/json'] * 40)
            assert [r.status for r in responses] == [200] * 40
            assert open_and_reset(browser, 30) == 30
        assert browser.request('GET', '/json').status == 200
        assert browser.goaway is None
    assert '[h2guard]' not in front.log()


def test_streams_reset_mid_response_count_and_the_proxy_stays_up(tmp_path, testserver, h2front):
    """Streams cancelled while their answer streams (the backend still sending) count as resets as
    well; the connection ends, the backend connections are kept or closed cleanly, and a new
    client is served at once."""
    front = start_front(h2front, testserver, limits={'stream_resets': '5'})
    port = front.port
    with h2_connection(port) as attacker:
        assert attacker.request('GET', '/json').status == 200
        goaway = None
        for _ in range(10):
            stream_id = attacker.h2.get_next_available_stream_id()
            attacker.h2.send_headers(stream_id, [(':method', 'GET'), (':scheme', 'https'), (':authority', attacker.authority),
                                                 (':path', '/chunked?chunks=50&delay=0.02')], end_stream=True)
            try:
                attacker._flush()
                while True:  # wait for the response head: the stream is answering
                    events = attacker._receive_events('response head')
                    goaway = next((e for e in events if isinstance(e, h2.events.ConnectionTerminated)), goaway)
                    if goaway or any(isinstance(e, h2.events.ResponseReceived) for e in events):
                        break
                attacker.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
                attacker._flush()
            except (OSError, ssl.SSLError, h2.exceptions.ProtocolError):
                break
        goaway = read_until_closed(attacker)[0] or goaway
    assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert 'reset 7 of its 8 streams (limits.stream_resets: 5)' in front.log()
    with h2_connection(port) as bystander:
        assert bystander.request('GET', '/json').status == 200


def rss_kib(pid):
    with open('/proc/%d/status' % pid) as status:
        return next(int(line.split()[1]) for line in status if line.startswith('VmRSS:'))


def assert_grew_less_than(front, before_kib, limit_kib):
    """h2front's RSS grew by less than limit_kib since before_kib (checked only where RSS is
    h2front's own: see harness.RSS_IS_H2FRONTS)."""
    grown = rss_kib(front.proc.pid) - before_kib
    assert not RSS_IS_H2FRONTS or grown < limit_kib, 'h2front grew by %d KiB' % grown


def test_header_flood_ends_the_connection_before_it_is_decoded(tmp_path, testserver, h2front):
    """150,000 one-byte references to HPACK's static table, 300 KB over CONTINUATION frames: libh2o
    2.2.5 alone decodes them into 150,000 fields (about 20 MB) and keeps them while the stream
    waits for its body. h2front counts the fields first and ends the connection."""
    front = start_front(h2front, testserver)
    port = front.port
    with h2_connection(port) as warmup:
        assert warmup.request('GET', '/json').status == 200
    before = rss_kib(front.proc.pid)
    with h2_connection(port) as attacker:
        send_header_block(attacker, [('accept', '')] * 150000)
        goaway, closed = read_until_closed(attacker)
    assert goaway is not None and closed
    assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert b'limits.header_count' in (goaway.additional_data or b'')
    assert 'sent a header block of more than 216 fields (limits.header_count)' in front.log()
    assert_grew_less_than(front, before, 8 * 1024)
    with h2_connection(port) as bystander:
        assert bystander.request('GET', '/json').status == 200


def test_near_misses_still_get_431_and_only_floods_end_the_connection(tmp_path, testserver, h2front):
    """Up to twice limits.header_count fields (plus room for pseudo-headers) a request is decoded
    and refused with 431 on a connection that goes on; beyond, the block is not decoded at all."""
    front = start_front(h2front, testserver, limits={'header_count': '20'})
    port = front.port
    with h2_connection(port) as conn:
        assert conn.request('GET', '/json').status == 200
        assert conn.request('GET', '/json', [('x-h%d' % i, 'v') for i in range(52)]).status == 431
        assert conn.request('GET', '/json').status == 200
        send_header_block(conn, [('x-h%d' % i, 'v') for i in range(53)], method='GET', path='/json')
        goaway, closed = read_until_closed(conn)
    assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM and closed
    assert 'more than 56 fields' in front.log()


def test_a_large_header_block_over_continuation_frames_is_forwarded(tmp_path, testserver, h2front):
    """A 40 KB cookie needs HEADERS and CONTINUATION frames; the guard joins them to count and lets
    the request through untouched."""
    front = start_front(h2front, testserver)
    port = front.port
    cookie = 'token=' + 'x' * 40000
    with h2_connection(port) as conn:
        response = conn.request('GET', '/echo', [('cookie', cookie), ('x-after-cookie', 'yes')])
    assert response.status == 200
    echoed = dict((name.lower(), value) for name, value in json.loads(response.body)['headers'])
    assert echoed['cookie'] == cookie and echoed['x-after-cookie'] == 'yes'


@pytest.mark.parametrize('frame', ['PING', 'SETTINGS'])
def test_control_frame_flood_from_a_client_that_never_reads(tmp_path, testserver, h2front, frame):
    """Each PING and SETTINGS frame asks for an answer; a client that sends them without reading
    would make a server queue answers without end (CVE-2019-9512, -9515). Debian's libh2o stops
    reading such a client once 512 KB of answers wait; front.idle_timeout then ends it. Checked
    here in h2front's configuration: memory stays flat, the connection ends, others are served."""
    front = start_front(h2front, testserver, front={'idle_timeout': '2s'})
    port = front.port
    with h2_connection(port) as warmup:
        assert warmup.request('GET', '/json').status == 200
    before = rss_kib(front.proc.pid)
    attacker = h2_connection(port)
    attacker.sock.setblocking(False)
    sent, started, closed = 0, time.monotonic(), False
    while time.monotonic() - started < 15:
        for _ in range(1000):
            if frame == 'PING':
                attacker.h2.ping(b'flooding')
            else:
                attacker.h2.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100})
        try:
            sent += attacker.sock.send(attacker.h2.data_to_send())
        except (ssl.SSLWantWriteError, BlockingIOError):
            time.sleep(0.05)  # h2front stopped reading; we keep trying, as an attacker would
        except (OSError, ssl.SSLError):
            closed = True
            break
    attacker.sock.close()
    assert closed, 'a flooding client that never reads kept its connection for 15 s'
    assert sent > 1024 * 1024  # the flood really went out before h2front stopped reading
    assert_grew_less_than(front, before, 16 * 1024)
    with h2_connection(port) as bystander:
        assert bystander.request('GET', '/json').status == 200


def test_a_header_block_that_never_ends_is_bounded(tmp_path, testserver, h2front):
    """CONTINUATION frames without END_HEADERS, on and on (the 2024 CONTINUATION floods): libh2o
    buffers a block up to 417 KB (H2O_MAX_REQLEN), refuses the stream, and ends the connection at
    the next CONTINUATION. Raw frames, since python3-h2 will not send a block without an end."""
    front = start_front(h2front, testserver)
    port = front.port
    with h2_connection(port) as warmup:
        assert warmup.request('GET', '/json').status == 200
    before = rss_kib(front.proc.pid)
    attacker = h2_connection(port)
    fragment = b'\x93' * 16384  # one-byte references to the static table's "accept"

    def frame(frame_type, stream_id=1):
        return len(fragment).to_bytes(3, 'big') + bytes([frame_type, 0]) + stream_id.to_bytes(4, 'big') + fragment

    closed = False
    try:
        attacker.sock.sendall(frame(0x1))  # HEADERS without END_HEADERS
        for _ in range(200):  # 3.2 MB of CONTINUATION
            attacker.sock.sendall(frame(0x9))
    except (OSError, ssl.SSLError):
        closed = True
    deadline = time.monotonic() + 5
    while not closed and time.monotonic() < deadline:  # raw bytes: python3-h2 knows nothing of stream 1
        if attacker.sock.pending() or select.select([attacker.sock], [], [], deadline - time.monotonic())[0]:
            try:
                closed = attacker.sock.recv(65536) == b''
            except (OSError, ssl.SSLError):
                closed = True
    attacker.sock.close()
    assert closed
    assert_grew_less_than(front, before, 8 * 1024)
    with h2_connection(port) as bystander:
        assert bystander.request('GET', '/json').status == 200


def test_an_idle_connection_gets_goaway_then_is_closed(tmp_path, testserver, h2front):
    front = start_front(h2front, testserver, front={'idle_timeout': '1s'})
    port = front.port
    with h2_connection(port) as client:
        assert client.request('GET', '/json').status == 200
        started = time.monotonic()
        goaway, closed = read_until_closed(client, timeout=6)
        waited = time.monotonic() - started
    assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.NO_ERROR and closed
    assert 0.9 <= waited < 4, waited


def test_a_client_that_never_completes_its_handshake_is_cut(tmp_path, testserver, h2front):
    """A TCP connection that sends nothing (or half a ClientHello) holds a socket until
    front.handshake_timeout."""
    front = start_front(h2front, testserver, front={'handshake_timeout': '500ms'})
    port = front.port
    with socket.create_connection(('127.0.0.1', port)) as silent, socket.create_connection(('127.0.0.1', port)) as half:
        half.sendall(b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03')  # the start of a ClientHello
        started = time.monotonic()
        for sock in (silent, half):
            sock.settimeout(5)
            try:
                assert sock.recv(1024) == b''
            except ConnectionResetError:
                pass
        assert time.monotonic() - started < 3
