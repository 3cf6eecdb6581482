"""scripts/services.py: what `make test` and the benchmarks use to start and stop PostgreSQL and Redis."""

import importlib.util
import subprocess
import sys
import time

import psutil

from tests.conftest import ROOT

PROBE = (
    "import os, psycopg, redis;"
    "print(psycopg.connect(os.environ['DATABASE_URL']).execute('select 1').fetchone()[0]);"
    "print(redis.Redis.from_url(os.environ['REDIS_URL']).ping());"
    "print(os.getppid());"
    "raise SystemExit(3)"
)


def servers_on(ports: set[int]) -> list[str]:
    """Command lines of any postgres or redis-server process still serving one of these ports."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] in {"postgres", "redis-server"} and any(f"{port}" in cmdline for port in ports):
            found.append(cmdline)
    return found


def test_services_start_for_the_command_and_stop_by_pid_even_when_it_fails():
    proc = subprocess.Popen(
        [
            sys.executable,
            "scripts/services.py",
            "run",
            "--postgres",
            "--redis",
            "--",
            sys.executable,
            "-c",
            PROBE,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err  # the command's own failure comes back as the exit status
    lines = out.splitlines()
    assert lines[-3:-1] == ["1", "True"]
    postgres_url = next(line for line in lines if line.startswith("services: PostgreSQL at "))
    redis_url = next(line for line in lines if line.startswith("services: Redis at "))
    port_pg = int(postgres_url.rsplit(":", 1)[1].split("/")[0])
    port_redis = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    listening = {c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    assert port_pg not in listening and port_redis not in listening
    assert servers_on({port_pg, port_redis}) == []


def test_stopping_the_portal_also_kills_what_an_exited_leader_left_in_its_group(tmp_path):
    """scripts/run.py's stop_all: the leader exits on SIGTERM, its child ignores SIGTERM; nothing may survive."""
    spec = importlib.util.spec_from_file_location("portal_run", ROOT / "scripts" / "run.py")
    portal = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(portal)
    pid_file = tmp_path / "child.pid"
    child = (  # writes its pid only once it ignores SIGTERM
        "import os, pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid())); time.sleep(300)"
    )
    leader = (
        f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(300)"
    )
    proc = portal.spawn([sys.executable, "-c", leader], env={"PATH": "/usr/bin:/bin"})
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    orphan = psutil.Process(int(pid_file.read_text()))
    portal.stop_all([proc])
    assert proc.returncode is not None
    orphan.wait(timeout=10)  # raises psutil.TimeoutExpired if it survived
