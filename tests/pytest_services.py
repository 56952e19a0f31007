"""pytest plugin (``-p tests.pytest_services``): the services the suite needs, before Django loads.

Runs ahead of pytest-django, because settings read ``REDIS_URL`` and ``ILIAD_HOME`` when imported:
- ``ILIAD_HOME`` → a fresh temporary directory (the SQLite test database and artifacts live there);
- ``REDIS_URL`` unset → start the embedded Redis-protocol server (the same code ``make run`` uses);
- ``ILIAD_BLOCK_MODULES`` → the test-only blocks, for this process and the worker processes.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    home = Path(tempfile.mkdtemp(prefix="iliad-test-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ["ILIAD_HOME"] = str(home)
    os.environ["ILIAD_BLOCK_MODULES"] = "tests.support.blocks"
    # The suite makes thousands of API requests from one address and user; tests of the limits set
    # their own rates.
    for rate in ("ILIAD_API_RATE_USER", "ILIAD_API_RATE_ANON", "ILIAD_API_RATE_TOKEN_FAILURES"):
        os.environ.setdefault(rate, "1000000/minute")
    if not os.environ.get("REDIS_URL"):
        from iliad_portal.embedded import start_redis

        server = start_redis(home / "redis")
        atexit.register(server.stop)
        os.environ["REDIS_URL"] = server.url
    yield
