"""Reads of a study: its trials' validation losses, their values and states as the search sees them, the best
trial, and the leaderboard that the page and the API show."""

import math

from training_app.models import FineTuneJob, MetricPoint, Study
from training_app.study_search import TrialRecord, params_of

VAL_LOSS = "val_loss"  # the metric name the engine reports at each evaluation (workers/train/report.py)
STATE_ORDER = {"complete": 0, "pruned": 1, "running": 2, "fail": 3}


def val_points(study: Study) -> dict[int, dict[int, float]]:
    """{job id: {step: validation loss}} for every trial of the study, in one query."""
    points: dict[int, dict[int, float]] = {}
    rows = MetricPoint.objects.filter(job__study=study, name=VAL_LOSS).order_by("id")
    for job_id, step, value in rows.values_list("job_id", "step", "value"):
        points.setdefault(job_id, {})[step] = value
    return points


def trial_state(job: FineTuneJob) -> str:
    if job.pruned:
        return "pruned"
    if job.status == "succeeded":
        return "complete"
    return "fail" if job.is_terminal else "running"


def trial_value(job: FineTuneJob, points: dict[int, float]) -> float | None:
    """The trial's score (lower is better): the run's best validation loss, else the lowest one it reported."""
    result = job.result or {}
    for key in ("best_val_loss", "val_loss"):
        value = result.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            return float(value)
    return min(points.values()) if points else None


def trial_records(study: Study, trials: list[FineTuneJob], points: dict) -> list[TrialRecord]:
    return [
        TrialRecord(number=job.trial_number or 0, params=params_of(study.search_space, job.config or {}),
                    state=trial_state(job), value=trial_value(job, points.get(job.pk, {})),
                    intermediate=points.get(job.pk, {}))
        for job in trials
    ]  # fmt: skip


def best_of(trials: list[FineTuneJob], points: dict) -> FineTuneJob | None:
    scored = [(trial_value(t, points.get(t.pk, {})), t.trial_number or 0, t) for t in trials]
    done = [s for s in scored if trial_state(s[2]) == "complete" and s[0] is not None]
    return min(done, key=lambda s: s[:2])[2] if done else None


def study_trials(study: Study) -> list[FineTuneJob]:
    return list(study.trials.select_related("result_version__model").order_by("trial_number"))


def study_leaderboard(study: Study) -> list[dict]:
    """Trials ranked: completed by validation loss, then pruned, running and failed ones."""
    trials, points = study_trials(study), val_points(study)
    rows = []
    for job in trials:
        state = trial_state(job)
        rows.append({"job": job, "number": job.trial_number, "phase": job.phase, "state": state,
                     "status": "pruned" if job.pruned else job.status, "value": trial_value(job, points.get(job.pk, {})),
                     "params": params_of(study.search_space, job.config or {}), "tokens": job.tokens_seen,
                     "result_version": job.result_version, "is_best": job.pk == study.best_trial_id})  # fmt: skip
    for row in rows:  # for the page: 0.0012520653814999472 reads as 0.001252
        row["shown"] = [f"{v:.4g}" if isinstance(v, float) else v for v in row["params"].values()]
    rows.sort(key=lambda r: (STATE_ORDER[r["state"]], r["value"] is None, r["value"] or 0, r["number"] or 0))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows
