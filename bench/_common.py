"""Shared set-up for benchmarks: a throwaway PostgreSQL (and Redis), Django configured against them."""

import contextlib
import os
import platform
import resource
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


@contextlib.contextmanager
def django_on_postgres(*, redis: bool = False) -> Iterator[None]:
    """Start the services, point the settings at them, migrate; stop everything on exit."""
    from services import postgres_server, redis_server

    with contextlib.ExitStack() as stack:
        os.environ["DATABASE_URL"] = stack.enter_context(postgres_server())
        if redis:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="llmops-bench-")))
            os.environ["REDIS_URL"] = stack.enter_context(redis_server(scratch / "redis"))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings")
        os.environ.setdefault(
            "ARTIFACT_ROOT", stack.enter_context(tempfile.TemporaryDirectory(prefix="llmops-art-"))
        )
        os.environ.setdefault("LOG_LEVEL", "WARNING")
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        try:
            yield
        finally:
            from django.db import connections

            connections.close_all()


def machine() -> str:
    return f"{os.cpu_count()} cores, python {platform.python_version()}"


def rusage_cpu(who: int = resource.RUSAGE_SELF) -> float:
    """User + system CPU seconds of this process (or, with RUSAGE_CHILDREN, of its ended children)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def process_tree(pid: int) -> list[int]:
    """`pid` and its live descendants (from /proc/<pid>/task/*/children)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids += [p for child in task.read_text().split() for p in process_tree(int(child))]
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process (all its threads) has used, from /proc/<pid>/stat; 0 once gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()  # fields 3.. of proc(5)
    except OSError:
        return 0.0
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
