"""The bounded upstream pool: many client streams over few backend connections, the FIFO queue
and its limits, and the stale keep-alive retry.

Every test starts its own testserver (or a tiny inline backend) and its own h2front. The backend
counts connections itself (`stats()` through its control port), so "never more than
max_connections" is checked on the backend's side of the wire, not on h2front's word.

Environment: H2FRONT_BIN (the binary), H2FRONT_SOURCE_ROOT (the source tree).
"""

import os
import re
import subprocess
import textwrap
import time

import h2.events
import pytest

from harness import (_Exchange, free_port, h2_connection, H2FRONT_BIN, pattern_bytes, Proc, PYTHON,
                     render_yaml, security_header_problems, start_testserver)

pytestmark = pytest.mark.skipif(not H2FRONT_BIN, reason="H2FRONT_BIN is not set")


def h2front_config(port, backend_url, **sections):
    """A TLS listener on `port`, one backend, log level debug, plus `sections` (nested dicts).
    Health probes run once at start only (interval 1h) unless a test asks otherwise, so that the
    backend's request counts are the test's own."""
    sections.setdefault("log", {"level": "debug"})
    sections.setdefault("health_check", {"interval": "1h"})
    head = textwrap.dedent(f"""\
        listen:
          - address: "127.0.0.1:{port}"
            tls: self-signed
        backends:
          - url: {backend_url}
        """)
    return head + "\n".join(render_yaml(sections)) + "\n"


def start_front(h2front, backend, **sections):
    """h2front in front of `backend` (a started testserver, or a URL), once the start-up health
    probe has found the backend active; a testserver's counters are then reset, so they show only
    what the test does (the probe's connection may stay open and idle in the pool)."""
    url = backend if isinstance(backend, str) else backend.url
    port = free_port()
    front = h2front(h2front_config(port, url, **sections))
    wait_for(lambda: " -> active " in front.proc.stderr(), 5, "backend found active by the health probe")
    if not isinstance(backend, str):
        backend.reset()
    return front, port


def timed_requests(conn, specs):
    """Like H2Client.requests, but each H2Response also gets .head_at and .end_at
    (time.monotonic() when its HEADERS and its end arrived)."""

    class Timed(_Exchange):
        def on_stream_event(self, event, response):
            super().on_stream_event(event, response)
            if isinstance(event, h2.events.ResponseReceived):
                response.head_at = time.monotonic()
            if response.ended and not hasattr(response, "end_at"):
                response.end_at = time.monotonic()

    exchange = Timed(conn, list(specs), True)
    exchange.run()
    return exchange.responses


def wait_for(probe, timeout, what):
    """Poll `probe` every 20 ms until it returns something true; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        assert time.monotonic() < deadline, "not %s within %ss" % (what, timeout)
        time.sleep(0.02)


def problems_in(log):
    """Warnings and errors about forwarding (the self-signed certificate warning is expected)."""
    return [line for line in log.splitlines() if re.search(r" (warn|error) +\[(proxy|upstream|main)\]", line)]


def retries_in(log):
    return re.findall(r"retrying (\S+) on a fresh connection: (.*)", log)


# ---------------------------------------------------------------------------------------------
# Multiplexing over the bounded pool.


def test_100_streams_on_one_connection_return_exact_bytes(tmp_path, h2front):
    backend = start_testserver(tmp_path)
    front, port = start_front(h2front, backend, upstream={"max_connections": 10})
    sizes = [1 + i * 3001 for i in range(100)]  # 1 byte .. ~297 KB, every one different
    with h2_connection(port) as conn:
        responses = conn.get_many(["/bytes?n=%d&seed=%d" % (n, i) for i, n in enumerate(sizes)])
        assert conn.goaway is None
    for i, (n, response) in enumerate(zip(sizes, responses)):
        assert response.status == 200, (i, response.status, response.reset, response.body[:200])
        assert response.reset is None, (i, response.reset)
        assert response.header("content-length") == str(n), i
        assert response.body == pattern_bytes(n, i), "stream %d: %d bytes, body differs" % (i, len(response.body))
    stats = backend.stats()
    assert stats["requests"] == 100, stats
    assert stats["max_open"] <= 10, stats
    assert front.proc.returncode is None


def run_h2load(port, path, requests=1000, clients=4, streams=100, h1=False):
    result = subprocess.run(["h2load", "-n", str(requests), "-c", str(clients), "-m", str(streams)]
                            + (["--h1"] if h1 else []) + ["https://127.0.0.1:%d%s" % (port, path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed",
                     result.stdout)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", result.stdout)
    assert done and codes, result.stdout
    return [int(x) for x in done.groups()], [int(x) for x in codes.groups()], result.stdout


@pytest.mark.parametrize("max_connections", [10, 3])
def test_multiplexed_load_never_exceeds_max_connections(tmp_path, h2front, max_connections):
    """h2load: 4 HTTP/2 connections x 100 streams, 1000 requests."""
    backend = start_testserver(tmp_path)
    front, port = start_front(h2front, backend, upstream={"max_connections": max_connections},
                              log={"level": "info"})
    (total, started, done, succeeded, failed), (ok, _, client_err, server_err), output = run_h2load(
        port, "/bytes?n=2048&seed=load")
    stats = backend.stats()
    print("max_connections %d: backend connections opened per 1000 requests: %d (max open %d; "
          "the start-up probe's connection came before and may be reused)"
          % (max_connections, stats["accepted"], stats["max_open"]))
    assert (succeeded, failed, ok, client_err, server_err) == (1000, 0, 1000, 0, 0), output
    assert stats["requests"] == 1000, stats  # nothing lost, nothing sent twice
    assert stats["max_open"] <= max_connections, stats
    assert stats["accepted"] <= max_connections + 2, stats
    assert front.proc.returncode is None
    assert problems_in(front.proc.stderr()) == [], front.log()


def test_health_probes_share_the_bound_under_load(tmp_path, h2front):
    """Probes every 100 ms while h2load keeps every connection busy: still never more than
    max_connections at the backend, and no request fails."""
    backend = start_testserver(tmp_path)
    front, port = start_front(h2front, backend, upstream={"max_connections": 3},
                              health_check={"interval": "100ms"}, log={"level": "info"})
    (total, started, done, succeeded, failed), (ok, _, client_err, server_err), output = run_h2load(
        port, "/bytes?n=20000&seed=probes")
    stats = backend.stats()
    assert (succeeded, failed, ok, client_err, server_err) == (1000, 0, 1000, 0, 0), output
    assert stats["max_open"] <= 3, stats
    assert stats["requests"] >= 1000, stats
    assert problems_in(front.proc.stderr()) == [], front.log()


def test_many_http1_clients_share_the_bounded_pool(tmp_path, h2front):
    """h2load --h1: 50 HTTP/1.1 client connections at once, 1000 requests, 5 backend connections."""
    backend = start_testserver(tmp_path)
    front, port = start_front(h2front, backend, upstream={"max_connections": 5}, log={"level": "info"})
    (total, started, done, succeeded, failed), (ok, _, client_err, server_err), output = run_h2load(
        port, "/json", clients=50, streams=1, h1=True)
    stats = backend.stats()
    print("max_connections 5, 50 HTTP/1.1 clients: backend connections opened per 1000 requests: %d"
          % stats["accepted"])
    assert (succeeded, failed, ok, client_err, server_err) == (1000, 0, 1000, 0, 0), output
    assert stats["requests"] == 1000, stats
    assert stats["max_open"] <= 5, stats
    assert stats["accepted"] <= 5 + 2, stats


# ---------------------------------------------------------------------------------------------
# The queue: bounded in length and in time, and honest about it.


def test_queue_full_gets_503_with_retry_after_at_once(tmp_path, h2front):
    backend = start_testserver(tmp_path)
    front, port = start_front(h2front, backend,
                              upstream={"max_connections": 1, "queue": {"max": 2, "timeout": "10s"}})
    with h2_connection(port) as conn:
        started = time.monotonic()
        responses = timed_requests(conn, [("GET", "/slow-head?delay=1&n=%d" % i, (), None) for i in range(5)])
    # stream 1 takes the only connection, streams 2 and 3 wait, 4 and 5 find the queue full
    assert [r.status for r in responses] == [200, 200, 200, 503, 503], [(r.status, r.body) for r in responses]
    for response in responses[:3]:
        assert response.body == b"slow\n"
    for response in responses[3:]:
        assert response.head_at - started < 0.5, "503 should be immediate, took %.2fs" % (response.head_at - started)
        retry_after = response.header("retry-after")
        assert retry_after is not None and retry_after.isdigit() and int(retry_after) > 0, response.headers
        assert b"queue is full" in response.body, response.body
        assert backend.url.encode() in response.body, response.body
    # served one after the other on the single connection
    assert responses[2].head_at - started >= 2.8, [r.head_at - started for r in responses]
    stats = backend.stats()
    assert (stats["max_open"], stats["requests"]) == (1, 3), stats
    assert stats["accepted"] <= 1, stats


def test_queue_timeout_gets_503_with_retry_after(tmp_path, h2front):
    backend = start_testserver(tmp_path)
    front, port = start_front(h2front, backend,
                              upstream={"max_connections": 1, "queue": {"max": 10, "timeout": "300ms"}})
    with h2_connection(port) as conn:
        started = time.monotonic()
        slow, waiting = timed_requests(conn, [("GET", "/slow-head?delay=1", (), None),
                                              ("GET", "/json", (), None)])
    assert slow.status == 200 and slow.body == b"slow\n"
    assert waiting.status == 503, (waiting.status, waiting.body)
    waited = waiting.head_at - started
    assert 0.25 <= waited < 0.9, "503 after %.2fs, queue.timeout is 300ms" % waited
    assert waiting.header("retry-after") is not None and waiting.header("retry-after").isdigit(), waiting.headers
    assert security_header_problems(waiting) == []
    assert b"queue.timeout" in waiting.body, waiting.body
    assert backend.stats()["requests"] == 1  # the timed-out request never reached the backend


# ---------------------------------------------------------------------------------------------
# Stale keep-alive connections.


def test_idle_connections_closed_by_backend_are_never_a_502(tmp_path, h2front):
    backend = start_testserver(tmp_path, idle_close=1)
    front, port = start_front(h2front, backend, upstream={"max_connections": 10, "idle_timeout": "5s"})
    with h2_connection(port) as conn:
        primed = conn.get_many(["/bytes?n=50000&seed=p%d" % i for i in range(20)])
        assert [r.status for r in primed] == [200] * 20
        opened = backend.stats()["open"]
        assert opened >= 2, "the pool should hold several idle connections now: %s" % backend.stats()
        time.sleep(2)  # the scenario: the backend closes them after 1 s idle, h2front would keep them 5 s
        assert backend.stats()["open"] == 0, backend.stats()
        paths = ["/bytes?n=%d&seed=s%d" % (1000 + 997 * i, i) for i in range(50)]
        responses = conn.get_many(paths)
    for i, response in enumerate(responses):
        assert response.status == 200, (i, response.status, response.body[:300])
        assert response.body == pattern_bytes(1000 + 997 * i, "s%d" % i), i
    log = front.proc.stderr()
    retries = retries_in(log)
    print("stale keep-alive: %d idle connections closed by the backend, %d retries: %s"
          % (opened, len(retries), retries))
    assert "-> 502" not in log and "-> 504" not in log, log


RACE_BACKEND = r'''
"""Answers the first request of each connection with keep-alive headers, then reads the next
request and closes without answering: the stale keep-alive race, every time. Health probes
(User-Agent: h2front-health-check) are answered with Connection: close and get no number."""
import asyncio, itertools

counter = itertools.count()

async def read_request(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    length, probe = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"user-agent" and b"h2front-health-check" in value:
            probe = True
    body = await reader.readexactly(length) if length else b""
    return head.split(b"\r\n", 1)[0].decode(), body, probe

async def on_connection(reader, writer):
    try:
        line, body, probe = await read_request(reader)
        if probe:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
            await writer.drain()
            print("probe answered: %s" % line, flush=True)
        else:
            n = next(counter)
            print("conn %d answered %s body=%r" % (n, line, body), flush=True)
            reply = b"answer from connection %d\n" % n
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\n"
                         b"Keep-Alive: timeout=60\r\nContent-Length: %d\r\n\r\n%s" % (len(reply), reply))
            await writer.drain()
            line, body, probe = await read_request(reader)
            print("conn %d dropped %s body=%r" % (n, line, body), flush=True)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()

async def main():
    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    print("ready on http://127.0.0.1:%d" % server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
'''


def start_inline_backend(tmp_path, name, source, *args):
    script = tmp_path / ("%s.py" % name)
    script.write_text(source)
    proc = Proc(name, [PYTHON, script, *args], tmp_path)
    port = int(proc.wait_for_line(r"^ready on http://127\.0\.0\.1:(\d+)$").group(1))
    return proc, "http://127.0.0.1:%d" % port


def start_race_backend(tmp_path):
    return start_inline_backend(tmp_path, "race_backend", RACE_BACKEND)


@pytest.mark.parametrize("method,body", [("GET", None), ("PUT", b"idempotent=1")])
def test_idempotent_request_is_retried_when_reused_connection_closes(tmp_path, h2front, method, body):
    backend, url = start_race_backend(tmp_path)
    front, port = start_front(h2front, url, upstream={"max_connections": 4})
    with h2_connection(port) as conn:
        first = conn.request("GET", "/first")
        assert (first.status, first.body) == (200, b"answer from connection 0\n")
        second = conn.request(method, "/second", body=body)
    assert second.status == 200, (second.status, second.body, front.log())
    assert second.body == b"answer from connection 1\n"
    out = backend.stdout()
    assert "conn 0 dropped %s /second" % method in out, out
    assert "conn 1 answered %s /second HTTP/1.1 body=%r" % (method, body or b"") in out, out
    retries = retries_in(front.proc.stderr())
    print("race backend, %s: retries %s" % (method, retries))
    assert retries == [("/second", "the backend closed the connection before answering")], front.log()


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_non_idempotent_request_is_not_retried(tmp_path, h2front, method):
    backend, url = start_race_backend(tmp_path)
    front, port = start_front(h2front, url, upstream={"max_connections": 4})
    with h2_connection(port) as conn:
        first = conn.request("GET", "/first")
        assert first.status == 200
        second = conn.request(method, "/form", body=b"x=1")
        assert second.status == 502, (second.status, second.body)
        assert b"closed the connection before answering" in second.body, second.body
        assert url.encode() in second.body, second.body
        # h2front stays usable: the next request gets a fresh connection
        third = conn.request("GET", "/third")
        assert (third.status, third.body) == (200, b"answer from connection 1\n")
    out = backend.stdout()
    assert out.count("/form") == 1, "a %s must reach the backend once, never be replayed:\n%s" % (method, out)
    assert retries_in(front.proc.stderr()) == [], front.log()


LINGER_BACKEND = r'''
"""Answers the paths named in argv[1] (comma-separated) with `Connection: close`, but closes only
two seconds later, as a busy server may; a request sent on such a connection meanwhile is logged
as REUSED and dropped unanswered. Every other request gets a keep-alive answer "ok PATH"."""
import asyncio, itertools, sys

CLOSE_PATHS = set(sys.argv[1].split(","))
counter = itertools.count()

async def read_request(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return head.split(b"\r\n", 1)[0].decode()

async def on_connection(reader, writer):
    n = next(counter)
    try:
        while True:
            line = await read_request(reader)
            path = line.split(" ")[1]
            if path in CLOSE_PATHS:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbye\n")
                await writer.drain()
                print("conn %d said Connection: close to %s" % (n, line), flush=True)
                try:
                    line = await asyncio.wait_for(read_request(reader), 2.0)
                    print("conn %d REUSED after Connection: close: %s" % (n, line), flush=True)
                except asyncio.TimeoutError:
                    pass
                break
            reply = b"ok %s\n" % path.encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(reply), reply))
            await writer.drain()
            print("conn %d answered %s" % (n, line), flush=True)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()

async def main():
    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    print("ready on http://127.0.0.1:%d" % server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
'''


@pytest.mark.parametrize("closed_by", ["health-probe", "proxied-response"])
def test_connection_close_answer_is_never_reused(tmp_path, h2front, closed_by):
    """RFC 9112 9.6: after `Connection: close` no further request may go on that connection,
    whether the answer was to a proxied request or to h2front's own health probe (path /)."""
    close_path = "/" if closed_by == "health-probe" else "/close-me"
    backend, url = start_inline_backend(tmp_path, "linger_backend", LINGER_BACKEND, close_path)
    front, port = start_front(h2front, url, upstream={"max_connections": 4})
    with h2_connection(port) as conn:
        if closed_by == "proxied-response":
            first = conn.request("GET", "/close-me")
            assert (first.status, first.body) == (200, b"bye\n")
        post = conn.request("POST", "/after", body=b"x=1")
    log = backend.stdout()
    assert "said Connection: close" in log, log
    assert "REUSED" not in log, "h2front sent a request on a connection the backend had closed:\n" + log
    assert (post.status, post.body) == (200, b"ok /after\n"), (post.status, post.body, front.log())


@pytest.mark.parametrize("path", ["/slow-head?delay=0.3", "/bytes?n=200000&seed=1", "/chunked?chunks=4&delay=0.1&size=1000"])
def test_clients_leaving_mid_answer_do_not_cost_backend_connections(tmp_path, h2front, path):
    """A browser closing a tab mid-poll resets its streams. The answers are read to their end
    and thrown away, so the connections go back to the pool: no new connection for the next
    requests (closing them instead would cost CherryPy a new connection each time)."""
    backend = start_testserver(tmp_path)
    front, port = start_front(h2front, backend, upstream={"max_connections": 3})
    sockets_before = open_sockets(front.pid)
    for round_ in range(3):
        conn = h2_connection(port)
        for i in range(6):
            conn.h2.send_headers(conn.h2.get_next_available_stream_id(),
                                 [(":method", "GET"), (":path", "%s&r=%d&i=%d" % (path, round_, i)),
                                  (":scheme", "https"), (":authority", conn.authority)], end_stream=True)
        conn._flush()
        time.sleep(0.05)  # the requests reach the backend; then the client is gone
        conn.sock.close()
    time.sleep(1.0)
    with h2_connection(port) as conn:
        responses = conn.get_many(["/json"] * 12)
    assert all(r.status == 200 for r in responses)
    stats = backend.stats()
    assert stats["max_open"] <= 3, stats
    assert stats["accepted"] <= 3, "connections were closed and reopened: %s\n%s" % (stats, front.log()[-2000:])
    # the clients' TLS connections were reset, and every one of them must be freed (libh2o 2.2.5
    # leaked them while sending close_notify to a reset peer); at most the 3 backend ones remain
    wait_for(lambda: open_sockets(front.pid) <= sockets_before + 3, 3, "h2front freeing reset client connections")


def open_sockets(pid):
    """Sockets process `pid` holds open, whatever their state."""
    count = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            count += os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:")
        except OSError:
            pass
    return count
