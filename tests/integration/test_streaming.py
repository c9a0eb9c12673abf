"""Bodies both ways through h2front: request bodies arrive whole and with a Content-Length,
response bodies stream as they come (head first), bodiless responses keep the connection
reusable, and a client that stops reading loses its stream without pinning a backend connection
or h2front's memory.

Every test starts its own testserver (or a tiny inline backend) and its own h2front.

Environment: H2FRONT_BIN (the binary), H2FRONT_SOURCE_ROOT (the source tree).
"""

import hashlib
import json
import os
import re
import select
import socket
import ssl
import subprocess
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest

from harness import (H2FRONT_BIN, PYTHON, Front, Proc, _Exchange, chunk_byte, curl, h2_connection,
                     pattern_bytes, security_header_problems, start_testserver)

pytestmark = pytest.mark.skipif(not H2FRONT_BIN, reason="H2FRONT_BIN is not set")

MiB = 1024 * 1024


def wait_for(probe, timeout, what):
    """Poll `probe` every 20 ms until it returns something true; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        assert time.monotonic() < deadline, "not %s within %ss" % (what, timeout)
        time.sleep(0.02)


def timed_requests(conn, specs, content_length=True):
    """Like H2Client.requests, but each H2Response also gets .head_at, .first_data_at and .end_at
    (time.monotonic() when its HEADERS, its first DATA and its end arrived)."""

    class Timed(_Exchange):
        def on_stream_event(self, event, response):
            super().on_stream_event(event, response)
            now = time.monotonic()
            if isinstance(event, h2.events.ResponseReceived):
                response.head_at = now
            if isinstance(event, h2.events.DataReceived) and event.data and not hasattr(response, "first_data_at"):
                response.first_data_at = now
            if response.ended and not hasattr(response, "end_at"):
                response.end_at = now

    exchange = Timed(conn, list(specs), content_length)
    exchange.run()
    return exchange.responses


def echoed_headers(response_body):
    """The request headers the backend got, as {lowercase name: [values]}, from /echo's JSON."""
    echo = json.loads(response_body)
    headers = {}
    for name, value in echo["headers"]:
        headers.setdefault(name.lower(), []).append(value)
    return echo, headers


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# Request bodies.


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "no-content-length"])
def test_10mib_post_over_h2_arrives_byte_identical(tmp_path, h2front, with_length):
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend)
    body = pattern_bytes(10 * MiB, "upload")
    with h2_connection(front.port) as conn:
        response = conn.requests([("POST", "/echo", [("content-type", "application/octet-stream")], body)],
                                 content_length=with_length)[0]
    assert response.status == 200, (response.status, response.body[:300])
    echo, headers = echoed_headers(response.body)
    assert (echo["body_len"], echo["body_sha256"]) == (len(body), sha256(body))
    assert headers.get("content-length") == [str(len(body))], headers
    assert "transfer-encoding" not in headers, headers


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "transfer-encoding-chunked"])
def test_10mib_post_over_http1_arrives_byte_identical(tmp_path, h2front, chunked):
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend)
    body = pattern_bytes(10 * MiB, "upload1")
    path = tmp_path / "body.bin"
    path.write_bytes(body)
    extra = ["-H", "Transfer-Encoding: chunked"] if chunked else []
    result = curl("--http1.1", "-k", "--data-binary", "@%s" % path, "-H", "Content-Type: application/octet-stream",
                  *extra, front.url("/echo"))
    assert result.returncode == 0, result.stderr
    echo, headers = echoed_headers(result.stdout)
    assert (echo["body_len"], echo["body_sha256"]) == (len(body), sha256(body))
    assert headers.get("content-length") == [str(len(body))], headers
    assert "transfer-encoding" not in headers, headers
    # and to /upload, the dashboard-like endpoint that refuses chunked bodies with 411
    result = curl("--http1.1", "-k", "--data-binary", "@%s" % path, *extra, "-w", "\n%{http_code}",
                  front.url("/upload"))
    payload, status = result.stdout.rsplit(b"\n", 1)
    assert status == b"200", result.stdout[:300]
    assert json.loads(payload) == {"len": len(body), "sha256": sha256(body)}


def test_empty_post_carries_content_length_zero(tmp_path, h2front):
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend)
    with h2_connection(front.port) as conn:
        # END_STREAM on HEADERS; an empty DATA frame without content-length; content-length: 0
        no_data = conn.request("POST", "/echo")
        empty_data = conn.requests([("POST", "/echo", (), b"")], content_length=False)[0]
        explicit = conn.request("POST", "/echo", body=b"")
        get = conn.request("GET", "/echo")
    for name, response in [("no DATA", no_data), ("empty DATA", empty_data), ("content-length: 0", explicit)]:
        assert response.status == 200, (name, response.status, response.body)
        echo, headers = echoed_headers(response.body)
        assert headers.get("content-length") == ["0"], (name, headers)
        assert echo["body_len"] == 0
    _, headers = echoed_headers(get.body)
    assert "content-length" not in headers, "a GET without a body gets no Content-Length: %s" % headers
    # the same over HTTP/1.1: curl -X POST sends no Content-Length at all
    result = curl("--http1.1", "-k", "-X", "POST", front.url("/echo"))
    _, headers = echoed_headers(result.stdout)
    assert headers.get("content-length") == ["0"], headers


def test_body_over_limit_gets_413_over_http1(tmp_path, h2front):
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend, limits={"request_body": "1MiB"})
    path = tmp_path / "big.bin"
    path.write_bytes(pattern_bytes(2 * MiB, "big"))
    for extra in ([], ["-H", "Transfer-Encoding: chunked"]):
        result = curl("--http1.1", "-k", "-w", "\n%{http_code}", "--data-binary", "@%s" % path, *extra,
                      front.url("/upload"))
        body, status = result.stdout.rsplit(b"\n", 1)
        assert status == b"413", (extra, result.stdout[:300], result.stderr)
    assert backend.stats()["requests"] == 0, "nothing over the limit may reach the backend"
    at_limit = pattern_bytes(MiB, "limit")
    path.write_bytes(at_limit)
    result = curl("--http1.1", "-k", "--data-binary", "@%s" % path, front.url("/upload"))
    assert json.loads(result.stdout) == {"len": MiB, "sha256": sha256(at_limit)}


@pytest.mark.parametrize("size", [MiB - 1, MiB])
def test_chunked_http1_body_up_to_the_limit_is_accepted(tmp_path, h2front, size):
    """limits.request_body is the largest body allowed, however it is framed."""
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend, limits={"request_body": "1MiB"})
    body = pattern_bytes(size, "limit")
    path = tmp_path / "body.bin"
    path.write_bytes(body)
    result = curl("--http1.1", "-k", "-w", "\n%{http_code}", "-H", "Transfer-Encoding: chunked",
                  "--data-binary", "@%s" % path, front.url("/upload"))
    payload, status = result.stdout.rsplit(b"\n", 1)
    assert status == b"200", (size, result.stdout[:300])
    assert json.loads(payload) == {"len": size, "sha256": sha256(body)}


def test_body_over_limit_gets_413_over_h2(tmp_path, h2front):
    """README: larger bodies get 413. Over HTTP/2 too: a reset stream (REFUSED_STREAM in
    particular, which tells a browser the request was not processed and may be retried as is) is
    not an answer."""
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend, limits={"request_body": "1MiB"})
    too_big = pattern_bytes(2 * MiB, "big")
    at_limit = pattern_bytes(MiB, "limit")
    with h2_connection(front.port) as conn:
        with_length = conn.request("POST", "/upload", body=too_big)
        without_length = conn.requests([("POST", "/upload", (), too_big)], content_length=False)[0]
        fine = conn.request("POST", "/upload", body=at_limit)
    assert fine.status == 200, (fine.status, fine.reset, fine.body[:200])
    assert json.loads(fine.body) == {"len": MiB, "sha256": sha256(at_limit)}
    assert backend.stats()["requests"] == 1, "nothing over the limit may reach the backend"
    for name, response in [("with content-length", with_length), ("without content-length", without_length)]:
        assert (response.status, response.reset) == (413, None), (name, response.status, response.reset,
                                                                  response.body[:200])
        assert security_header_problems(response) == [], name


def test_expect_100_continue_from_http1_client(tmp_path, h2front):
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend)
    body = pattern_bytes(100_000, "expect")
    path = tmp_path / "body.bin"
    path.write_bytes(body)
    for tls in (True, False):
        started = time.monotonic()
        # curl waits up to 5 s for the 100 before sending the body anyway: a quick answer proves it came
        result = curl("--http1.1", "-k", "-v", "-H", "Expect: 100-continue", "--expect100-timeout", "5",
                      "--data-binary", "@%s" % path, front.url("/echo", tls))
        elapsed = time.monotonic() - started
        assert result.returncode == 0, result.stderr
        stderr = result.stderr.decode(errors="replace")
        assert re.search(r"^< HTTP/1\.1 100 Continue", stderr, re.M), stderr
        assert elapsed < 3, "took %.1fs: curl waited for a 100 Continue that never came" % elapsed
        echo, headers = echoed_headers(result.stdout)
        assert (echo["body_len"], echo["body_sha256"]) == (len(body), sha256(body))
        assert headers.get("content-length") == [str(len(body))], headers
        assert "expect" not in headers, "Expect is hop-by-hop here: h2front already answered it: %s" % headers


# ---------------------------------------------------------------------------------------------
# Response bodies stream.


def test_slow_chunked_response_streams_over_h2(tmp_path, h2front):
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend)
    with h2_connection(front.port) as conn:
        started = time.monotonic()
        response, = timed_requests(conn, [("GET", "/chunked?chunks=5&delay=0.5&size=100", (), None)])
    assert response.status == 200 and response.reset is None
    assert response.body == b"".join(chunk_byte(i) * 100 for i in range(5))
    first, total = response.first_data_at - started, response.end_at - started
    print("chunked over h2: first byte after %.2fs, complete after %.2fs" % (first, total))
    assert first < 1.0, "the first chunk waited for later ones: %.2fs" % first
    assert total >= 2.0, total
    assert response.header("transfer-encoding") is None


def test_slow_chunked_response_streams_over_http1(tmp_path, h2front):
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend)
    started = time.monotonic()
    proc = subprocess.Popen(["curl", "-sS", "--http1.1", "-k", "--no-buffer", "--max-time", "20",
                             front.url("/chunked?chunks=5&delay=0.5&size=100")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        received, first = b"", None
        while True:
            readable, _, _ = select.select([proc.stdout], [], [], 10)
            assert readable, "curl printed nothing for 10 s"
            piece = os.read(proc.stdout.fileno(), 65536)
            if not piece:
                break
            if first is None:
                first = time.monotonic() - started
            received += piece
        total = time.monotonic() - started
        assert proc.wait(10) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert received == b"".join(chunk_byte(i) * 100 for i in range(5))
    assert first < 1.0, first
    assert total >= 2.0, total


DELAYED_BACKEND = r'''
"""Sends the response head at once and the body `delay` seconds later:
GET /late-length?delay=S (Content-Length) and GET /late-chunked?delay=S (chunked); any other
path (the health probe's /) is a /late-length."""
import asyncio, urllib.parse

async def on_connection(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ")[1].decode()
            url = urllib.parse.urlsplit(target)
            delay = float(dict(urllib.parse.parse_qsl(url.query)).get("delay", "0"))
            body = b"late body\n"
            if url.path == "/late-chunked":
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                await writer.drain()
                await asyncio.sleep(delay)
                writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
                await writer.drain()
                await asyncio.sleep(delay)
                writer.write(body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()

async def main():
    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    print("ready on http://127.0.0.1:%d" % server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
'''


@pytest.mark.parametrize("path", ["/late-length", "/late-chunked"])
def test_response_head_is_sent_before_the_body_arrives(tmp_path, h2front, path):
    script = tmp_path / "delayed_backend.py"
    script.write_text(DELAYED_BACKEND)
    backend = Proc("delayed_backend", [PYTHON, script], tmp_path)
    port = int(backend.wait_for_line(r"^ready on http://127\.0\.0\.1:(\d+)$").group(1))
    front = Front(h2front, "http://127.0.0.1:%d" % port)
    with h2_connection(front.port) as conn:
        conn.request("GET", path + "?delay=0")  # the connection to the backend is open and warm
        started = time.monotonic()
        response, = timed_requests(conn, [("GET", path + "?delay=1.5", (), None)])
    assert (response.status, response.body) == (200, b"late body\n")
    head, first = response.head_at - started, response.first_data_at - started
    print("%s: head after %.2fs, body after %.2fs" % (path, head, first))
    assert head < 0.3, "the head waited for the body: %.2fs" % head
    assert first >= 1.4, first


def test_bodiless_responses_and_chunked_keep_the_connection(tmp_path, h2front):
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend)
    with h2_connection(front.port) as conn:
        head = conn.request("HEAD", "/head-len")
        head_bytes = conn.request("HEAD", "/bytes?n=5000")
        not_modified = conn.request("GET", "/notmodified", headers=[("if-none-match", '"testserver-v1"')])
        no_content = conn.request("GET", "/status?code=204")
        chunked = conn.request("GET", "/chunked?chunks=70&delay=0&size=1000")
        after = conn.request("GET", "/head-len")
    assert (head.status, head.header("content-length"), head.body, head.reset) == (200, "21", b"", None)
    assert (head_bytes.status, head_bytes.header("content-length"), head_bytes.body) == (200, "5000", b"")
    assert (not_modified.status, not_modified.body, not_modified.reset) == (304, b"", None)
    assert not_modified.header("etag") == '"testserver-v1"'
    assert (no_content.status, no_content.body, no_content.reset) == (204, b"", None)
    assert chunked.status == 200 and chunked.reset is None
    assert chunked.body == b"".join(chunk_byte(i) * 1000 for i in range(70))
    assert chunked.header("transfer-encoding") is None
    assert (after.status, after.body) == (200, b"twenty-one bytes long")
    stats = backend.stats()
    assert (stats["accepted"], stats["max_open"], stats["requests"]) == (0, 1, 6), \
        "each response must leave the backend connection (the probe's, already open) reusable: %s" % stats
    # the same over HTTP/1.1 (curl), one client connection in a row of requests
    result = curl("--http1.1", "-k", "-I", front.url("/head-len"), "--next", "--http1.1", "-k",
                  front.url("/chunked?chunks=3&delay=0&size=10"), "--next", "--http1.1", "-k",
                  "-w", "%{http_code}", front.url("/status?code=204"))
    assert result.returncode == 0, result.stderr
    assert re.search(rb"(?im)^content-length: 21\r$", result.stdout), result.stdout
    assert result.stdout.endswith(b"\r\n\r\n" + b"".join(chunk_byte(i) * 10 for i in range(3)) + b"204"), result.stdout
    stats = backend.stats()
    assert (stats["accepted"], stats["max_open"], stats["requests"]) == (0, 1, 9), stats


# ---------------------------------------------------------------------------------------------
# A client that stops reading.


class RawH2:
    """An HTTP/2 connection whose flow control is all ours: nothing is acknowledged unless a test
    says so, so the server's windows run dry exactly as with a stalled client."""

    def __init__(self, port, window=16384, timeout=10):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.authority = "localhost:%d" % port
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.h2.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window, h2.settings.SettingCodes.ENABLE_PUSH: 0})
        self.h2.initiate_connection()
        self.flush()

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def get(self, path):
        stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream_id, [(":method", "GET"), (":scheme", "https"), (":authority", self.authority),
                                         (":path", path)], end_stream=True)
        self.flush()
        return stream_id

    def events(self, timeout):
        """The events of one read ([] if nothing came within `timeout`)."""
        if not self.sock.pending():
            readable, _, _ = select.select([self.sock], [], [], timeout)
            if not readable:
                return []
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("h2front closed the connection")
        events = self.h2.receive_data(data)
        self.flush()  # SETTINGS and PING acks only: no WINDOW_UPDATE
        return events

    def close(self):
        self.sock.close()


def holds_connection(pid, local_port, remote_port):
    """Whether process `pid` still has a socket for the TCP connection local_port <-> remote_port
    (a socket it closed may linger in the kernel, but no longer belongs to it)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.read().splitlines()[1:]:
                cols = row.split()
                if (int(cols[1].rsplit(":", 1)[1], 16) == local_port and int(cols[2].rsplit(":", 1)[1], 16) == remote_port
                        and cols[9] in inodes):
                    return True
    return False


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


def test_stalled_h2_client_loses_the_stream_and_frees_the_backend(tmp_path, h2front):
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend, front={"stall_timeout": "1s"},
                  upstream={"max_connections": 4, "response_buffer": "64KiB"})
    client = RawH2(front.port, window=16384)
    try:
        started = time.monotonic()
        stalled = client.get("/bytes?n=5000000")
        head_at = reset_at = reset_code = None
        received = 0
        while reset_at is None and time.monotonic() - started < 6:
            for event in client.events(0.2):
                if getattr(event, "stream_id", None) != stalled:
                    continue
                if isinstance(event, h2.events.ResponseReceived):
                    head_at = time.monotonic()
                    assert dict(event.headers)[":status"] == "200"
                elif isinstance(event, h2.events.DataReceived):
                    received += event.flow_controlled_length
                elif isinstance(event, h2.events.StreamReset):
                    reset_at, reset_code = time.monotonic(), event.error_code
                elif isinstance(event, h2.events.StreamEnded):
                    pytest.fail("a client that never opened its window got the whole 5 MB")
        assert head_at is not None, "no response head"
        assert reset_at is not None, "no RST_STREAM within 6 s (stall_timeout is 1s)\n" + front.log()
        print("stalled h2 stream reset %.2fs after the request (%d bytes received)"
              % (reset_at - started, received))
        assert 0.9 <= reset_at - started <= 3.0, reset_at - started
        assert reset_code == h2.errors.ErrorCodes.CANCEL, reset_code
        assert received <= 16384
        # the backend connection was given back (closed: the response was cut)
        wait_for(lambda: backend.stats()["open"] == 0, 2, "backend connection closed")
        assert "client stalled for front.stall_timeout on /bytes?n=5000000" in front.proc.stderr()
        # the connection itself lives on: give the stalled stream's bytes back to the connection window
        client.h2.increment_flow_control_window(received)
        follow_up = client.get("/bytes?n=200000&seed=after")
        body, ended = bytearray(), False
        deadline = time.monotonic() + 5
        while not ended and time.monotonic() < deadline:
            for event in client.events(0.2):
                if getattr(event, "stream_id", None) != follow_up:
                    continue
                if isinstance(event, h2.events.DataReceived):
                    body += event.data
                    client.h2.acknowledge_received_data(event.flow_controlled_length, follow_up)
                    client.flush()
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
                elif isinstance(event, h2.events.StreamReset):
                    pytest.fail("the follow-up stream was reset")
        assert ended and bytes(body) == pattern_bytes(200000, "after")
    finally:
        client.close()
    assert front.proc.returncode is None


def test_stalled_http1_client_loses_the_connection_and_frees_the_backend(tmp_path, h2front):
    """HTTP/1.1 has no stream to reset: h2front closes the client connection. The body is larger
    than what the kernel's socket buffers on both sides can hold, so h2front really waits."""
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend, front={"stall_timeout": "1s"},
                  upstream={"max_connections": 4, "response_buffer": "64KiB"})
    size = 40_000_000
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(("127.0.0.1", front.plain_port))
    try:
        client.sendall(b"GET /bytes?n=%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % size)
        wait_for(lambda: backend.stats()["open"] == 1, 3, "backend connection open")
        started = time.monotonic()
        wait_for(lambda: backend.stats()["open"] == 0, 10, "backend connection freed after the stall")
        print("stalled HTTP/1.1 client: backend connection freed %.2fs later" % (time.monotonic() - started))
        # and h2front let go of the client connection itself (before the client read anything)
        client_port = client.getsockname()[1]
        wait_for(lambda: not holds_connection(front.proc.pid, front.plain_port, client_port), 2,
                 "client connection closed by h2front")
        client.settimeout(10)
        received = 0
        try:
            while True:
                piece = client.recv(1 << 20)
                if not piece:
                    break
                received += len(piece)
        except ConnectionResetError:
            pass
        assert received < size, "the stalled client got the whole body"
    finally:
        client.close()
    assert "client stalled for front.stall_timeout" in front.proc.stderr(), front.log()


def test_stalled_downloads_do_not_buffer_whole_bodies(tmp_path, h2front):
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend, front={"stall_timeout": "30s"},
                  upstream={"max_connections": 20, "response_buffer": "64KiB"}, log={"level": "info"})
    client = RawH2(front.port, window=16384)
    try:
        warm = client.get("/json")
        deadline = time.monotonic() + 5
        while not any(isinstance(e, h2.events.StreamEnded) and e.stream_id == warm for e in client.events(0.2)):
            assert time.monotonic() < deadline
        before = vm_rss_kib(front.proc.pid)
        streams = {client.get("/bytes?n=5000000&seed=%d" % i) for i in range(20)}
        heads = set()
        deadline = time.monotonic() + 10
        while heads != streams:
            assert time.monotonic() < deadline, "only %d of 20 response heads" % len(heads)
            heads |= {e.stream_id for e in client.events(0.2) if isinstance(e, h2.events.ResponseReceived)}
        wait_for(lambda: backend.stats()["open"] == 20, 3, "20 backend connections busy")
        # the read-ahead fills within milliseconds; watch RSS for a while and keep the peak
        peak = before
        for _ in range(20):
            client.events(0.05)
            peak = max(peak, vm_rss_kib(front.proc.pid))
        growth_mib = (peak - before) / 1024
        print("20 stalled 5 MB downloads: h2front RSS %d KiB -> %d KiB (+%.1f MiB)" % (before, peak, growth_mib))
        assert growth_mib < 20, "h2front holds %.1f MiB for 20 stalled streams (100 MB of bodies)" % growth_mib
    finally:
        client.close()
