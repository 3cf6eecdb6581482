"""Loaded before anything else (``-p tests.xdist_env`` in pytest's addopts): under pytest-xdist (``make test`` runs
the suite in two processes) each test process gets its own Redis database and its own var/ folder, so one process's
``flushdb``, queued jobs and artifacts never reach the other's. PostgreSQL needs nothing: pytest-django already
gives each process its own test database (``test_llmops_gw0`` ...).

It must run before pytest-django reads the settings, which happens before any conftest.py is imported; a plugin
named with ``-p`` is imported earlier still. Celery workers that tests start inherit the changed environment, so
they use the same database and folder. Without xdist (``-n 0``, or a single test file run by hand) it does nothing.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... in xdist's worker processes


def _isolate(worker: str) -> None:
    number = int(worker.removeprefix("gw")) + 1  # database 0 stays the one a run without xdist uses
    url = os.environ.get("REDIS_URL")
    if url:  # the database is the URL's path: redis://host:port/N
        os.environ["REDIS_URL"] = urlunsplit(urlsplit(url)._replace(path=f"/{number}"))
    var = Path(os.environ.get("VAR_DIR") or ROOT / "var")
    os.environ["VAR_DIR"] = str(var / f"xdist-{worker}")


if WORKER:
    _isolate(WORKER)
