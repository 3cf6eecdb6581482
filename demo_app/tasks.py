"""Thin task of the demo: an id in, one service call."""

from celery import shared_task

from llmops.tasks import JOB_TASK_OPTIONS


@shared_task(name="demo.loop", **JOB_TASK_OPTIONS)
def loop(self, job_id: int) -> str:
    from demo_app.loop import demo_run_execute

    return demo_run_execute(run_id=job_id, task_id=self.request.id, hostname=self.request.hostname).status
