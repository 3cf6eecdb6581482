"""The shared job lifecycle: an abstract Job model, enqueue-on-commit, claim/heartbeat/finish, cancel and the reaper.

queued -> running -> succeeded | failed | cancelled; running -> queued only when the reaper re-queues a job whose
worker went silent. The database row is the source of truth: Celery carries only the id, and a delivery whose task
id is not the row's current one (a stale re-delivery) is dropped.
"""

import logging
import socket
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import ClassVar

from django.apps import apps
from django.conf import settings
from django.db import close_old_connections, connection, models, transaction
from django.utils import timezone

from llmops.observability import job_id_var

log = logging.getLogger(__name__)


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
TRANSITIONS: dict[str, frozenset[str]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.QUEUED}
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


class IllegalTransition(Exception):
    pass


class JobFailed(Exception):
    """Raised by running code for an expected failure: the job fails with this message, without a traceback."""


class JobCancelled(Exception):
    """Raised inside running code when the job was cancelled (or taken away) between two steps."""


class Job(models.Model):
    """Base of every job table. Subclasses set TASK (the Celery task name) and QUEUE ("cpu" or "gpu")."""

    TASK: ClassVar[str] = ""
    QUEUE: ClassVar[str] = "cpu"

    status = models.CharField(
        max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker_hostname = models.CharField(max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    progress = models.FloatField(default=0.0)
    progress_message = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True, db_index=True)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.job_type()} #{self.pk} ({self.status})"

    @classmethod
    def job_type(cls) -> str:
        return cls._meta.model_name

    def queue_name(self) -> str:
        return self.QUEUE

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def _move(self, to: str, **fields) -> None:
        if to not in TRANSITIONS[self.status]:
            raise IllegalTransition(f"{self.job_type()} #{self.pk}: cannot go from {self.status} to {to}")
        self.status = to
        for name, value in fields.items():
            setattr(self, name, value)
        self.save(update_fields=["status", *fields])

    def mark_requeued(self, task_id: str) -> None:
        self._move(
            JobStatus.QUEUED,
            celery_task_id=task_id,
            queued_at=timezone.now(),
            worker_hostname="",
            heartbeat_at=None,
        )

    def mark_running(self, hostname: str) -> None:
        now = timezone.now()
        self._move(
            JobStatus.RUNNING,
            started_at=now,
            heartbeat_at=now,
            worker_hostname=hostname,
            attempts=self.attempts + 1,
        )

    def mark_succeeded(self, message: str = "") -> None:
        self._move(
            JobStatus.SUCCEEDED,
            finished_at=timezone.now(),
            progress=1.0,
            progress_message=message[:255] or "done",
        )

    def mark_failed(self, error: str) -> None:
        self._move(JobStatus.FAILED, finished_at=timezone.now(), error=error)

    def mark_cancelled(self) -> None:
        self._move(JobStatus.CANCELLED, finished_at=timezone.now(), cancel_requested=True)

    def take_over(self, hostname: str) -> None:
        """A re-delivered job whose previous worker went silent: this worker continues it as a new attempt."""
        if self.status != JobStatus.RUNNING:
            raise IllegalTransition(f"{self} is not running; nothing to take over")
        self.worker_hostname, self.heartbeat_at, self.attempts = hostname, timezone.now(), self.attempts + 1
        self.save(update_fields=["worker_hostname", "heartbeat_at", "attempts"])


def job_models() -> list[type[Job]]:
    return [m for m in apps.get_models() if issubclass(m, Job)]


# --- enqueue and cancel (services) ----------------------------------------------------------------------------


# A job's priority (higher runs sooner) as the broker's: Redis serves its priority lists lowest number first.
PRIORITY_HIGHEST, PRIORITY_LOWEST = 5, -4


def broker_lists(queue: str) -> list[str]:
    """The Redis lists a queue's messages wait in: kombu keeps priority 0 in the queue's own list and each other
    step (settings' priority_steps, 0–9) in "<queue><sep><step>"."""
    from kombu.transport.redis import Channel

    return [queue, *(f"{queue}{Channel.sep}{step}" for step in range(1, 10))]


def broker_priority(job: Job) -> int:
    """5 (urgent) -> 0 ... 0 (normal) -> 5 ... -4 (lowest) -> 9; values beyond the ends clamp to them."""
    priority = getattr(job, "priority", 0) or 0
    return PRIORITY_HIGHEST - max(PRIORITY_LOWEST, min(PRIORITY_HIGHEST, priority))


def _send(task_name: str, job_id: int, task_id: str, queue: str, priority: int) -> None:
    from llmops.celery import app

    app.send_task(task_name, args=[job_id], task_id=task_id, queue=queue, priority=priority)


def _send_on_commit(job: Job) -> None:
    """Send after commit; if the broker is down the row stays queued and the reaper sends it again later."""
    task, pk, task_id, queue, priority = (
        job.TASK,
        job.pk,
        job.celery_task_id,
        job.queue_name(),
        broker_priority(job),
    )
    transaction.on_commit(lambda: _send(task, pk, task_id, queue, priority), robust=True)


def job_enqueue(*, job: Job) -> Job:
    """Give the job a task id now; send the message only once the surrounding transaction commits."""
    if job.status != JobStatus.QUEUED:
        raise IllegalTransition(f"{job} is not queued")
    job.celery_task_id = uuid.uuid4().hex
    job.queued_at = timezone.now()
    job.save(update_fields=["celery_task_id", "queued_at"])
    _send_on_commit(job)
    return job


@transaction.atomic
def job_cancel(*, model: type[Job], job_id: int) -> Job:
    """Queued: cancelled at once and the message revoked. Running: flag set; the running code stops within seconds."""
    job = model.objects.select_for_update().get(pk=job_id)
    if job.status == JobStatus.QUEUED:
        job.mark_cancelled()
        task_id = job.celery_task_id
        transaction.on_commit(lambda: _revoke(task_id))
    elif job.status == JobStatus.RUNNING:
        job.cancel_requested = True
        job.save(update_fields=["cancel_requested"])
    else:
        raise IllegalTransition(f"{job} has already finished")
    return job


def _revoke(task_id: str) -> None:
    from llmops.celery import app

    try:
        app.control.revoke(task_id)
    except Exception:  # the row is already cancelled; a missed revoke only means the worker drops it itself
        log.warning("could not broadcast revoke for task %s", task_id, exc_info=True)


# --- running (called by thin tasks on the worker) -------------------------------------------------------------


class Reporter:
    """The callback handed to running code: ``report(step=..., progress=..., message=..., **metrics)``.

    It answers "stop" once the job was cancelled or taken away; the heartbeat thread keeps the row fresh.
    """

    def __init__(self, on_metrics: Callable[[int | None, dict], None] | None = None):
        self.progress: float | None = None
        self.message: str | None = None
        self.stop_event = threading.Event()
        self.on_metrics = on_metrics

    def __call__(
        self, step: int | None = None, progress: float | None = None, message: str | None = None, **metrics
    ) -> str | None:
        if progress is not None:
            self.progress = min(max(float(progress), 0.0), 1.0)
        if message is not None:
            self.message = str(message)[:255]
        if metrics and self.on_metrics:
            self.on_metrics(step, metrics)
        return "stop" if self.stop_event.is_set() else None

    def check(self) -> None:
        if self.stop_event.is_set():
            raise JobCancelled("cancel requested")


class Heartbeat(threading.Thread):
    """Every JOB_HEARTBEAT_SECONDS: refresh heartbeat_at and progress, and read the cancel flag."""

    def __init__(self, job: Job, reporter: Reporter, interval: float):
        super().__init__(name=f"heartbeat-{job.pk}", daemon=True)
        self.model, self.job_id, self.task_id = type(job), job.pk, job.celery_task_id
        self.reporter, self.interval, self.done = reporter, interval, threading.Event()

    def run(self) -> None:
        try:
            while not self.done.wait(self.interval):
                self.beat()
        finally:
            connection.close()

    def beat(self) -> None:
        fields = {"heartbeat_at": timezone.now()}
        if self.reporter.progress is not None:
            fields["progress"] = self.reporter.progress
        if self.reporter.message is not None:
            fields["progress_message"] = self.reporter.message
        mine = self.model.objects.filter(
            pk=self.job_id, status=JobStatus.RUNNING, celery_task_id=self.task_id
        )
        try:
            if not mine.update(**fields) or mine.filter(cancel_requested=True).exists():
                self.reporter.stop_event.set()
        except Exception:
            log.warning("heartbeat failed; will retry", exc_info=True)
            close_old_connections()


@dataclass
class RunOutcome:
    status: str
    detail: str = ""


def job_run(
    *,
    model: type[Job],
    job_id: int,
    task_id: str,
    hostname: str | None,
    work: Callable[[Job, Reporter], str | None],
) -> RunOutcome:
    """Claim the job for this delivery, run ``work`` with a heartbeat, and record how it ended."""
    token = job_id_var.set(f"{model.job_type()}:{job_id}")
    try:
        hostname = hostname or socket.gethostname()
        job = _claim(model, job_id, task_id, hostname)
        if job is None:
            return RunOutcome("dropped")
        reporter = Reporter()
        heart = Heartbeat(job, reporter, settings.JOB_HEARTBEAT_SECONDS)
        heart.start()
        try:
            message = work(job, reporter) or ""
        except JobCancelled:
            return _finish(model, job_id, task_id, JobStatus.CANCELLED)
        except JobFailed as exc:
            return _finish(model, job_id, task_id, JobStatus.FAILED, str(exc))
        except Exception as exc:
            log.exception("job failed")
            detail = f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc(limit=20)}"
            return _finish(model, job_id, task_id, JobStatus.FAILED, detail)
        finally:
            heart.done.set()
            heart.join(timeout=10)
        return _finish(model, job_id, task_id, JobStatus.SUCCEEDED, message)
    finally:
        job_id_var.reset(token)


@transaction.atomic
def _claim(model: type[Job], job_id: int, task_id: str, hostname: str) -> Job | None:
    job = model.objects.select_for_update().filter(pk=job_id).first()
    if job is None:
        log.warning("task for %s #%s: no such job; message dropped", model.job_type(), job_id)
        return None
    if job.celery_task_id != task_id:
        log.warning("stale delivery %s for %s (current task %s); dropped", task_id, job, job.celery_task_id)
        return None
    if job.status == JobStatus.QUEUED:
        job.mark_running(hostname)
        log.info("job started", extra={"worker": hostname, "attempt": job.attempts})
        return job
    if job.status == JobStatus.RUNNING and _is_stale(job):
        if job.attempts >= settings.JOB_MAX_ATTEMPTS:
            job.mark_failed(f"worker lost {job.attempts} times (last on {job.worker_hostname}); gave up")
            return None
        job.take_over(hostname)
        log.warning("re-delivered job taken over", extra={"worker": hostname, "attempt": job.attempts})
        return job
    log.info("delivery for %s ignored: status %s", job, job.status)
    return None


def _is_stale(job: Job, now=None) -> bool:
    seen = job.heartbeat_at or job.started_at
    limit = timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)
    return seen is None or (now or timezone.now()) - seen > limit


@transaction.atomic
def _finish(model: type[Job], job_id: int, task_id: str, status: str, detail: str = "") -> RunOutcome:
    job = model.objects.select_for_update().get(pk=job_id)
    if job.status != JobStatus.RUNNING or job.celery_task_id != task_id:
        log.warning("result for %s discarded: the job was taken away (now %s)", job, job.status)
        return RunOutcome("discarded")
    if status == JobStatus.SUCCEEDED and job.cancel_requested:
        status = JobStatus.CANCELLED
    if status == JobStatus.SUCCEEDED:
        job.mark_succeeded(detail)
    elif status == JobStatus.CANCELLED:
        job.mark_cancelled()
    else:
        job.mark_failed(detail)
    log.info("job %s", job.status)
    return RunOutcome(job.status, detail)


# --- the reaper (beat-scheduled) ------------------------------------------------------------------------------


@dataclass
class ReapReport:
    requeued: list[str]
    ended: list[str]
    resent: list[str] = field(default_factory=list)


def jobs_reap_stale() -> ReapReport:
    """Running jobs whose heartbeat is older than JOB_STALE_AFTER_SECONDS: re-queue, or fail after max attempts.
    Jobs queued for longer than JOB_RESEND_QUEUED_AFTER_SECONDS: send their message again (a lost send, a flushed
    broker); the same task id makes a second delivery harmless, since the claim drops it."""
    report = ReapReport(requeued=[], ended=[])
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)
    resend_cutoff = now - timedelta(seconds=settings.JOB_RESEND_QUEUED_AFTER_SECONDS)
    for model in job_models():
        stale = model.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).values_list(
            "pk", flat=True
        )
        for job_id in list(stale):
            _reap_one(model, job_id, report)
        _resend_waiting(model, resend_cutoff, report)
    return report


@transaction.atomic
def _resend_waiting(model: type[Job], cutoff, report: ReapReport) -> None:
    waiting = model.objects.select_for_update(skip_locked=True).filter(
        status=JobStatus.QUEUED, queued_at__lt=cutoff
    )
    for job in waiting.exclude(celery_task_id="").exclude(celery_task_id__startswith="inline-"):
        job.queued_at = timezone.now()
        job.save(update_fields=["queued_at"])
        _send_on_commit(job)
        report.resent.append(str(job))


@transaction.atomic
def _reap_one(model: type[Job], job_id: int, report: ReapReport) -> None:
    job = (
        model.objects.select_for_update(skip_locked=True).filter(pk=job_id, status=JobStatus.RUNNING).first()
    )
    if job is None or not _is_stale(job):
        return
    if job.cancel_requested:
        job.mark_cancelled()
        report.ended.append(str(job))
    elif job.attempts < settings.JOB_MAX_ATTEMPTS:
        job.mark_requeued(uuid.uuid4().hex)
        _send_on_commit(job)
        report.requeued.append(str(job))
    else:
        job.mark_failed(
            f"worker lost: no heartbeat from {job.worker_hostname} for over "
            f"{settings.JOB_STALE_AFTER_SECONDS:.0f} s after {job.attempts} attempts"
        )
        report.ended.append(str(job))
    log.warning("reaped stale %s", job)
