#!/usr/bin/env python3
"""Dispatch latency: how long an idle worker takes to start a job once its row is committed.

    .venv/bin/python bench/dispatch.py [--quick] [--jobs N]

Starts its own PostgreSQL, Redis and one Celery worker (-c 1, -Q cpu,gpu); sends one at a time, interleaved,
each to an idle worker:
- ours: diagnostic_job_create(seconds=0); latency = the row's started_at (the worker's claim) minus the moment
  the submitting transaction committed (its first on_commit callback, before the send);
- direct (breakdown): a queued row inserted by hand, its message sent with app.send_task: the claim, no service;
- reference: app.send_task of a bare task whose first statement notes time.time() in Redis: Celery alone.
The worker imports this module (--include bench.dispatch) for the bare task. Ends with one JSON line.
"""

import argparse
import contextlib
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from celery import shared_task

ROOT = Path(__file__).resolve().parent.parent
TARGET_P50_MS = 50
WARMUP = 5


@shared_task(name="bench.dispatch.stamp", acks_late=True, ignore_result=True)
def stamp(key: str) -> None:
    """The reference task: note when its body started, nothing else."""
    started = time.time()
    _redis().set(key, repr(started), ex=3600)


@functools.cache
def _redis():
    import redis

    return redis.Redis.from_url(os.environ["REDIS_URL"])


def wait_for(predicate, what: str, timeout: float = 30.0, interval: float = 0.002):
    """Poll with a deadline; returns the predicate's first truthy value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def setup_django() -> None:
    import django
    from django.core.management import call_command

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings")
    django.setup()
    call_command("migrate", verbosity=0)


@contextlib.contextmanager
def celery_worker(log_path: Path):
    from llmops.celery import app

    name = f"bench-{uuid.uuid4().hex[:8]}@localhost"
    args = [sys.executable, "-m", "celery", "-A", "llmops", "worker", "-Q", "cpu,gpu", "-c", "1", "-n", name]
    args += ["--without-gossip", "--without-mingle", "--include", "bench.dispatch", "--loglevel", "INFO"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}")
        return bool(app.control.ping(destination=[name], timeout=0.5))

    try:
        wait_for(answers, "the worker to answer a ping", timeout=60)
        yield name
    except Exception:
        print(log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
        raise
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def started_at_ms(job_id: int) -> float:
    """Waits for the job to succeed and returns its started_at (epoch ms)."""
    from llmops.models import DiagnosticJob

    def finished():
        row = DiagnosticJob.objects.filter(pk=job_id).values("status", "started_at", "error").first()
        if row["status"] in ("failed", "cancelled"):
            raise RuntimeError(f"job {job_id} {row['status']}: {row['error']}")
        return row if row["status"] == "succeeded" else None

    return wait_for(finished, f"job {job_id} to succeed")["started_at"].timestamp() * 1000


def run_ours() -> float:
    from django.db import transaction

    from llmops.services import diagnostic_job_create

    committed = []
    with transaction.atomic():
        transaction.on_commit(lambda: committed.append(time.time() * 1000))  # runs first, before the send
        job = diagnostic_job_create(user=None, seconds=0)
    return started_at_ms(job.pk) - committed[0]


def run_direct() -> float:
    from django.utils import timezone

    from llmops.celery import app
    from llmops.models import DiagnosticJob

    task_id = uuid.uuid4().hex
    job = DiagnosticJob.objects.create(seconds=0, celery_task_id=task_id, queued_at=timezone.now())
    sent = time.time() * 1000
    app.send_task(DiagnosticJob.TASK, args=[job.pk], task_id=task_id, queue="cpu")
    return started_at_ms(job.pk) - sent


def run_reference() -> float:
    from llmops.celery import app

    key = f"bench:dispatch:{uuid.uuid4().hex}"
    sent = time.time() * 1000
    app.send_task("bench.dispatch.stamp", args=[key], queue="cpu")
    return float(wait_for(lambda: _redis().get(key), "the bare task to start")) * 1000 - sent


def wait_idle() -> None:
    """The worker has acknowledged every message it took (acks_late): nothing in kombu's unacked hash."""
    wait_for(lambda: _redis().hlen("unacked") == 0, "the worker to ack")


def measure(jobs: int) -> dict[str, list[float]]:
    runs = {"ours": run_ours, "direct": run_direct, "reference": run_reference}
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(WARMUP + jobs):
        for name, run in runs.items():  # interleaved, so drift hits every series alike
            latency = run()
            wait_idle()
            if i >= WARMUP:
                samples[name].append(latency)
    return samples


def summary(values: list[float]) -> dict[str, float]:
    p50, p95 = statistics.median(values), statistics.quantiles(values, n=100, method="inclusive")[94]
    return {"p50_ms": round(p50, 3), "p95_ms": round(p95, 3), "max_ms": round(max(values), 3)}


def report(samples: dict[str, list[float]]) -> dict:
    ours, direct, ref = (summary(samples[name]) for name in ("ours", "direct", "reference"))
    for label, s in (
        ("ours (service)", ours),
        ("direct row + send_task", direct),
        ("reference (bare task)", ref),
    ):
        print(f"{label:24} p50 {s['p50_ms']:7.2f} ms   p95 {s['p95_ms']:7.2f} ms   max {s['max_ms']:7.2f} ms")
    return {
        "bench": "dispatch",
        "jobs": len(samples["ours"]),
        **ours,
        "reference": "bare celery task",
        "reference_p50_ms": ref["p50_ms"],
        "reference_p95_ms": ref["p95_ms"],
        "ratio": round(ours["p50_ms"] / ref["p50_ms"], 3),
        "direct_p50_ms": direct["p50_ms"],
        "target_p50_ms": TARGET_P50_MS,
        "machine": f"{len(os.sched_getaffinity(0))} cores, python {sys.version_info.major}.{sys.version_info.minor}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 jobs, for a smoke run")
    parser.add_argument("--jobs", type=int, help="jobs per series (default 200)")
    args = parser.parse_args()
    jobs = args.jobs or (20 if args.quick else 200)
    sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop what we started, as on Ctrl-C
    from services import postgres_server, redis_server

    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-dispatch-")))
        os.environ["DATABASE_URL"] = stack.enter_context(postgres_server())
        os.environ["REDIS_URL"] = stack.enter_context(redis_server(scratch / "redis"))
        setup_django()
        stack.enter_context(celery_worker(scratch / "worker.log"))
        print(f"dispatch: {jobs} jobs per series after {WARMUP} warm-up, each to an idle worker", flush=True)
        samples = measure(jobs)
    print(json.dumps(report(samples)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
