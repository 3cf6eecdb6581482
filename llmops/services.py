"""Writes of the portal core: diagnostic jobs and API tokens."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from llmops.jobs import JobCancelled, Reporter, RunOutcome, job_cancel, job_enqueue, job_run
from llmops.models import ApiToken, DiagnosticJob, hash_token


@transaction.atomic
def diagnostic_job_create(
    *, user: AbstractBaseUser | None, seconds: float, queue: str = "cpu", fail_at_end: bool = False
) -> DiagnosticJob:
    job = DiagnosticJob(created_by=user, seconds=seconds, queue=queue, fail_at_end=fail_at_end)
    job.full_clean(exclude=["created_by"])
    job.save()
    return job_enqueue(job=job)


def diagnostic_job_cancel(*, job_id: int) -> DiagnosticJob:
    return job_cancel(model=DiagnosticJob, job_id=job_id)


def diagnostic_run(*, job_id: int, task_id: str, hostname: str | None) -> RunOutcome:
    def work(job: DiagnosticJob, report: Reporter) -> str:
        from workers.diagnostic import Stopped, sleep_steps

        try:
            return sleep_steps(job.seconds, report, fail_at_end=job.fail_at_end)
        except Stopped as exc:
            raise JobCancelled(str(exc)) from exc

    return job_run(model=DiagnosticJob, job_id=job_id, task_id=task_id, hostname=hostname, work=work)


@transaction.atomic
def api_token_create(*, user: AbstractBaseUser, name: str) -> tuple[ApiToken, str]:
    """Returns the row and the raw token, which is shown once and never stored."""
    raw = ApiToken.generate()
    token = ApiToken.objects.create(user=user, name=name.strip(), prefix=raw[:14], key_hash=hash_token(raw))
    return token, raw


def api_token_revoke(*, user: AbstractBaseUser, token_id: int) -> ApiToken:
    token = ApiToken.objects.get(pk=token_id, user=user)
    token.revoke()
    return token
