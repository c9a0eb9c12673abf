#!/usr/bin/python3
"""An instrumented HTTP/1.1 origin server for h2front's proxy tests.

Standard library only (asyncio). It parses HTTP itself, so tests control and observe exactly what
crosses the upstream connection: it counts connections and requests, echoes what it received,
generates verifiable bodies, and misbehaves on request (slow headers, hangs, chunked streams).

    /usr/bin/python3 tests/backend/testserver.py --port P [--idle-close S] [--max-keepalive N]
                                                 [--control-port C] [--verbose]

It prints `ready on http://HOST:PORT` once listening, after `control on http://HOST:C` if
--control-port is given; port 0 picks a free port, and these lines tell which.

Connections are HTTP/1.1 keep-alive until `--idle-close` seconds pass without a request, then
closed silently with a FIN (as CherryPy does). HTTP/1.0 requests are always answered with a
close, as cheroot does in practice.

Like the Ceph dashboard, a request body must come with Content-Length: any Transfer-Encoding in a
request gets 411 and the connection is closed. `Expect: 100-continue` gets an interim
`100 Continue` before the body is read.

With `--max-keepalive N` the server behaves like cheroot's keep_alive_conn_limit: while more than
N connections are open, responses carry `Connection: close` and the connection is closed.

Endpoints (query parameters in brackets, with defaults):
    GET  /_stats          {open, max_open, accepted, requests}. Asked on the main port, the
                          /_stats request itself is already counted in `requests`, and its
                          connection in `open`, `accepted` and maybe `max_open`. Asked on the
                          control port, nothing of the question is counted: use that when the
                          numbers must be exact (a proxy holding 10 idle connections must read
                          max_open 10, not 11). The control port serves only /_stats*.
    POST /_stats/reset    zero accepted and requests; max_open restarts from the current open
    GET  /bytes [n=1024, seed=0]    n deterministic bytes (pattern_bytes below); HEAD works too
    GET  /json            a small JSON document
    ANY  /echo            {method, path, http_version, headers: [[name, value], ...], body_len,
                          body_sha256}; headers exactly as received, in order
    POST /upload          {len, sha256} of the body (PUT works too)
    GET  /chunked [chunks=5, delay=0.2, size=16]  chunked; chunk i is `size` copies of
                          chunk_byte(i), `delay` seconds apart
    GET  /sse [events=5, delay=0.2]  text/event-stream, chunked, one event per `delay`
    GET  /redirect [to=/, status=302]  Location: to
    GET  /refresh [to=/]  Refresh: 0; url=to
    GET  /setcookie       two Set-Cookie headers
    GET  /hop             hop-by-hop headers (Connection, Keep-Alive, Proxy-Connection, X-Hop)
                          plus the end-to-end X-End: 1
    GET  /status [code=200]  that status with a small body (none for 1xx/204/304)
    GET  /notmodified     304 with an ETag
    GET  /head-len        a fixed body; HEAD gets the same Content-Length and no body
    GET  /slow-head [delay=5]  sleeps before sending anything
    GET  /hang            never answers; returns when the client closes
    GET  /ws              WebSocket (RFC 6455) handshake, then echoes messages, answers pings
"""

import argparse
import asyncio
import base64
import hashlib
import http
import json
import signal
import string
import sys
import urllib.parse
from dataclasses import dataclass, field

MAX_HEAD_BYTES = 64 * 1024
BODY_READ_SIZE = 256 * 1024
PATTERN_BLOCK = 64 * 1024
WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
WS_MAX_MESSAGE = 16 * 1024 * 1024
CHUNK_ALPHABET = (string.ascii_letters + string.digits).encode()


# ---------------------------------------------------------------------------------------------
# Deterministic content, importable by tests to check what came through the proxy.


def pattern_block(seed, index):
    """Block `index` of the byte stream for `seed`: SHAKE-256 of "seed:index", 64 KiB long."""
    return hashlib.shake_256(('%s:%d' % (seed, index)).encode()).digest(PATTERN_BLOCK)


def pattern_chunks(n, seed):
    """The first n bytes of the stream for `seed`, as a sequence of blocks of at most 64 KiB."""
    for index in range((n + PATTERN_BLOCK - 1) // PATTERN_BLOCK):
        yield pattern_block(seed, index)[:n - index * PATTERN_BLOCK]


def pattern_bytes(n, seed=0):
    """The body of GET /bytes?n=N&seed=S."""
    return b''.join(pattern_chunks(n, seed))


def chunk_byte(i):
    """The byte chunk i of /chunked is filled with: a letter or digit, cycling every 62 chunks."""
    return CHUNK_ALPHABET[i % len(CHUNK_ALPHABET):][:1]


# ---------------------------------------------------------------------------------------------
# Counters.


@dataclass
class Stats:
    open: int = 0
    max_open: int = 0
    accepted: int = 0
    requests: int = 0

    def connection_opened(self):
        self.accepted += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)

    def connection_closed(self):
        self.open -= 1

    def reset(self):
        self.accepted = self.requests = 0
        self.max_open = self.open

    def as_json(self):
        return {'open': self.open, 'max_open': self.max_open, 'accepted': self.accepted,
                'requests': self.requests}


# ---------------------------------------------------------------------------------------------
# Requests.


class BadRequest(Exception):
    """The request cannot be parsed; answer 400 and close, since framing may be lost."""


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list  # [(name, value)] exactly as received, in order
    path: str = ''
    query: dict = field(default_factory=dict)
    body_len: int = 0
    body_sha256: str = hashlib.sha256(b'').hexdigest()

    def header(self, name):
        """The last value of a header, matched case-insensitively, or None."""
        values = self.header_values(name)
        return values[-1] if values else None

    def header_values(self, name):
        name = name.lower()
        return [value for key, value in self.headers if key.lower() == name]

    def header_tokens(self, name):
        """Comma-separated tokens of all such headers, lowercased (for Connection, Upgrade)."""
        return {token.strip().lower() for value in self.header_values(name)
                for token in value.split(',') if token.strip()}

    def arg(self, name, default, kind=str):
        try:
            return kind(self.query.get(name, default))
        except ValueError:
            raise BadRequest('query parameter %s must be %s' % (name, kind.__name__))


TOKEN_CHARS = set(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")


def parse_head(head):
    """Parse a request line and header block (without the final CRLF CRLF)."""
    lines = head.decode('latin-1').split('\r\n')
    parts = lines[0].split(' ')
    if len(parts) != 3 or not parts[2].startswith('HTTP/1.'):
        raise BadRequest('malformed request line')
    method, target, version = parts
    headers = [parse_header_line(line) for line in lines[1:]]
    request = Request(method=method, target=target, version=version, headers=headers)
    split = urllib.parse.urlsplit(target)
    request.path = split.path or '/'
    request.query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
    return request


def parse_header_line(line):
    """One `name: value` line. Whitespace before the colon and folded lines are rejected, as
    RFC 9112 requires, so a proxy that emits them fails loudly here."""
    name, colon, value = line.partition(':')
    if not colon or not name or not set(name) <= TOKEN_CHARS:
        raise BadRequest('malformed header line %r' % line)
    return name, value.strip(' \t')


def body_length(request):
    """Content-Length as an int (0 when absent); conflicting or invalid values are a 400."""
    values = {value.strip() for value in request.header_values('Content-Length')}
    if not values:
        return 0
    value = values.pop()
    if values or not value.isdigit():
        raise BadRequest('invalid Content-Length')
    return int(value)


# ---------------------------------------------------------------------------------------------
# One client connection: read requests, dispatch, write responses.


class Connection:
    def __init__(self, server, reader, writer, counted=True):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.counted = counted  # False on the control port
        self.closing = False  # send `Connection: close` and close after the current response
        self.head_request = False

    async def serve(self):
        while not self.closing:
            request = await self.next_request()
            if request is None:
                return
            await self.server.dispatch(self, request)
            await self.writer.drain()

    async def next_request(self):
        """Read and parse the next request head, or None when the client left or stayed idle
        for --idle-close seconds (then we close without a word, as CherryPy does)."""
        self.head_request = False
        try:
            head = await asyncio.wait_for(self.reader.readuntil(b'\r\n\r\n'),
                                          self.server.options.idle_close)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return None
        except asyncio.LimitOverrunError:
            await self.reject(431, 'request head too large')
            return None
        self.server.stats.requests += self.counted
        try:
            request = parse_head(head[:-4])
        except BadRequest as error:
            await self.reject(400, str(error))
            return None
        self.server.log('%s %s %s' % (request.method, request.target, request.version))
        self.closing = self.should_close(request)
        self.head_request = request.method == 'HEAD'
        return await self.read_body(request)

    def should_close(self, request):
        over_limit = (self.server.options.max_keepalive is not None
                      and self.server.stats.open > self.server.options.max_keepalive)
        return (request.version != 'HTTP/1.1' or 'close' in request.header_tokens('Connection')
                or (over_limit and self.counted))

    async def read_body(self, request):
        """Consume the body into a length and a hash (never kept in memory), or reject it."""
        if request.header_values('Transfer-Encoding'):
            await self.reject(411, 'a request body needs Content-Length (chunked is refused, '
                                   'as the Ceph dashboard refuses it)')
            return None
        try:
            length = body_length(request)
        except BadRequest as error:
            await self.reject(400, str(error))
            return None
        if length and (request.header('Expect') or '').lower() == '100-continue':
            self.writer.write(b'HTTP/1.1 100 Continue\r\n\r\n')
        digest = hashlib.sha256()
        remaining = length
        while remaining:
            piece = await self.reader.read(min(remaining, BODY_READ_SIZE))
            if not piece:
                raise ConnectionResetError('client closed during the request body')
            digest.update(piece)
            remaining -= len(piece)
        request.body_len, request.body_sha256 = length, digest.hexdigest()
        return request

    async def reject(self, status, message):
        self.closing = True
        await self.send_json(status, {'error': message})

    # Writing responses. HEAD responses keep their Content-Length but drop the body.

    def send_head(self, status, headers=(), length=None):
        lines = ['HTTP/1.1 %d %s' % (status, reason(status)), 'Server: h2front-testserver']
        lines += ['%s: %s' % pair for pair in headers]
        if length is not None:
            lines.append('Content-Length: %d' % length)
        if self.closing and status != 101:
            lines.append('Connection: close')
        self.writer.write(('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1'))

    async def send(self, status, headers=(), body=b''):
        no_body = status in (204, 304) or 100 <= status < 200
        self.send_head(status, headers, None if no_body else len(body))
        if not self.head_request and not no_body:
            self.writer.write(body)
        await self.writer.drain()

    async def send_json(self, status, obj, headers=()):
        body = (json.dumps(obj) + '\n').encode()
        await self.send(status, [('Content-Type', 'application/json')] + list(headers), body)

    async def send_chunk(self, data):
        """One chunk of a chunked body, flushed now; an empty `data` ends the body."""
        if not self.head_request:
            self.writer.write(b'%x\r\n%s\r\n' % (len(data), data))
            await self.writer.drain()


def reason(status):
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return 'Unknown'


# ---------------------------------------------------------------------------------------------
# Endpoints. Each takes (conn, request) and writes one response.


async def get_stats(conn, request):
    await conn.send_json(200, conn.server.stats.as_json())


async def reset_stats(conn, request):
    conn.server.stats.reset()
    await conn.send_json(200, conn.server.stats.as_json())


async def get_bytes(conn, request):
    n, seed = request.arg('n', 1024, int), request.arg('seed', '0')
    conn.send_head(200, [('Content-Type', 'application/octet-stream')], n)
    if not conn.head_request:
        for block in pattern_chunks(n, seed):
            conn.writer.write(block)
            await conn.writer.drain()


async def get_json(conn, request):
    await conn.send_json(200, {'hello': 'world', 'server': 'testserver', 'numbers': [1, 2, 3]})


async def echo(conn, request):
    await conn.send_json(200, {
        'method': request.method, 'path': request.target, 'http_version': request.version,
        'headers': [list(pair) for pair in request.headers],
        'body_len': request.body_len, 'body_sha256': request.body_sha256})


async def upload(conn, request):
    await conn.send_json(200, {'len': request.body_len, 'sha256': request.body_sha256})


async def chunked(conn, request):
    chunks, delay = request.arg('chunks', 5, int), request.arg('delay', 0.2, float)
    size = request.arg('size', 16, int)
    conn.send_head(200, [('Content-Type', 'application/octet-stream'),
                         ('Transfer-Encoding', 'chunked')])
    for i in range(chunks):
        if i:
            await asyncio.sleep(delay)
        await conn.send_chunk(chunk_byte(i) * size)
    await conn.send_chunk(b'')


async def sse(conn, request):
    events, delay = request.arg('events', 5, int), request.arg('delay', 0.2, float)
    conn.send_head(200, [('Content-Type', 'text/event-stream'), ('Cache-Control', 'no-cache'),
                         ('Transfer-Encoding', 'chunked')])
    for i in range(events):
        if i:
            await asyncio.sleep(delay)
        await conn.send_chunk(b'id: %d\ndata: {"event": %d}\n\n' % (i, i))
    await conn.send_chunk(b'')


async def redirect(conn, request):
    target, status = request.arg('to', '/'), request.arg('status', 302, int)
    await conn.send(status, [('Location', target), ('Content-Type', 'text/plain')],
                    b'redirecting to %s\n' % target.encode())


async def refresh(conn, request):
    target = request.arg('to', '/')
    await conn.send(200, [('Refresh', '0; url=' + target), ('Content-Type', 'text/plain')],
                    b'refreshing to %s\n' % target.encode())


async def set_cookie(conn, request):
    await conn.send(200, [('Set-Cookie', 'token=abc; HttpOnly; Path=/; SameSite=Strict'),
                          ('Set-Cookie', 'other=1; Path=/'), ('Content-Type', 'text/plain')],
                    b'cookies set\n')


async def hop_by_hop(conn, request):
    """Headers a proxy must strip (RFC 9110 7.6.1), X-Hop because Connection names it.
    No Upgrade: that is only meaningful on a 101."""
    await conn.send(200, [('Connection', 'Keep-Alive, X-HOP'), ('Keep-Alive', 'timeout=5'),
                          ('X-Hop', '1'), ('Proxy-Connection', 'x'), ('X-End', '1'),
                          ('Content-Type', 'text/plain')], b'hop\n')


async def status(conn, request):
    code = request.arg('code', 200, int)
    if not 200 <= code <= 999:
        raise BadRequest('code must be a final status, 200..999')
    await conn.send(code, [('Content-Type', 'text/plain')], b'status %d\n' % code)


async def not_modified(conn, request):
    await conn.send(304, [('ETag', '"testserver-v1"'), ('Cache-Control', 'no-cache')])


async def head_len(conn, request):
    await conn.send(200, [('Content-Type', 'text/plain')], b'twenty-one bytes long')


async def slow_head(conn, request):
    await asyncio.sleep(request.arg('delay', 5, float))
    await conn.send(200, [('Content-Type', 'text/plain')], b'slow\n')


async def hang(conn, request):
    """Answer nothing; discard anything else the client sends until it goes away."""
    while await conn.reader.read(65536):
        pass
    conn.closing = True


async def websocket(conn, request):
    key = request.header('Sec-WebSocket-Key')
    if ('websocket' not in request.header_tokens('Upgrade')
            or 'upgrade' not in request.header_tokens('Connection') or not key
            or request.header('Sec-WebSocket-Version') != '13'):
        conn.closing = True
        await conn.send_json(400, {'error': 'expected a WebSocket version 13 upgrade'})
        return
    accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    conn.closing = True  # when the WebSocket ends, so does the TCP connection
    conn.send_head(101, [('Upgrade', 'websocket'), ('Connection', 'Upgrade'),
                         ('Sec-WebSocket-Accept', accept)])
    await conn.writer.drain()
    await WebSocketEcho(conn.reader, conn.writer).run()


ROUTES = {
    '/_stats': ({'GET', 'HEAD'}, get_stats),
    '/_stats/reset': ({'POST'}, reset_stats),
    '/bytes': ({'GET', 'HEAD'}, get_bytes),
    '/json': ({'GET', 'HEAD'}, get_json),
    '/echo': (None, echo),
    '/upload': ({'POST', 'PUT'}, upload),
    '/chunked': ({'GET', 'HEAD'}, chunked),
    '/sse': ({'GET', 'HEAD'}, sse),
    '/redirect': ({'GET', 'HEAD'}, redirect),
    '/refresh': ({'GET', 'HEAD'}, refresh),
    '/setcookie': ({'GET', 'HEAD'}, set_cookie),
    '/hop': ({'GET', 'HEAD'}, hop_by_hop),
    '/status': ({'GET', 'HEAD'}, status),
    '/notmodified': ({'GET', 'HEAD'}, not_modified),
    '/head-len': ({'GET', 'HEAD'}, head_len),
    '/slow-head': ({'GET', 'HEAD'}, slow_head),
    '/hang': ({'GET', 'HEAD'}, hang),
    '/ws': ({'GET'}, websocket),
}


# ---------------------------------------------------------------------------------------------
# WebSocket echo (RFC 6455): client frames are masked, ours are not; fragmented messages are
# reassembled and echoed as one frame; a ping gets a pong; a close is answered and ends it.

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class WebSocketClosed(Exception):
    pass


class WebSocketEcho:
    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    async def run(self):
        message_opcode, parts = None, []
        try:
            while True:
                fin, opcode, payload = await self.read_frame()
                if opcode >= OP_CLOSE:
                    await self.control(opcode, payload)
                    continue
                if opcode != OP_CONTINUATION:
                    message_opcode, parts = opcode, []
                parts.append(payload)
                if sum(map(len, parts)) > WS_MAX_MESSAGE:
                    return await self.close(1009)
                if fin:
                    await self.write_frame(message_opcode, b''.join(parts))
        except WebSocketClosed:
            return

    async def control(self, opcode, payload):
        if opcode == OP_PING:
            await self.write_frame(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            await self.write_frame(OP_CLOSE, payload[:2])  # echo the status code
            raise WebSocketClosed()

    async def close(self, code):
        await self.write_frame(OP_CLOSE, code.to_bytes(2, 'big'))

    async def read_frame(self):
        try:
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(await self.reader.readexactly(2), 'big')
            elif length == 127:
                length = int.from_bytes(await self.reader.readexactly(8), 'big')
            if not second & 0x80:  # clients must mask
                await self.close(1002)
                raise WebSocketClosed()
            if length > WS_MAX_MESSAGE:
                await self.close(1009)
                raise WebSocketClosed()
            mask = await self.reader.readexactly(4)
            payload = unmask(await self.reader.readexactly(length), mask)
        except (asyncio.IncompleteReadError, ConnectionError):
            raise WebSocketClosed()
        return bool(first & 0x80), first & 0x0F, payload

    async def write_frame(self, opcode, payload):
        length = len(payload)
        if length < 126:
            header = bytes([0x80 | opcode, length])
        elif length < 65536:
            header = bytes([0x80 | opcode, 126]) + length.to_bytes(2, 'big')
        else:
            header = bytes([0x80 | opcode, 127]) + length.to_bytes(8, 'big')
        self.writer.write(header + payload)
        await self.writer.drain()


def unmask(data, mask):
    """XOR with the 4-byte mask, done on big integers because a byte loop is slow in Python."""
    repeated = (mask * (len(data) // 4 + 1))[:len(data)]
    xored = int.from_bytes(data, 'big') ^ int.from_bytes(repeated, 'big')
    return xored.to_bytes(len(data), 'big')


# ---------------------------------------------------------------------------------------------
# The server.


class TestServer:
    def __init__(self, options):
        self.options = options
        self.stats = Stats()

    def log(self, message):
        if self.options.verbose:
            print(message, file=sys.stderr, flush=True)

    async def on_connection(self, reader, writer):
        self.stats.connection_opened()
        try:
            await self.serve(Connection(self, reader, writer))
        finally:
            self.stats.connection_closed()

    async def on_control_connection(self, reader, writer):
        await self.serve(Connection(self, reader, writer, counted=False))

    async def serve(self, conn):
        try:
            await conn.serve()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client vanished mid-request or mid-response; nothing to tell it
        finally:
            conn.writer.close()

    async def dispatch(self, conn, request):
        methods, handler = ROUTES.get(request.path, (None, None))
        if not conn.counted and not request.path.startswith('/_stats'):
            handler = None
        try:
            if handler is None:
                await conn.send_json(404, {'error': 'no such path', 'path': request.path})
            elif methods is not None and request.method not in methods:
                await conn.send_json(405, {'error': 'method not allowed'},
                                     [('Allow', ', '.join(sorted(methods)))])
            else:
                await handler(conn, request)
        except BadRequest as error:
            await conn.send_json(400, {'error': str(error)})


async def serve(options):
    server = TestServer(options)
    listeners = []
    if options.control_port is not None:
        listeners.append(await listen(server.on_control_connection, options.host,
                                      options.control_port, 'control on'))
    listeners.append(await listen(server.on_connection, options.host, options.port, 'ready on'))
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    # Don't wait for open connections (a /hang would block forever); asyncio.run cancels them.
    for listener in listeners:
        listener.close()


async def listen(on_connection, host, port, announcement):
    listener = await asyncio.start_server(on_connection, host, port, backlog=1024,
                                          limit=MAX_HEAD_BYTES)
    port = listener.sockets[0].getsockname()[1]
    print('%s http://%s:%d' % (announcement, host, port), flush=True)
    return listener


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, required=True, help='0 picks a free port')
    parser.add_argument('--idle-close', type=float, default=30,
                        help='close a keep-alive connection after this many idle seconds')
    parser.add_argument('--max-keepalive', type=int, default=None,
                        help='close after responding while more connections are open')
    parser.add_argument('--control-port', type=int, default=None,
                        help='also serve /_stats* here, without counting those connections')
    parser.add_argument('--verbose', action='store_true', help='log each request on stderr')
    return parser.parse_args(argv)


def main(argv=None):
    asyncio.run(serve(parse_args(argv)))


if __name__ == '__main__':
    main()
