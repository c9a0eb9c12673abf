"""Configuration errors through the real command line: `h2front -c FILE --check` (and -t).

A bad file must exit 1, print nothing on stdout, and print one `FILE:LINE:COL: key: what; what to do` line per problem on
stderr, pointing at the exact place in the file. The reference config/h2front.yaml must pass.

Environment: H2FRONT_BIN (the binary), H2FRONT_SOURCE_ROOT (the source tree, for config/h2front.yaml).
"""

import os
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

BIN = os.environ.get("H2FRONT_BIN", "")
SOURCE_ROOT = Path(os.environ.get("H2FRONT_SOURCE_ROOT", Path(__file__).resolve().parents[2]))

pytestmark = pytest.mark.skipif(not BIN, reason="H2FRONT_BIN is not set")

# Lines 1-5 of most cases below; the case's own lines start at 6. Backends come last so that a case can add one.
VALID_HEAD = """\
listen:
  - address: "[::]:8443"
    tls: self-signed
backends:
  - url: http://127.0.0.1:8090
"""

# The same with listen last, for cases that add a listener.
VALID_HEAD_LISTEN_LAST = """\
backends:
  - url: http://127.0.0.1:8090
listen:
  - address: "[::]:8443"
    tls: self-signed
"""


def run_h2front(*args, timeout=30):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def write_config(tmp_path, text):
    path = tmp_path / "h2front.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def located_line(path, line, column, key):
    """The regex every reported problem must match: file, 1-based line and column, dotted key."""
    return re.compile(rf"^{re.escape(str(path))}:{line}:{column}: {re.escape(key)}: .+; .+$", re.MULTILINE)


# id, file content, expected line, column, key, a phrase the message must contain
BAD_CONFIGS = [
    ("yaml_syntax",
     VALID_HEAD + "upstream:\n  max_connections: 10\n idle_timeout: 5s\n",
     8, 2, "yaml", "did not find expected key"),
    ("unknown_key",
     VALID_HEAD + "upstream:\n  max_conections: 10\n",
     7, 3, "upstream.max_conections", "did you mean max_connections?"),
    ("wrong_type",
     VALID_HEAD + "upstream:\n  queue: [1024, 10s]\n",
     7, 10, "upstream.queue", "is a list, but it must be a map"),
    ("bad_duration",
     VALID_HEAD + "upstream:\n  queue: { max: 1024, timeout: 10 }\n",
     7, 32, "upstream.queue.timeout", '"10" has no unit; write it like 10s or 500ms'),
    ("bad_size",
     VALID_HEAD + "limits:\n  request_body: 16mb\n",
     7, 17, "limits.request_body", '"16mb" has an unknown unit'),
    ("out_of_range",
     VALID_HEAD + "upstream:\n  max_connections: 2000\n",
     7, 20, "upstream.max_connections", '"2000" is out of range; use 1 to 1024'),
    ("bad_address",
     VALID_HEAD_LISTEN_LAST + "  - address: 0.0.0.0\n",
     6, 14, "listen[1].address", '"0.0.0.0" has no port'),
    ("bad_url",
     VALID_HEAD + "  - url: http://127.0.0.1:8090/dashboard\n",
     6, 10, "backends[1].url", "h2front forwards request paths unchanged"),
    ("missing_backends",
     'listen:\n  - address: "[::]:8443"\n    tls: self-signed\n',
     1, 1, "backends", "is required"),
    ("unreadable_certificate",
     VALID_HEAD_LISTEN_LAST
     + '  - address: "[::]:9443"\n    tls:\n      certificate: /nonexistent/h2front/cert.pem\n      key: /dev/null\n',
     8, 20, "listen[1].tls.certificate", '"/nonexistent/h2front/cert.pem" cannot be read'),
    ("redirect_on_tls_listener",
     VALID_HEAD_LISTEN_LAST + '  - address: "[::]:9443"\n    tls: self-signed\n    redirect: true\n',
     8, 15, "listen[1].redirect", "only plain listeners redirect"),
    ("tls_not_self_signed_or_map",
     VALID_HEAD_LISTEN_LAST + '  - address: "[::]:9443"\n    tls: on\n',
     7, 10, "listen[1].tls", '"on" is not a TLS setting'),
    ("boolean_not_true_false",
     VALID_HEAD_LISTEN_LAST + '  - address: "[::]:8080"\n    redirect: yes\n',
     7, 15, "listen[1].redirect", '"yes" is not a boolean; write true or false'),
    ("ca_file_on_http_backend",
     VALID_HEAD + "    ca_file: /dev/null\n",
     6, 14, "backends[0].ca_file", "only applies to https:// backends"),
    ("duplicate_key",
     VALID_HEAD + "log:\n  level: info\n  level: debug\n",
     8, 3, "log.level", "duplicate key, already set at line 7, column 3"),
]


@pytest.mark.parametrize("text,line,column,key,phrase", [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_is_located(tmp_path, text, line, column, key, phrase):
    path = write_config(tmp_path, text)
    result = run_h2front("-c", str(path), "--check")
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one problem, got:\n{result.stderr}"
    assert located_line(path, line, column, key).match(lines[0]), result.stderr
    assert phrase in lines[0]


def test_all_problems_are_reported_in_one_run(tmp_path):
    path = write_config(tmp_path, """\
        listen:
          - address: 1.2.3.4
            redirect: maybe
        backends:
          - url: ftp://127.0.0.1
        upstream:
          max_conections: 10
          idle_timeout: 5
        log:
          level: loud
        """)
    result = run_h2front("-c", str(path), "-t")
    assert result.returncode == 1
    assert result.stdout == ""
    expected = [(2, 14, "listen[0].address"), (3, 15, "listen[0].redirect"), (5, 10, "backends[0].url"),
                (7, 3, "upstream.max_conections"), (8, 17, "upstream.idle_timeout"), (10, 10, "log.level")]
    lines = result.stderr.splitlines()
    assert len(lines) == len(expected), result.stderr
    for line, column, key in expected:
        assert located_line(path, line, column, key).search(result.stderr), (line, column, key, result.stderr)


def test_bad_config_starts_nothing(tmp_path):
    """Without --check a bad file must still fail before anything listens."""
    path = write_config(tmp_path, VALID_HEAD + "front:\n  max_streams: 0\n")
    result = run_h2front("-c", str(path), timeout=10)
    assert result.returncode == 1
    assert located_line(path, 7, 16, "front.max_streams").search(result.stderr), result.stderr


def test_missing_file(tmp_path):
    path = tmp_path / "absent.yaml"
    result = run_h2front("-c", str(path), "--check")
    assert result.returncode == 1
    assert result.stderr.startswith(f"{path}: cannot read the configuration")


def test_reference_config_passes(tmp_path):
    path = SOURCE_ROOT / "config" / "h2front.yaml"
    for flag in ("--check", "-t"):
        result = run_h2front("-c", str(path), flag)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"{path}: configuration OK\n"
        assert result.stderr == ""


def test_minimal_config_passes(tmp_path):
    path = write_config(tmp_path, VALID_HEAD)
    result = run_h2front("-c", str(path), "--check")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: configuration OK\n"
