"""Backend failures as the client sees them: refused (502 naming the backend and the reason),
back again (200 without a restart), killed mid-response (the stream is cut, never ended as if
complete), slow (504 on the first-byte and connect timeouts), talking nonsense (502), and h2front
itself asked to stop with a request in flight (it drains, then exits 0).

Every test starts its own backend and its own h2front.

Environment: H2FRONT_BIN (the binary), H2FRONT_SOURCE_ROOT (the source tree).
"""

import os
import re
import select
import signal
import socket
import subprocess
import time

import h2.events
import pytest

from harness import (chunk_byte, curl, free_port, Front, h2_connection, H2FRONT_BIN, Proc, PYTHON,
                     security_header_problems, start_testserver)

pytestmark = pytest.mark.skipif(not H2FRONT_BIN, reason="H2FRONT_BIN is not set")


def wait_for(probe, timeout, what):
    """Poll `probe` every 20 ms until it returns something true; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        assert time.monotonic() < deadline, "not %s within %ss" % (what, timeout)
        time.sleep(0.02)


class Stream:
    """One GET on an H2Client, read event by event: .status, .body, .reset, .ended, and the
    time of the head (.head_at) and of the end (.end_at)."""

    def __init__(self, conn, path):
        self.conn, self.path = conn, path
        self.status = self.reset = self.head_at = self.end_at = None
        self.body, self.ended = bytearray(), False
        self.started = time.monotonic()
        self.id = conn.h2.get_next_available_stream_id()
        conn.h2.send_headers(self.id, [(":method", "GET"), (":scheme", "https"), (":authority", conn.authority),
                                       (":path", path)], end_stream=True)
        conn._flush()

    def step(self):
        """Handle one read's worth of events; returns the events (GOAWAY included)."""
        events = self.conn._receive_events(self.path)
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                self.conn.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if getattr(event, "stream_id", None) != self.id:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                self.status, self.head_at = int(dict(event.headers)[":status"]), time.monotonic()
            elif isinstance(event, h2.events.DataReceived):
                self.body += event.data
            elif isinstance(event, h2.events.StreamEnded):
                self.ended, self.end_at = True, time.monotonic()
            elif isinstance(event, h2.events.StreamReset):
                self.reset, self.end_at = event.error_code, time.monotonic()
        self.conn._flush()
        return events

    @property
    def done(self):
        return self.ended or self.reset is not None

    def finish(self):
        while not self.done:
            self.step()
        return self


def chunked_body(chunks, size):
    return b"".join(chunk_byte(i) * size for i in range(chunks))


# ---------------------------------------------------------------------------------------------
# Backend down, backend back.


def test_refused_backend_gets_502_then_recovers_without_restart(tmp_path, h2front):
    port = free_port()  # nothing listens here (yet)
    backend_url = "http://127.0.0.1:%d" % port
    front = Front(h2front, backend_url, settle=False, health_check={"interval": "300ms"})
    with h2_connection(front.port) as conn:
        for _ in range(2):
            response = conn.request("GET", "/json")
            assert response.status == 502, (response.status, response.body)
            body = response.body.decode()
            assert backend_url in body and "connection refused" in body, body
        http1 = curl("--http1.1", "-k", "-w", "\n%{http_code}", front.url("/json"))
        body, status = http1.stdout.rsplit(b"\n", 1)
        assert status == b"502" and b"connection refused" in body and backend_url.encode() in body, http1.stdout
        assert front.alive()
        assert re.search(r"warn +\[proxy\] GET /json -> 502", front.proc.stderr()), front.log()

        start_testserver(tmp_path, port=port)
        came_up = time.monotonic()
        wait_for(lambda: " -> active " in front.proc.stderr(), 5, "backend found active again")
        print("backend back: active for h2front %.2fs after it started listening" % (time.monotonic() - came_up))
        response = conn.request("GET", "/json")  # the same client connection, no restart
        assert response.status == 200, (response.status, response.body)
        assert b'"hello": "world"' in response.body
    with h2_connection(front.port) as conn:
        assert conn.request("GET", "/bytes?n=1000").status == 200
    assert front.alive()


def test_backend_killed_mid_response_cuts_the_h2_stream(tmp_path, h2front):
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend)
    with h2_connection(front.port) as conn:
        stream = Stream(conn, "/chunked?chunks=20&delay=0.2&size=100")
        while not stream.body and not stream.done:
            stream.step()
        assert stream.status == 200 and stream.body, (stream.status, stream.body)
        backend.proc.kill()  # SIGKILL: the kernel closes its sockets, nothing is flushed
        stream.finish()
        assert not stream.ended, "a cut response must not end as if complete (%d of 2000 bytes)" % len(stream.body)
        assert stream.reset is not None
        assert len(stream.body) < 2000 and chunked_body(20, 100).startswith(bytes(stream.body))
        assert stream.end_at - stream.head_at < 2, "the cut took %.1fs to reach the client" % (
            stream.end_at - stream.head_at)
        # h2front is fine, and says the backend is gone
        after = conn.request("GET", "/json")
        assert after.status == 502 and b"connection refused" in after.body, (after.status, after.body)
        assert security_header_problems(after) == []
    assert front.alive()
    assert "response to /chunked?chunks=20&delay=0.2&size=100 cut short" in front.proc.stderr(), front.log()


def test_backend_killed_mid_response_cuts_the_http1_response(tmp_path, h2front):
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend)
    proc = subprocess.Popen(["curl", "-sS", "--http1.1", "-k", "--no-buffer", "--max-time", "20",
                             front.url("/chunked?chunks=20&delay=0.2&size=100")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        received = b""
        while True:
            readable, _, _ = select.select([proc.stdout], [], [], 10)
            assert readable, "curl printed nothing for 10 s"
            piece = os.read(proc.stdout.fileno(), 65536)
            if not piece:
                break
            if not received:
                backend.proc.kill()
            received += piece
        returncode = proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read().decode(errors="replace")
    # curl 18: "transfer closed with outstanding read data remaining" (no terminating chunk)
    assert returncode != 0, "curl took a cut response as complete: %d bytes" % len(received)
    assert len(received) < 2000 and chunked_body(20, 100).startswith(received)
    print("curl exit %d: %s" % (returncode, stderr.strip()))
    result = curl("--http1.1", "-k", "-w", "\n%{http_code}", front.url("/json"))
    assert result.stdout.endswith(b"\n502"), result.stdout
    assert front.alive()


# ---------------------------------------------------------------------------------------------
# Timeouts.


def test_first_byte_timeout_gives_504(tmp_path, h2front):
    backend = start_testserver(tmp_path)
    # fall: 10 keeps health from declaring the only backend down after these two timeouts
    front = Front(h2front, backend, upstream={"timeouts": {"first_byte": "500ms"}}, health_check={"fall": 10})
    with h2_connection(front.port) as conn:
        started = time.monotonic()
        hang = conn.request("GET", "/hang")
        took = time.monotonic() - started
        assert hang.status == 504, (hang.status, hang.body)
        assert b"first_byte" in hang.body and backend.url.encode() in hang.body, hang.body
        assert 0.45 <= took < 1.5, took
        # the hung connection is closed, not kept for the next request
        wait_for(lambda: backend.stats()["open"] == 0, 2, "hung backend connection closed")

        started = time.monotonic()
        slow = conn.request("GET", "/slow-head?delay=2")
        took = time.monotonic() - started
        assert slow.status == 504, (slow.status, slow.body)
        assert b"first_byte" in slow.body, slow.body
        assert 0.45 <= took < 1.5, took

        fine = conn.request("GET", "/json")
        assert fine.status == 200
    assert backend.stats()["requests"] == 3, "a timed-out request must not be retried: %s" % backend.stats()
    assert "retrying" not in front.proc.stderr(), front.log()


def test_io_timeout_cuts_a_stalled_response(tmp_path, h2front):
    """README: upstream.timeouts.io, no progress while receiving: the stream is cut."""
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend, upstream={"timeouts": {"io": "500ms"}})
    with h2_connection(front.port) as conn:
        stream = Stream(conn, "/chunked?chunks=3&delay=3&size=100").finish()
        assert stream.status == 200
        assert not stream.ended and stream.reset is not None, "a stalled backend response must be cut"
        assert bytes(stream.body) == chunked_body(1, 100)
        took = stream.end_at - stream.started
        assert 0.45 <= took < 2, took
        assert conn.request("GET", "/json").status == 200
    assert front.alive()


def test_connect_timeout_gives_504(tmp_path, h2front):
    """README: connect timeout -> 504. A backend whose accept queue is full: the kernel drops our
    SYNs and the connect never completes. The start-up health probe is answered first (the
    backend was fine), then the queue fills up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    listener.settimeout(5)
    backend_url = "http://127.0.0.1:%d" % listener.getsockname()[1]
    filler = None
    try:
        front = Front(h2front, backend_url, settle=False, upstream={"timeouts": {"connect": "300ms"}})
        probe, _ = listener.accept()
        with probe:
            probe.settimeout(5)
            request = b""
            while b"\r\n\r\n" not in request:
                request += probe.recv(4096)
            assert b"h2front-health-check" in request, request
            probe.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        wait_for(lambda: " -> active " in front.proc.stderr(), 5, "backend found active")
        filler = socket.create_connection(listener.getsockname())  # the queue's only place, never accepted
        with h2_connection(front.port) as conn:
            started = time.monotonic()
            response = conn.request("GET", "/json")
            took = time.monotonic() - started
        print("connect timeout: %d after %.2fs: %r" % (response.status, took, response.body))
        assert response.status == 504, (response.status, response.body, front.log())
        assert b"connect timed out" in response.body and backend_url.encode() in response.body, response.body
        assert took < 1.5, took
        assert front.alive()
    finally:
        if filler is not None:
            filler.close()
        listener.close()


# ---------------------------------------------------------------------------------------------
# A backend that does not speak HTTP.


GARBAGE_BACKEND = r'''
"""Answers GET /NAME with the bytes of ANSWERS[NAME], then waits for the client to leave; any
other path (the health probe's /) gets a proper keep-alive answer."""
import asyncio

ANSWERS = {
    "/ssh": b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u1\r\n",
    "/tls": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)),
    "/binary": bytes(range(256)) * 4,
    "/bad-length": b"HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\nhello",
    "/bad-encoding": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello",
}

async def on_connection(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ")[1].decode()
            if path not in ANSWERS:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                await writer.drain()
                continue
            writer.write(ANSWERS[path])
            await writer.drain()
            while await reader.read(65536):
                pass
            break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()

async def main():
    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    print("ready on http://127.0.0.1:%d" % server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
'''


@pytest.mark.parametrize("path,reason", [
    ("/ssh", "invalid HTTP response"),
    ("/tls", "invalid HTTP response"),
    ("/binary", "invalid HTTP response"),
    ("/bad-length", "invalid content-length"),
    ("/bad-encoding", "unsupported transfer-encoding"),
])
def test_garbage_from_backend_gives_502(tmp_path, h2front, path, reason):
    script = tmp_path / "garbage_backend.py"
    script.write_text(GARBAGE_BACKEND)
    backend = Proc("garbage_backend", [PYTHON, script], tmp_path)
    backend_url = "http://127.0.0.1:%d" % int(backend.wait_for_line(r"^ready on http://127\.0\.0\.1:(\d+)$").group(1))
    front = Front(h2front, backend_url, upstream={"timeouts": {"first_byte": "5s"}})
    with h2_connection(front.port) as conn:
        started = time.monotonic()
        response = conn.request("GET", path)
        took = time.monotonic() - started
    assert response.status == 502, (response.status, response.body)
    assert reason.encode() in response.body and backend_url.encode() in response.body, response.body
    assert took < 1, "h2front waited %.1fs instead of rejecting the answer at once" % took
    assert front.alive()
    assert "retrying" not in front.proc.stderr(), front.log()


# ---------------------------------------------------------------------------------------------
# Stopping.


def read_lines_until(proc, pattern, timeout=10):
    """Lines of proc.stdout (text) up to and including the first matching `pattern`."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        readable, _, _ = select.select([proc.stdout], [], [], deadline - time.monotonic())
        if not readable:
            break
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if re.search(pattern, line):
            return lines
    pytest.fail("no line matching %r within %ss:\n%s" % (pattern, timeout, "".join(lines)))


def wait_exit(front, timeout):
    try:
        return front.proc.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        pytest.fail("h2front still running %ss later\n%s" % (timeout, front.log()))


def test_sigterm_drains_requests_in_flight_then_exits_0(tmp_path, h2front):
    """One HTTP/2 (nghttp) and one HTTP/1.1 (curl) request in flight, and an idle HTTP/2
    connection that its client keeps open: the two finish whole, then h2front exits 0."""
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend)
    path = "/chunked?chunks=10&delay=0.2&size=100"
    idle = h2_connection(front.port)
    try:
        assert idle.request("GET", "/json").status == 200
        http1 = subprocess.Popen(["curl", "-sS", "--http1.1", "-k", "--max-time", "20", front.url(path)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        http2 = subprocess.Popen(["nghttp", "-nv", front.url(path)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        before = read_lines_until(http2, r"recv DATA frame")
        wait_for(lambda: backend.stats()["requests"] == 3, 5, "both requests at the backend")
        front.proc.popen.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        frames = "".join(before) + http2.communicate(timeout=10)[0]
        out, err = http1.communicate(timeout=10)
        finished = time.monotonic()
        returncode = wait_exit(front, 5)
        print("SIGTERM: requests in flight finished %.2fs later, h2front exited %s after %.2fs"
              % (finished - signalled, returncode, time.monotonic() - signalled))
    finally:
        idle.sock.close()
    assert http1.returncode == 0 and out == chunked_body(10, 100), (http1.returncode, out, err)
    assert http2.returncode == 0, frames
    data = [int(n) for n in re.findall(r"recv DATA frame <length=(\d+), flags=0x0[01], stream_id=13>", frames)]
    assert sum(data) == 1000, frames
    assert re.search(r"recv DATA frame <length=\d+, flags=0x01, stream_id=13>\n\s+; END_STREAM", frames), frames
    assert "recv RST_STREAM" not in frames and "recv GOAWAY frame" in frames, frames
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", front.port)) != 0
    assert returncode == 0, front.log()
    assert "received SIGTERM: draining" in front.proc.stderr()
    assert "still open" not in front.proc.stderr(), front.log()


def test_sigterm_with_idle_http1_keepalive_client_exits_promptly(tmp_path, h2front):
    """Nothing is in flight: an idle keep-alive connection has nothing to drain and must not
    hold the exit for the whole drain limit (10 s)."""
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend)
    client = socket.create_connection(("127.0.0.1", front.plain_port))
    try:
        client.sendall(b"GET /head-len HTTP/1.1\r\nHost: localhost\r\n\r\n")
        client.settimeout(5)
        reply = b""
        while not reply.endswith(b"twenty-one bytes long"):
            reply += client.recv(4096)
        assert reply.startswith(b"HTTP/1.1 200 "), reply
        front.proc.popen.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        returncode = wait_exit(front, 12)
        took = time.monotonic() - signalled
        print("SIGTERM with an idle HTTP/1.1 client: exit status %s after %.2fs" % (returncode, took))
    finally:
        client.close()
    assert took < 3, "an idle keep-alive connection held the exit for %.1fs\n%s" % (took, front.log())
    assert "Assertion" not in front.proc.stderr(), front.log()
    assert returncode == 0, front.log()


def test_second_signal_exits_at_once_without_crashing(tmp_path, h2front):
    """README: a second signal exits at once. At once, but as an exit, not an abort()."""
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend)
    http2 = subprocess.Popen(["nghttp", "-nv", front.url("/chunked?chunks=30&delay=0.5&size=100")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        read_lines_until(http2, r"recv DATA frame")
        front.proc.popen.send_signal(signal.SIGTERM)
        wait_for(lambda: "received SIGTERM: draining" in front.proc.stderr(), 3, "draining")
        front.proc.popen.send_signal(signal.SIGTERM)
        second = time.monotonic()
        returncode = wait_exit(front, 5)
        took = time.monotonic() - second
        print("second SIGTERM: exit status %s after %.2fs" % (returncode, took))
    finally:
        http2.kill()
        http2.communicate()
    assert took < 1, took
    assert "Assertion" not in front.proc.stderr(), front.log()
    assert returncode >= 0, "killed by signal %d\n%s" % (-returncode, front.log())


def test_drain_limit_ends_a_request_that_outlasts_it(tmp_path, h2front):
    """README: requests in flight finish (at most 10 s), then the process exits."""
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend)
    http2 = subprocess.Popen(["nghttp", "-nv", front.url("/chunked?chunks=60&delay=0.25&size=100")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        read_lines_until(http2, r"recv DATA frame")
        front.proc.popen.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        returncode = wait_exit(front, 14)
        took = time.monotonic() - signalled
        print("drain limit: exit status %s after %.2fs" % (returncode, took))
    finally:
        http2.kill()
        http2.communicate()
    assert 9.5 <= took < 12, took
    assert "closing 1 connection(s) still open after 10000 ms" in front.proc.stderr(), front.log()
    assert "Assertion" not in front.proc.stderr(), front.log()
    assert returncode == 0, front.log()
