#!/usr/bin/python3
"""A TCP relay that makes loopback behave like a slow link (tc/netem is not available here).

    relay.py --target-port PORT [--rtt-ms 40] [--down-mbit 20] [--up-mbit 5] [--stats FILE]

Prints `relay on PORT`; every connection accepted there is relayed to 127.0.0.1:--target-port.
Every byte crosses one of two links shared by all connections: up (client to server) at
--up-mbit, down (server to client) at --down-mbit. A chunk waits until its link is free, takes
its size / rate to send, then arrives half a round trip later. So each real round trip costs
--rtt-ms plus serialisation, connections compete for bandwidth, and the TCP handshake is charged
too: the client's connect() succeeds at once on loopback, so its first bytes are held back one
extra round trip (SYN, SYN-ACK). TCP's slow start and losses are not modelled; byte counts are
payload (TLS records included), without TCP/IP headers.

On SIGTERM (or SIGINT) it writes {connections, bytes_up, bytes_down} to --stats and exits.
"""

import argparse
import asyncio
import collections
import json
import signal


class Link:
    def __init__(self, mbit, one_way_s):
        self.rate = mbit * 1e6 / 8  # bytes per second
        self.one_way = one_way_s
        self.free_at = 0.0
        self.bytes = 0

    def arrival(self, now, size):
        start = max(now, self.free_at)
        self.free_at = start + size / self.rate
        self.bytes += size
        return self.free_at + self.one_way


class Direction:
    """One direction of one connection: chunks are delivered in order, each at its arrival time."""

    def __init__(self, link, writer, extra_first=0.0):
        self.link = link
        self.writer = writer
        self.queue = collections.deque()
        self.wakeup = asyncio.Event()
        self.last = 0.0
        self.extra_first = extra_first
        self.task = asyncio.ensure_future(self.deliver())

    def push(self, data):
        loop = asyncio.get_running_loop()
        now = loop.time()
        at = self.link.arrival(now, len(data)) + self.extra_first
        self.extra_first = 0.0
        self.last = at = max(at, self.last)
        self.queue.append((at, data))
        self.wakeup.set()

    def push_eof(self):
        self.queue.append((self.last, None))
        self.wakeup.set()

    async def deliver(self):
        loop = asyncio.get_running_loop()
        try:
            while True:
                while not self.queue:
                    self.wakeup.clear()
                    await self.wakeup.wait()
                at, data = self.queue[0]
                delay = at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.queue.popleft()
                if data is None:
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                    return
                self.writer.write(data)
                await self.writer.drain()
        except (ConnectionError, OSError):
            pass


class Relay:
    def __init__(self, args):
        self.args = args
        one_way = args.rtt_ms / 2000.0
        self.up = Link(args.up_mbit, one_way)
        self.down = Link(args.down_mbit, one_way)
        self.connections = 0

    async def handle(self, client_reader, client_writer):
        self.connections += 1
        try:
            server_reader, server_writer = await asyncio.open_connection('127.0.0.1', self.args.target_port)
        except OSError:
            client_writer.close()
            return
        for w in (client_writer, server_writer):
            sock = w.get_extra_info('socket')
            if sock is not None:
                import socket
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        up = Direction(self.up, server_writer, extra_first=self.args.rtt_ms / 1000.0)
        down = Direction(self.down, client_writer)
        await asyncio.gather(self.pump(client_reader, up), self.pump(server_reader, down))
        await asyncio.gather(up.task, down.task, return_exceptions=True)
        for w in (client_writer, server_writer):
            w.close()

    async def pump(self, reader, direction):
        try:
            while True:
                data = await reader.read(16384)
                if not data:
                    break
                direction.push(data)
        except (ConnectionError, OSError):
            pass
        direction.push_eof()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument('--target-port', type=int, required=True)
    p.add_argument('--listen-port', type=int, default=0)
    p.add_argument('--rtt-ms', type=float, default=40)
    p.add_argument('--down-mbit', type=float, default=20)
    p.add_argument('--up-mbit', type=float, default=5)
    p.add_argument('--stats')
    args = p.parse_args()
    relay = Relay(args)
    server = await asyncio.start_server(relay.handle, '127.0.0.1', args.listen_port, backlog=1024)
    print('relay on %d' % server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    if args.stats:
        with open(args.stats, 'w') as f:
            json.dump({'connections': relay.connections, 'bytes_up': relay.up.bytes,
                       'bytes_down': relay.down.bytes}, f)


if __name__ == '__main__':
    asyncio.run(main())
