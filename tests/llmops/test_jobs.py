"""The shared job lifecycle, without a worker process: transitions, enqueue on commit, cancel, claim, reaper."""

import json
import logging
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from llmops.jobs import IllegalTransition, JobStatus, Reporter, broker_lists, jobs_reap_stale
from llmops.models import DiagnosticJob
from llmops.services import diagnostic_job_cancel, diagnostic_job_create, diagnostic_run
from llmops.tasks import run_diagnostic


def queued_messages(broker, queue="cpu") -> list[dict]:
    """Messages waiting in ``queue``, from all its priority lists (kombu names them queue, queue<sep>1 … 9)."""
    lists = broker_lists(queue)
    return [json.loads(raw) for name in lists for raw in broker.lrange(name, 0, -1)]


def make_running(job: DiagnosticJob, *, heartbeat_age: float = 0.0, attempts: int = 1) -> DiagnosticJob:
    job.mark_running("old-worker@host")
    DiagnosticJob.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age), attempts=attempts
    )
    job.refresh_from_db()
    return job


@pytest.mark.django_db
class TestTransitions:
    def test_a_finished_job_cannot_start_again(self):
        job = DiagnosticJob.objects.create(seconds=0)
        job.mark_running("w")
        job.mark_succeeded()
        with pytest.raises(IllegalTransition, match="succeeded to running"):
            job.mark_running("w")

    def test_a_queued_job_cannot_succeed_without_running(self):
        job = DiagnosticJob.objects.create(seconds=0)
        with pytest.raises(IllegalTransition):
            job.mark_succeeded()
        job.refresh_from_db()
        assert job.status == JobStatus.QUEUED

    def test_a_cancelled_job_cannot_be_requeued(self):
        job = DiagnosticJob.objects.create(seconds=0)
        job.mark_cancelled()
        with pytest.raises(IllegalTransition):
            job.mark_requeued("new-task")

    def test_starting_counts_an_attempt_and_records_the_worker(self):
        job = DiagnosticJob.objects.create(seconds=0)
        job.mark_running("gpu@node-1")
        job.refresh_from_db()
        assert (job.status, job.attempts, job.worker_hostname) == ("running", 1, "gpu@node-1")
        assert job.started_at and job.heartbeat_at


@pytest.mark.django_db(transaction=True)
class TestEnqueueOnCommit:
    def test_a_rolled_back_transaction_enqueues_nothing(self, broker):
        with pytest.raises(RuntimeError), transaction.atomic():
            diagnostic_job_create(user=None, seconds=1)
            raise RuntimeError("the view failed after creating the job")
        assert DiagnosticJob.objects.count() == 0
        assert queued_messages(broker) == []

    def test_a_committed_job_sends_exactly_its_id_to_its_queue(self, broker):
        job = diagnostic_job_create(user=None, seconds=1, queue="gpu")
        [message] = queued_messages(broker, "gpu")
        assert message["headers"]["id"] == job.celery_task_id
        assert message["headers"]["task"] == "llmops.diagnostic"
        assert message["headers"]["argsrepr"] == f"[{job.pk}]"
        assert queued_messages(broker, "cpu") == []

    def test_nothing_is_sent_until_the_outer_transaction_commits(self, broker):
        with transaction.atomic():
            diagnostic_job_create(user=None, seconds=1)
            assert queued_messages(broker) == []
        assert len(queued_messages(broker)) == 1

    def test_invalid_settings_are_refused_before_anything_is_written(self, broker):
        from django.core.exceptions import ValidationError

        with pytest.raises(ValidationError) as err:
            diagnostic_job_create(user=None, seconds=-1, queue="tpu")
        assert set(err.value.message_dict) == {"seconds", "queue"}
        assert DiagnosticJob.objects.count() == 0 and queued_messages(broker) == []


@pytest.mark.django_db(transaction=True)
class TestCancel:
    def test_cancelling_a_queued_job_ends_it_at_once(self, broker):
        job = diagnostic_job_create(user=None, seconds=5)
        job = diagnostic_job_cancel(job_id=job.pk)
        assert job.status == JobStatus.CANCELLED and job.finished_at

    def test_cancelling_a_running_job_sets_the_flag_the_running_code_reads(self, broker):
        job = make_running(diagnostic_job_create(user=None, seconds=5))
        job = diagnostic_job_cancel(job_id=job.pk)
        assert job.status == JobStatus.RUNNING and job.cancel_requested

    def test_a_finished_job_cannot_be_cancelled(self, broker):
        job = DiagnosticJob.objects.create(seconds=0, status=JobStatus.SUCCEEDED)
        with pytest.raises(IllegalTransition, match="already finished"):
            diagnostic_job_cancel(job_id=job.pk)

    def test_a_queued_job_that_was_cancelled_is_dropped_when_its_message_arrives(self, broker):
        job = diagnostic_job_create(user=None, seconds=5)
        diagnostic_job_cancel(job_id=job.pk)
        outcome = diagnostic_run(job_id=job.pk, task_id=job.celery_task_id, hostname="w")
        assert outcome.status == "dropped"
        job.refresh_from_db()
        assert job.status == JobStatus.CANCELLED and job.started_at is None


@pytest.mark.django_db(transaction=True)
class TestRunningInProcess:
    def test_a_zero_length_job_runs_to_success(self, broker):
        job = diagnostic_job_create(user=None, seconds=0)
        outcome = diagnostic_run(job_id=job.pk, task_id=job.celery_task_id, hostname="w@host")
        job.refresh_from_db()
        assert outcome.status == job.status == JobStatus.SUCCEEDED
        assert (job.progress, job.attempts, job.worker_hostname) == (1.0, 1, "w@host")

    def test_an_error_in_the_running_code_fails_the_job_with_its_message(self, broker):
        job = diagnostic_job_create(user=None, seconds=0.05, fail_at_end=True)
        diagnostic_run(job_id=job.pk, task_id=job.celery_task_id, hostname="w")
        job.refresh_from_db()
        assert job.status == JobStatus.FAILED
        assert "RuntimeError: diagnostic failure requested" in job.error

    def test_a_task_for_a_job_that_does_not_exist_is_logged_and_dropped(self, caplog):
        with caplog.at_level(logging.WARNING):
            result = run_diagnostic.apply(args=[987654321])
        assert result.successful() and result.result == "dropped"
        assert "no such job; message dropped" in caplog.text

    def test_a_stale_delivery_of_an_old_message_is_dropped(self, broker):
        job = diagnostic_job_create(user=None, seconds=0)
        outcome = diagnostic_run(job_id=job.pk, task_id="an-older-task-id", hostname="w")
        job.refresh_from_db()
        assert outcome.status == "dropped" and job.status == JobStatus.QUEUED

    def test_a_redelivery_while_the_first_worker_still_beats_is_dropped(self, broker):
        job = make_running(diagnostic_job_create(user=None, seconds=0), heartbeat_age=0)
        outcome = diagnostic_run(job_id=job.pk, task_id=job.celery_task_id, hostname="second")
        job.refresh_from_db()
        assert outcome.status == "dropped" and job.worker_hostname == "old-worker@host"

    def test_a_redelivery_after_the_worker_went_silent_is_taken_over(self, broker, settings):
        settings.JOB_STALE_AFTER_SECONDS = 5
        job = make_running(diagnostic_job_create(user=None, seconds=0), heartbeat_age=60)
        outcome = diagnostic_run(job_id=job.pk, task_id=job.celery_task_id, hostname="second")
        job.refresh_from_db()
        assert outcome.status == JobStatus.SUCCEEDED
        assert (job.worker_hostname, job.attempts) == ("second", 2)

    def test_the_reporter_answers_stop_once_asked(self):
        report = Reporter()
        assert report(step=1, progress=0.5) is None
        report.stop_event.set()
        assert report(step=2) == "stop"
        assert report.progress == 0.5


@pytest.mark.django_db(transaction=True)
class TestReaper:
    def test_a_silent_running_job_is_requeued_with_a_new_task_id(self, broker, settings):
        settings.JOB_STALE_AFTER_SECONDS = 5
        job = make_running(diagnostic_job_create(user=None, seconds=1), heartbeat_age=60)
        broker.delete(*broker_lists("cpu"))
        old_task = job.celery_task_id
        report = jobs_reap_stale()
        job.refresh_from_db()
        assert report.requeued == [str(job)]
        assert job.status == JobStatus.QUEUED and job.celery_task_id != old_task
        [message] = queued_messages(broker)
        assert message["headers"]["id"] == job.celery_task_id

    def test_a_job_that_lost_its_worker_too_often_is_failed_with_the_reason(self, broker, settings):
        settings.JOB_STALE_AFTER_SECONDS, settings.JOB_MAX_ATTEMPTS = 5, 3
        job = make_running(diagnostic_job_create(user=None, seconds=1), heartbeat_age=60, attempts=3)
        jobs_reap_stale()
        job.refresh_from_db()
        assert job.status == JobStatus.FAILED
        assert "worker lost" in job.error and "after 3 attempts" in job.error

    def test_a_job_with_a_fresh_heartbeat_is_left_alone(self, broker, settings):
        settings.JOB_STALE_AFTER_SECONDS = 60
        job = make_running(diagnostic_job_create(user=None, seconds=1), heartbeat_age=1)
        report = jobs_reap_stale()
        job.refresh_from_db()
        assert report.requeued == [] and job.status == JobStatus.RUNNING

    def test_the_reaper_is_scheduled_by_beat(self, settings):
        entry = settings.CELERY_BEAT_SCHEDULE["reap-stale-jobs"]
        assert entry["task"] == "llmops.reap_stale_jobs" and entry["schedule"] <= 60


@pytest.mark.django_db(transaction=True)
class TestLostMessages:
    def test_a_broker_outage_at_submit_time_leaves_the_job_queued_not_an_error(
        self, broker, monkeypatch, caplog
    ):
        def broker_down(*args):
            raise ConnectionError("broker unreachable")

        monkeypatch.setattr("llmops.jobs._send", broker_down)
        with caplog.at_level(logging.ERROR):
            job = diagnostic_job_create(user=None, seconds=0)
        job.refresh_from_db()
        assert job.status == JobStatus.QUEUED and queued_messages(broker) == []
        assert "broker unreachable" in caplog.text

    def test_the_reaper_sends_a_long_waiting_job_again_with_the_same_task_id(
        self, broker, settings, monkeypatch
    ):
        monkeypatch.setattr("llmops.jobs._send", lambda *args: None)  # the first send is lost
        job = diagnostic_job_create(user=None, seconds=0)
        monkeypatch.undo()
        settings.JOB_RESEND_QUEUED_AFTER_SECONDS = 60
        DiagnosticJob.objects.filter(pk=job.pk).update(queued_at=timezone.now() - timedelta(minutes=5))
        report = jobs_reap_stale()
        [message] = queued_messages(broker)
        assert report.resent == [str(job)] and message["headers"]["id"] == job.celery_task_id
        assert jobs_reap_stale().resent == []  # not again until it has waited that long once more

    def test_a_second_delivery_of_a_resent_job_is_dropped(self, broker):
        job = diagnostic_job_create(user=None, seconds=0)
        assert diagnostic_run(job_id=job.pk, task_id=job.celery_task_id, hostname="w").status == "succeeded"
        assert diagnostic_run(job_id=job.pk, task_id=job.celery_task_id, hostname="w").status == "dropped"
