"""A real Celery worker process runs diagnostic jobs against the test PostgreSQL and Redis."""

import json

import pytest

from llmops.celery import app
from llmops.jobs import JobStatus, jobs_reap_stale
from llmops.models import DiagnosticJob
from llmops.services import diagnostic_job_cancel, diagnostic_job_create
from tests.conftest import wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def status_of(job_id: int) -> str:
    return DiagnosticJob.objects.values_list("status", flat=True).get(pk=job_id)


def fetch(job_id: int) -> DiagnosticJob:
    return DiagnosticJob.objects.get(pk=job_id)


def test_a_job_goes_from_queued_to_running_with_heartbeats_to_succeeded(start_worker):
    worker = start_worker()
    job = diagnostic_job_create(user=None, seconds=2)
    wait_until(lambda: status_of(job.pk) == "running", what="the job to start")
    first_beat = fetch(job.pk).heartbeat_at
    wait_until(lambda: fetch(job.pk).heartbeat_at > first_beat, what="a later heartbeat")
    wait_until(lambda: 0 < fetch(job.pk).progress < 1, what="progress between 0 and 1")
    wait_until(lambda: status_of(job.pk) == "succeeded", what="the job to succeed")
    done = fetch(job.pk)
    assert done.worker_hostname == worker.name and done.attempts == 1 and done.progress == 1.0
    assert (done.finished_at - done.started_at).total_seconds() >= 2  # it really slept


def test_a_running_job_stops_within_seconds_of_a_cancel(start_worker):
    start_worker()
    job = diagnostic_job_create(user=None, seconds=120)
    wait_until(lambda: status_of(job.pk) == "running", what="the job to start")
    diagnostic_job_cancel(job_id=job.pk)
    wait_until(lambda: status_of(job.pk) == "cancelled", timeout=15, what="the job to stop")
    assert fetch(job.pk).progress < 0.15  # a 120 s job, stopped early, not run to its end


def test_a_failing_job_is_recorded_as_failed_with_its_error(start_worker):
    start_worker()
    job = diagnostic_job_create(user=None, seconds=0.2, fail_at_end=True)
    wait_until(lambda: status_of(job.pk) == "failed", what="the job to fail")
    assert "diagnostic failure requested" in fetch(job.pk).error


def test_a_killed_worker_loses_no_job_the_reaper_requeues_and_another_worker_finishes(start_worker, settings):
    settings.JOB_STALE_AFTER_SECONDS = 3
    first = start_worker()
    job = diagnostic_job_create(user=None, seconds=30)
    wait_until(lambda: status_of(job.pk) == "running", what="the job to start")
    first.kill()
    assert status_of(job.pk) == "running"  # the row does not know yet
    report = wait_until(
        lambda: jobs_reap_stale().requeued, timeout=15, interval=0.5, what="the reaper to act"
    )
    assert report == [str(fetch(job.pk))]
    DiagnosticJob.objects.filter(pk=job.pk).update(seconds=0.5)  # the rerun need not sleep 30 s again
    second = start_worker()
    wait_until(lambda: status_of(job.pk) == "succeeded", what="the re-queued job to finish")
    done = fetch(job.pk)
    assert done.attempts == 2 and done.worker_hostname == second.name


def test_a_message_for_a_missing_job_is_dropped_and_the_worker_keeps_working(start_worker):
    worker = start_worker()
    app.send_task("llmops.diagnostic", args=[424242], queue="cpu")
    job = diagnostic_job_create(user=None, seconds=0)
    wait_until(lambda: status_of(job.pk) == "succeeded", what="the next real job")
    assert "no such job; message dropped" in worker.log()


def test_worker_logs_are_json_lines_carrying_the_job_id(start_worker):
    worker = start_worker()
    job = diagnostic_job_create(user=None, seconds=0)
    wait_until(lambda: status_of(job.pk) == JobStatus.SUCCEEDED, what="the job to succeed")
    wait_until(lambda: "job succeeded" in worker.log(), timeout=5, what="the log line")
    lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line["job_id"] == f"diagnosticjob:{job.pk}"]
    assert {"job started", "job succeeded"} <= {line["message"] for line in mine}
