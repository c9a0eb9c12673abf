"""pytest glue for the integration tests: makes `harness` importable, stops every process a test
started (even when it fails), and offers the common backends as fixtures."""

import atexit
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


@atexit.register
def _stop_everything():
    """Last resort for processes of wider-scoped fixtures, or when a run is interrupted."""
    for proc in harness.running_procs():
        proc.stop()


@pytest.fixture(autouse=True)
def _stop_processes_started_by_the_test():
    """Stop what the test and its function-scoped fixtures started, whatever the outcome.

    pytest sets up wider-scoped fixtures before function-scoped ones and autouse fixtures first
    among those, so what runs before this snapshot belongs to module or session fixtures and
    is left alone."""
    before = harness.running_procs()
    first_new = len(harness.STARTED)
    yield
    for proc in harness.running_procs() - before:
        proc.stop()
    # a sanitizer report or a crash in h2front fails the test that provoked it, whatever it asserted
    for proc in harness.STARTED[first_new:]:
        if proc.name == 'h2front':
            problems = harness.h2front_health_problems(proc)
            if problems:
                pytest.fail('%s:\n%s' % ('; '.join(problems), proc.log()[-6000:]), pytrace=False)


@pytest.fixture
def testserver(tmp_path):
    """A fresh tests/backend/testserver.py with default options."""
    return harness.start_testserver(tmp_path)


@pytest.fixture
def dashboard(tmp_path):
    """A fresh demo dashboard in active mode, logins without the simulated bcrypt delay."""
    return harness.start_dashboard(tmp_path, login_delay=0)


@pytest.fixture
def cert(tmp_path):
    """(cert_path, key_path) of a self-signed certificate for localhost / 127.0.0.1."""
    return harness.make_cert(tmp_path)


@pytest.fixture
def h2front(tmp_path):
    """A function starting h2front from YAML text: h2front(yaml_text, ports=None, ...)."""
    def start(yaml_text, **options):
        return harness.start_h2front(tmp_path, yaml_text, **options)
    return start
