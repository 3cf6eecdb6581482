"""Reads for the job pages and the API: metric series, downsampled for charts."""

import numpy as np
from django.db.models import Count, Min

from training_app.downsample import lttb
from training_app.models import FineTuneJob, MetricPoint

MAX_CHART_POINTS = 2000


def metric_names(job: FineTuneJob) -> list[str]:
    return sorted(set(MetricPoint.objects.filter(job=job).values_list("name", flat=True).distinct()))


def metric_series(
    job: FineTuneJob, names: list[str], max_points: int = MAX_CHART_POINTS
) -> dict[str, dict[str, list]]:
    """{name: {"x": steps, "y": values}} ordered by step, at most ``max_points`` (≤ 2000) points per series."""
    max_points = max(3, min(int(max_points), MAX_CHART_POINTS))
    series = {}
    for name in names:
        rows = (
            MetricPoint.objects.filter(job=job, name=name).order_by("step", "id").values_list("step", "value")
        )
        data = np.array(list(rows), dtype=np.float64).reshape(-1, 2)
        x, y = lttb(data[:, 0], data[:, 1], max_points)
        series[name] = {"x": [int(v) for v in x], "y": [float(v) for v in y]}
    return series


def metric_summary(job: FineTuneJob) -> dict[str, dict]:
    """Per metric: the last value and its step, the minimum, and how many points there are."""
    summary = {}
    for name in metric_names(job):
        points = MetricPoint.objects.filter(job=job, name=name)
        last = points.order_by("-step", "-id").values_list("step", "value").first()
        agg = points.aggregate(low=Min("value"), n=Count("id"))
        summary[name] = {"last_step": last[0], "last": last[1], "min": agg["low"], "points": agg["n"]}
    return summary
