"""Thin tasks of training: an id in, one service call."""

from celery import shared_task

from llmops.tasks import JOB_TASK_OPTIONS


@shared_task(name="training.fine_tune", **JOB_TASK_OPTIONS)
def fine_tune(self, job_id: int) -> str:
    from training_app.services.run import fine_tune_run

    return fine_tune_run(job_id=job_id, task_id=self.request.id, hostname=self.request.hostname).status


@shared_task(name="training.advance_stalled_studies", ignore_result=True)
def advance_stalled_studies() -> list[int]:
    """Beat-scheduled: a study whose last trial was ended by the reaper (not by its own run) moves on."""
    from training_app.services.study import studies_advance_stalled

    return studies_advance_stalled()


@shared_task(name="training.compress", **JOB_TASK_OPTIONS)
def compress(self, job_id: int) -> str:
    from training_app.services.compress_run import compression_run

    return compression_run(job_id=job_id, task_id=self.request.id, hostname=self.request.hostname).status
