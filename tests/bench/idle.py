#!/usr/bin/python3
"""Many idle TLS + HTTP/2 connections, each used for one request, then held open.

    idle.py --port PORT --connections N [--concurrency C] [--path PATH]

Opens N connections (at most C handshakes at a time), sends one GET on each and reads its
response, then prints `ready ok=N failed=F seconds=S` and keeps every connection open, answering
the server's SETTINGS and PING frames, until a line `quit` (or EOF) arrives on stdin; it then
prints `closed dropped=D` (connections the server closed meanwhile) and exits.

HTTP/2 is spoken by hand (a few frame types and a literal HPACK block), so that 10,000 connections
cost the client little CPU and memory; the server sees an ordinary client.
"""

import argparse
import asyncio
import ssl
import struct
import sys
import time

PREFACE = b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0, 1, 3, 4, 6, 7
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


def frame(kind, flags, stream, payload=b''):
    return struct.pack('>I', len(payload))[1:] + struct.pack('>BBI', kind, flags, stream) + payload


def hpack_literal(index, value):
    """Literal header field without indexing, name from the static table (RFC 7541 6.2.2)."""
    value = value.encode()
    assert index < 15 and len(value) < 127
    return bytes([index, len(value)]) + value


def request_frames(path, authority):
    block = (b'\x82'                        # :method GET
             + b'\x87'                      # :scheme https
             + hpack_literal(4, path)       # :path
             + hpack_literal(1, authority))  # :authority
    return PREFACE + frame(SETTINGS, 0, 0) + frame(HEADERS, END_STREAM | END_HEADERS, 1, block)


class Conn:
    def __init__(self):
        self.answered = asyncio.get_running_loop().create_future()
        self.closed = False


async def run_conn(conn, port, context, hello):
    try:
        reader, writer = await asyncio.open_connection('127.0.0.1', port, ssl=context,
                                                       server_hostname='localhost')
    except (OSError, ssl.SSLError) as e:
        conn.answered.set_result('connect: %s' % e)
        return
    conn.writer = writer
    writer.write(hello)
    buf = b''
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            buf += data
            while len(buf) >= 9:
                length = int.from_bytes(buf[:3], 'big')
                if len(buf) < 9 + length:
                    break
                kind, flags = buf[3], buf[4]
                stream = int.from_bytes(buf[5:9], 'big') & 0x7fffffff
                payload = buf[9:9 + length]
                buf = buf[9 + length:]
                if kind == SETTINGS and not flags & ACK:
                    writer.write(frame(SETTINGS, ACK, 0))
                elif kind == PING and not flags & ACK:
                    writer.write(frame(PING, ACK, 0, payload))
                elif kind in (HEADERS, DATA) and stream == 1 and flags & END_STREAM:
                    if not conn.answered.done():
                        conn.answered.set_result(None)
                elif kind == RST_STREAM and stream == 1 and not conn.answered.done():
                    conn.answered.set_result('stream reset')
                elif kind == GOAWAY and not conn.answered.done():
                    conn.answered.set_result('GOAWAY')
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    conn.closed = True
    if not conn.answered.done():
        conn.answered.set_result('closed by the server')
    writer.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--connections', type=int, default=10000)
    parser.add_argument('--concurrency', type=int, default=100)
    parser.add_argument('--path', default='/api/summary')
    args = parser.parse_args()

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(['h2'])
    hello = request_frames(args.path, '127.0.0.1:%d' % args.port)

    started = time.monotonic()
    conns, tasks, failures = [], [], []
    gate = asyncio.Semaphore(args.concurrency)

    async def open_one():
        async with gate:
            conn = Conn()
            conns.append(conn)
            tasks.append(asyncio.ensure_future(run_conn(conn, args.port, context, hello)))
            try:
                error = await asyncio.wait_for(asyncio.shield(conn.answered), 30)
            except asyncio.TimeoutError:
                error = 'no answer within 30 s'
            if error:
                failures.append(error)

    await asyncio.gather(*(open_one() for _ in range(args.connections)))
    ok = args.connections - len(failures)
    print('ready ok=%d failed=%d seconds=%.2f%s' % (
        ok, len(failures), time.monotonic() - started,
        (' first_error=%r' % failures[0]) if failures else ''), flush=True)

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    dropped = sum(1 for c in conns if c.closed)
    for c in conns:
        writer = getattr(c, 'writer', None)
        if writer is not None:
            writer.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print('closed dropped=%d' % dropped, flush=True)


if __name__ == '__main__':
    asyncio.run(main())
