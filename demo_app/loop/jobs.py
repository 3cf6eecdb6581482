"""Waiting for the loop's jobs: each is executed here, in this process, through its own task function.

Every job the loop files (a dataset build, a fine-tune, two evaluation runs) is created by the portal's own services,
which also queue its Celery message on commit, exactly as a form or the API would. The loop then calls the job's
task function itself (``build_run``, ``fine_tune_run``, ``eval_run_execute``) with the row's task id. Why: the demo
must finish whether or not a worker is listening (``manage.py demo_loop`` on a fresh checkout), and when it runs as
a Celery task itself, waiting for jobs queued behind it on a one-slot worker would never end. Nothing runs twice:
the job's claim (``llmops.jobs.job_run``) lets exactly one delivery run it, so when a worker claimed the job first
the call here returns without running, and the loop polls the row until it ends (with a deadline).
"""

import time

from django.db import close_old_connections

from llmops.jobs import Job, JobFailed, JobStatus, Reporter

HOSTNAME = "demo loop (in-process)"
POLL_S = 1.0


def _runner(job: Job):
    from datasets_app.models import DatasetBuild
    from evaluation_app.models import EvalRun
    from training_app.models import FineTuneJob

    if isinstance(job, DatasetBuild):
        from datasets_app.services.build import build_run

        return lambda: build_run(job_id=job.pk, task_id=job.celery_task_id, hostname=HOSTNAME)
    if isinstance(job, FineTuneJob):
        from training_app.services import fine_tune_run

        return lambda: fine_tune_run(job_id=job.pk, task_id=job.celery_task_id, hostname=HOSTNAME)
    if isinstance(job, EvalRun):
        from evaluation_app.services.run import eval_run_execute

        return lambda: eval_run_execute(run_id=job.pk, task_id=job.celery_task_id, hostname=HOSTNAME)
    raise TypeError(f"the demo loop does not run {type(job).__name__} jobs")


def job_wait(job: Job, report: Reporter, *, deadline_s: float) -> Job:
    """Run ``job`` here unless a worker has it, then wait until it has ended; the job, refreshed."""
    job.refresh_from_db()
    if job.status == JobStatus.QUEUED:
        _runner(job)()
    started = time.monotonic()
    while True:
        job.refresh_from_db()
        if job.is_terminal:
            return job
        report.check()  # the demo run itself was cancelled
        if time.monotonic() - started > deadline_s:
            raise JobFailed(f"{job} did not end within {deadline_s:.0f} s")
        close_old_connections()
        time.sleep(POLL_S)
