#!/usr/bin/python3
"""tests/backend/dashboard.py, unchanged, plus a count of the connections its server accepted.

The benchmark needs to know how many connections each proxy opened to CherryPy. cheroot accepts
every connection in ConnectionManager._from_server_socket; this wraps that method to count, and
serves the count on a separate plain-HTTP control port (so asking opens no dashboard connection):

    dashboard_counting.py --control-port 0 [dashboard.py options]
    prints "control on http://127.0.0.1:PORT"; GET /accepted answers the count as text.
"""

import http.server
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'backend'))
import dashboard  # noqa: E402
from cheroot import connections  # noqa: E402

ACCEPTED = 0
_lock = threading.Lock()
_from_server_socket = connections.ConnectionManager._from_server_socket


def _counting_from_server_socket(self, server_socket):
    global ACCEPTED
    conn = _from_server_socket(self, server_socket)
    if conn is not None:
        with _lock:
            ACCEPTED += 1
    return conn


connections.ConnectionManager._from_server_socket = _counting_from_server_socket


class ControlHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != '/accepted':
            self.send_error(404)
            return
        body = str(ACCEPTED).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    argv = sys.argv[1:]
    control_port = 0
    if '--control-port' in argv:
        i = argv.index('--control-port')
        control_port = int(argv[i + 1])
        del argv[i:i + 2]
    control = http.server.HTTPServer(('127.0.0.1', control_port), ControlHandler)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    print('control on http://127.0.0.1:%d' % control.server_address[1], flush=True)
    dashboard.main(argv)


if __name__ == '__main__':
    main()
