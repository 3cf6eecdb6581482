"""A fine-tune's events, newest first as OpenAI lists them: finished, one per logged step (train loss from
MetricPoint), started, created. Ids encode their place, so ``after`` is a cursor without a table of its own."""

from django.db.models import Q

from training_app.models import FineTuneJob, MetricPoint
from training_app.openai_api.errors import invalid
from training_app.openai_api.objects import model_id, unix

FINISHED = {"succeeded": ("info", "The job has successfully completed"), "failed": ("error", "The job failed"),
            "cancelled": ("info", "The job was cancelled")}  # fmt: skip


def _event(job: FineTuneJob, key: str, at, level: str, message: str, kind="message", data=None) -> dict:
    return {"id": f"ftevent-{job.pk}-{key}", "object": "fine_tuning.job.event", "created_at": unix(at),
            "level": level, "message": message, "type": kind, "data": data or {}}  # fmt: skip


def _head(job: FineTuneJob) -> list[dict]:
    if job.status not in FINISHED or not job.finished_at:
        return []
    level, message = FINISHED[job.status]
    if job.status == "failed" and job.error:
        message = f"{message}: {job.error[:2000]}"
    elif job.result_version_id:
        message = f"{message}; new fine-tuned model: {model_id(job.result_version)}"
    return [_event(job, "finished", job.finished_at, level, message)]


def _tail(job: FineTuneJob) -> list[dict]:
    started = (
        [_event(job, "started", job.started_at, "info", "Fine-tuning job started")] if job.started_at else []
    )
    return [
        *started,
        _event(job, "created", job.created_at, "info", f"Created fine-tuning job: ftjob-{job.pk}"),
    ]


def _steps(job: FineTuneJob, before: MetricPoint | None, limit: int) -> list[dict]:
    total = (MetricPoint.objects.filter(job=job, name="total_steps").order_by("-step", "-id")
             .values_list("value", flat=True).first())  # fmt: skip
    points = MetricPoint.objects.filter(job=job, name="train_loss").order_by("-step", "-id")
    if before is not None:  # a resumed run may log a step twice: the point's id breaks the tie
        points = points.filter(Q(step__lt=before.step) | Q(step=before.step, id__lt=before.pk))
    events = []
    for pk, step, value, at in points.values_list("pk", "step", "value", "at")[:limit]:
        of = f"/{int(total)}" if total else ""
        data = {"step": step, "train_loss": value, **({"total_steps": int(total)} if total else {})}
        events.append(_event(job, f"step-{step}-{pk}", at, "info", f"Step {step}{of}: training loss={value:.4f}",
                             "metrics", data))  # fmt: skip
    return events


def job_events(job: FineTuneJob, after: str | None, limit: int) -> tuple[list[dict], bool]:
    """Up to ``limit`` events after the event id ``after`` (None: from the newest), and whether more follow."""
    head, tail, want = _head(job), _tail(job), limit + 1
    prefix = f"ftevent-{job.pk}-"
    key = after.removeprefix(prefix) if after else None
    if after and (key == after or not _known(key)):
        raise invalid([("after", f"{after!r} is not an event of ftjob-{job.pk}")])
    if key is None:
        events = head + _steps(job, None, want)
    elif key == "finished":
        events = _steps(job, None, want)
    elif key.startswith("step-"):
        events = _steps(job, _point(job, key), want)
    else:
        events = []
    if len(events) < want:
        if key in (None, "finished") or key.startswith("step-"):
            events += tail
        elif key == "started":
            events += tail[-1:]
    return events[:limit], len(events) > limit


def _known(key: str) -> bool:
    return key in ("finished", "started", "created") or _point_id(key) is not None


def _point_id(key: str) -> int | None:
    """The MetricPoint id in ``step-<step>-<id>``."""
    parts = key.split("-")
    ok = len(parts) == 3 and parts[0] == "step" and all(p.isdigit() and len(p) < 19 for p in parts[1:])
    return int(parts[2]) if ok else None


def _point(job: FineTuneJob, key: str) -> MetricPoint:
    point = MetricPoint.objects.filter(job=job, name="train_loss", pk=_point_id(key)).first()
    if point is None:
        raise invalid([("after", f"ftevent-{job.pk}-{key} is not an event of ftjob-{job.pk}")])
    return point
