"""Thin tasks of evaluation: an id in, one service call."""

from celery import shared_task

from llmops.tasks import JOB_TASK_OPTIONS


@shared_task(name="evaluation.run", **JOB_TASK_OPTIONS)
def run(self, job_id: int) -> str:
    from evaluation_app.services.run import eval_run_execute

    return eval_run_execute(run_id=job_id, task_id=self.request.id, hostname=self.request.hostname).status
