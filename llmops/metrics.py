"""Prometheus metrics that are read at scrape time: jobs by type and status, queue depth per queue."""

import logging

import redis
from django.conf import settings
from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from llmops.jobs import JobStatus, broker_lists, job_models

log = logging.getLogger(__name__)
QUEUES = ("cpu", "gpu")


def queue_depths(client: redis.Redis) -> dict[str, int]:
    """Messages waiting per queue, summed over its priority lists."""
    lists = {queue: broker_lists(queue) for queue in QUEUES}
    with client.pipeline(transaction=False) as pipe:
        for names in lists.values():
            for name in names:
                pipe.llen(name)
        lengths = iter(pipe.execute())
    return {queue: sum(next(lengths) for _ in names) for queue, names in lists.items()}


def broker_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)


class JobsCollector:
    """Reads the database and the broker only when scraped (describe() keeps registration free of queries)."""

    def describe(self):
        yield GaugeMetricFamily("llmops_jobs", "Jobs by type and status", labels=["type", "status"])
        yield GaugeMetricFamily("llmops_queue_depth", "Messages waiting per Celery queue", labels=["queue"])

    def collect(self):
        jobs = GaugeMetricFamily("llmops_jobs", "Jobs by type and status", labels=["type", "status"])
        try:
            for model in job_models():
                counts = dict(model.objects.values_list("status").annotate(n=Count("pk")).order_by())
                for status in JobStatus.values:
                    jobs.add_metric([model.job_type(), status], counts.get(status, 0))
        except Exception:
            log.warning("metrics: could not count jobs", exc_info=True)
        yield jobs
        depth = GaugeMetricFamily("llmops_queue_depth", "Messages waiting per Celery queue", labels=["queue"])
        try:
            for queue, n in queue_depths(broker_client()).items():
                depth.add_metric([queue], n)
        except Exception:
            log.warning("metrics: could not read queue depth", exc_info=True)
        yield depth
