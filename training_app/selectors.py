"""Reads for the job pages and the APIs: metric series downsampled for charts, a job's checkpoint folders."""

from datetime import UTC, datetime
from pathlib import Path

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


def job_checkpoints(job: FineTuneJob) -> list[dict]:
    """Complete checkpoint folders under the job's own output_dir (set by the portal), newest first:
    {name, step, size (bytes), created_at (the folder's modification time)}."""
    if not job.output_dir:
        return []
    root = Path(job.output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    rows = []
    for folder in root.iterdir():
        if not folder.is_dir() or not folder.name.startswith("step-") or folder.is_symlink():
            continue
        try:  # a running job removes its older checkpoints while we look
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
            created = datetime.fromtimestamp(folder.stat().st_mtime, tz=UTC)
        except FileNotFoundError:
            continue
        step = folder.name.removeprefix("step-").lstrip("0") or "0"
        rows.append({"name": folder.name, "step": int(step) if step.isdigit() else step, "size": size,
                     "created_at": created})  # fmt: skip
    return sorted(rows, key=lambda r: str(r["name"]), reverse=True)
