"""Thin tasks: an id in, one service call. Every job task acks late and is re-queued if its worker dies."""

from celery import shared_task

JOB_TASK_OPTIONS = {"bind": True, "acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(name="llmops.diagnostic", **JOB_TASK_OPTIONS)
def run_diagnostic(self, job_id: int) -> str:
    from llmops.services import diagnostic_run

    return diagnostic_run(job_id=job_id, task_id=self.request.id, hostname=self.request.hostname).status


@shared_task(name="llmops.reap_stale_jobs", ignore_result=True)
def reap_stale_jobs() -> dict:
    from llmops.jobs import jobs_reap_stale

    report = jobs_reap_stale()
    return {"requeued": report.requeued, "ended": report.ended, "resent": report.resent}
