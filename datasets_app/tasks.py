"""Thin tasks of the error notebook: an id in, one service call."""

from celery import shared_task

from llmops.tasks import JOB_TASK_OPTIONS


@shared_task(name="datasets.import_cases", **JOB_TASK_OPTIONS)
def import_cases(self, job_id: int) -> str:
    from datasets_app.services.imports import import_run

    return import_run(job_id=job_id, task_id=self.request.id, hostname=self.request.hostname).status


@shared_task(name="datasets.find_near_duplicates", **JOB_TASK_OPTIONS)
def find_near_duplicates(self, job_id: int) -> str:
    from datasets_app.services.dedup import dedup_run

    return dedup_run(job_id=job_id, task_id=self.request.id, hostname=self.request.hostname).status


@shared_task(name="datasets.build_version", **JOB_TASK_OPTIONS)
def build_version(self, job_id: int) -> str:
    from datasets_app.services.build import build_run

    return build_run(job_id=job_id, task_id=self.request.id, hostname=self.request.hostname).status
