"""The Celery app. Workers: ``celery -A llmops worker -Q cpu`` (and ``-Q gpu -c 1`` on GPU nodes)."""

import os

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings")

app = Celery("llmops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("cpu"), Queue("gpu"))
app.autodiscover_tasks()


@setup_logging.connect
def use_django_logging(**kwargs) -> None:
    """Workers log exactly like the web process: JSON lines with request id and job id."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@task_prerun.connect
@task_postrun.connect
def recycle_database_connections(**kwargs) -> None:
    """As Django does around a request: drop connections that are broken or older than CONN_MAX_AGE."""
    from django.db import close_old_connections

    close_old_connections()
