"""Thin tasks of the registry: an id in, one service call."""

from celery import shared_task

from llmops.tasks import JOB_TASK_OPTIONS


@shared_task(name="registry.import_base", **JOB_TASK_OPTIONS)
def import_base(self, job_id: int) -> str:
    from registry_app.base_imports import base_import_run

    return base_import_run(job_id=job_id, task_id=self.request.id, hostname=self.request.hostname).status


@shared_task(name="registry.export", **JOB_TASK_OPTIONS)
def export(self, job_id: int) -> str:
    from registry_app.services.exports import export_run

    return export_run(job_id=job_id, task_id=self.request.id, hostname=self.request.hostname).status
