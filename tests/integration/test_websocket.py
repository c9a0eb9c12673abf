"""WebSocket (RFC 6455) through h2front, from HTTP/1.1 clients: the upgrade handshake reaches the
backend (tests/backend/testserver.py's /ws echo), the 101 comes back with the right accept key,
and frames flow both ways through the tunnel, on the TLS listener (ALPN http/1.1) and on a plain
one. The client is written here on the standard library alone (socket, ssl), so every byte on the
wire is the test's own.

Environment: H2FRONT_BIN (the binary), H2FRONT_SOURCE_ROOT (the source tree).
"""

import base64
import hashlib
import json
import os
import re
import socket
import ssl
import struct
import time

import pytest

from harness import H2FRONT_BIN, Front, h2_connection, start_testserver

pytestmark = pytest.mark.skipif(not H2FRONT_BIN, reason="H2FRONT_BIN is not set")

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class WebSocketClient:
    """A minimal RFC 6455 client: masked frames out, unmasked frames in."""

    def __init__(self, port, tls, path="/ws", timeout=10):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["http/1.1"])
            self.sock = context.wrap_socket(raw, server_hostname="localhost")
            assert self.sock.selected_alpn_protocol() == "http/1.1"
        else:
            self.sock = raw
        self.buffer = b""
        self.key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: localhost:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nOrigin: https://localhost:%d\r\n\r\n"
                           % (path, port, self.key, port)).encode())
        head = self._read_until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        self.status_line = lines[0]
        self.headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                self.headers.setdefault(name.strip().lower(), []).append(value.strip())

    def header(self, name):
        values = self.headers.get(name.lower())
        return values[-1] if values else None

    @property
    def expected_accept(self):
        return base64.b64encode(hashlib.sha1((self.key + WS_GUID).encode()).digest()).decode()

    def _recv(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("connection closed (after %d buffered bytes)" % len(self.buffer))
        self.buffer += data

    def _read_until(self, marker):
        while marker not in self.buffer:
            self._recv()
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def _read_exactly(self, n):
        while len(self.buffer) < n:
            self._recv()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def send_frame(self, opcode, payload, fin=True):
        length = len(payload)
        first = (0x80 if fin else 0) | opcode
        if length < 126:
            header = struct.pack("!BB", first, 0x80 | length)
        elif length < 65536:
            header = struct.pack("!BBH", first, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", first, 0x80 | 127, length)
        mask = os.urandom(4)
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (length // 4 + 1))[:length], "big")
                  ).to_bytes(length, "big") if length else b""
        self.sock.sendall(header + mask + masked)

    def read_frame(self):
        """(fin, opcode, payload); server frames must not be masked."""
        first, second = self._read_exactly(2)
        assert not second & 0x80, "a server frame was masked"
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._read_exactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._read_exactly(8))[0]
        return bool(first & 0x80), first & 0x0F, self._read_exactly(length)

    def at_eof(self, timeout=5):
        """True once the peer closed the connection (nothing more arrives)."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b"" and not self.buffer
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def assert_upgraded(ws):
    assert ws.status_line.startswith("HTTP/1.1 101 "), (ws.status_line, ws.headers)
    assert ws.header("upgrade") is not None and ws.header("upgrade").lower() == "websocket", ws.headers
    assert "upgrade" in ws.header("connection").lower(), ws.headers
    assert ws.header("sec-websocket-accept") == ws.expected_accept, ws.headers


@pytest.mark.parametrize("tls", [True, False], ids=["tls-http1.1", "plain"])
def test_websocket_echo_through_h2front(tmp_path, h2front, tls):
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend)
    ws = WebSocketClient(front.port if tls else front.plain_port, tls)
    try:
        assert_upgraded(ws)
        ws.send_frame(OP_TEXT, "héllo, dashboard".encode())
        assert ws.read_frame() == (True, OP_TEXT, "héllo, dashboard".encode())
        binary = bytes(range(256)) * 3
        ws.send_frame(OP_BINARY, binary)
        assert ws.read_frame() == (True, OP_BINARY, binary)
        ws.send_frame(OP_PING, b"are you there")
        assert ws.read_frame() == (True, OP_PONG, b"are you there")
        # a message in two fragments comes back whole
        ws.send_frame(OP_TEXT, b"first half, ", fin=False)
        ws.send_frame(OP_CONTINUATION, b"second half")
        assert ws.read_frame() == (True, OP_TEXT, b"first half, second half")
        # 200 KB each way (64-bit length), in one frame
        big = hashlib.shake_256(b"websocket").digest(200_000)
        ws.send_frame(OP_BINARY, big)
        fin, opcode, payload = ws.read_frame()
        assert (fin, opcode, len(payload)) == (True, OP_BINARY, len(big))
        assert payload == big
        # closing handshake: the code is echoed, then the connection ends
        ws.send_frame(OP_CLOSE, struct.pack("!H", 1000))
        assert ws.read_frame() == (True, OP_CLOSE, struct.pack("!H", 1000))
        assert ws.at_eof(), "the tunnel stayed open after the closing handshake"
    finally:
        ws.close()
    assert front.proc.returncode is None
    # the backend connection ended with the tunnel
    deadline = time.monotonic() + 3
    while backend.stats()["open"] != 0:
        assert time.monotonic() < deadline, backend.stats()
        time.sleep(0.02)


def test_websocket_handshake_reaches_backend_intact(tmp_path, h2front):
    """The backend sees a proper upgrade request: its own checks (key, version, Upgrade and
    Connection tokens) pass, and a refused upgrade comes back as the backend's answer."""
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend)
    # no Sec-WebSocket-Key: testserver answers 400 itself, and h2front relays it
    raw = socket.create_connection(("127.0.0.1", front.plain_port), timeout=10)
    try:
        raw.sendall(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Version: 13\r\n\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply:
            piece = raw.recv(65536)
            assert piece, reply
            reply += piece
        head, _, body = reply.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?im)^content-length: *(\d+)\r?$", head).group(1))
        while len(body) < length:
            piece = raw.recv(65536)
            assert piece, reply
            body += piece
    finally:
        raw.close()
    assert head.startswith(b"HTTP/1.1 400 "), reply
    assert json.loads(body) == {"error": "expected a WebSocket version 13 upgrade"}
    # and a complete handshake is accepted by the backend's own checks
    ws = WebSocketClient(front.plain_port, tls=False)
    try:
        assert_upgraded(ws)
    finally:
        ws.close()


def test_websocket_tunnel_does_not_hold_a_pool_connection(tmp_path, h2front):
    """README: a tunnel leaves the pool and does not count against max_connections."""
    backend = start_testserver(tmp_path)
    front = Front(h2front, backend, upstream={"max_connections": 1, "queue": {"timeout": "1s"}})
    first = WebSocketClient(front.plain_port, tls=False)
    second = WebSocketClient(front.port, tls=True)
    try:
        assert_upgraded(first)
        assert_upgraded(second)
        with h2_connection(front.port) as conn:
            response = conn.request("GET", "/json")
        assert response.status == 200, (response.status, response.body)
        for ws, text in ((first, b"one"), (second, b"two")):
            ws.send_frame(OP_TEXT, text)
            assert ws.read_frame() == (True, OP_TEXT, text)
    finally:
        first.close()
        second.close()
    assert backend.stats()["max_open"] == 3  # two tunnels and one pooled connection
