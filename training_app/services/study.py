"""Hyperparameter studies: create (every problem at once), advance (submit the next trials up to the study's
parallelism whenever a trial ends: TPE for the coarse phase, then the grid around the best coarse trial), the
median-pruner decision asked by a running trial, and cancel. Trials are ordinary fine-tune jobs on the gpu queue."""

from dataclasses import fields

from django.core.exceptions import ValidationError
from django.db import transaction

from datasets_app.models import DatasetVersion
from llmops.jobs import TERMINAL, IllegalTransition, job_cancel
from registry_app.models import ModelVersion
from training_app.engine_config import train_config_module
from training_app.models import FineTuneJob, Study, StudyStatus
from training_app.services.submit import RESERVED, fine_tune_config, fine_tune_submit
from training_app.study_search import (
    TrialRecord,
    corners,
    fine_grid,
    next_coarse_params,
    params_of,
    should_prune,
    spec_problems,
)
from training_app.study_selectors import best_of, trial_records, val_points

LIMITS = {"coarse_trials": (1, 200), "fine_trials": (0, 200), "parallelism": (1, 32),
          "prune_startup_trials": (0, 100), "prune_warmup_steps": (0, 10**6)}  # fmt: skip


def _space_problems(space, fixed: dict) -> tuple[dict, dict]:
    """(problems keyed "search_space" or "search_space.<name>", the well-formed part of the space)."""
    if not isinstance(space, dict) or not space:
        return {"search_space": ["must be an object naming at least one setting to search"]}, {}
    known = {f.name: f.type for f in fields(train_config_module().TrainConfig)}
    problems, good = {}, {}
    for name, spec in space.items():
        if name not in known:
            found = ["is not a known setting"]
        elif name in RESERVED:
            found = ["is set by the portal, not searched"]
        elif isinstance(fixed, dict) and name in fixed:
            found = ["is also a fixed hyperparameter; search it or fix it, not both"]
        else:
            found = spec_problems(spec, known[name])
        if found:
            problems[f"search_space.{name}"] = found
        else:
            good[name] = spec
    return problems, good


def _config_problems(study: dict, space: dict) -> dict:
    """Run the engine's validation on the fixed settings with each end of every range (each choice)."""
    fixed = study["hyperparameters"] if isinstance(study["hyperparameters"], dict) else {}
    ends = corners(space)
    first = {name: values[0] for name, values in ends.items()}
    args = {k: study[k] for k in ("base", "dataset_version", "method")}
    problems: dict[str, list[str]] = {}

    def check(values: dict, only: str | None = None) -> dict | None:
        try:
            return fine_tune_config(**args, hyperparameters={**fixed, **values}, output_dir="pending")
        except ValidationError as e:
            for key, messages in e.message_dict.items():
                if only is None or key == only:
                    target = f"search_space.{key}" if key in space else key
                    kept = problems.setdefault(target, [])
                    kept.extend(m for m in messages if m not in kept)
            return None

    config = check(first)
    for name, values in ends.items():
        for value in values[1:]:
            check({**first, name: value}, only=name)
    no_split = not (getattr(study["dataset_version"], "counts", None) or {}).get("validation")
    if no_split or (config is not None and not config.get("validation_file")):
        problems.setdefault("dataset_version", []).append(
            "has no validation split; a study ranks its trials by validation loss"
        )
    return problems


def study_problems(**study) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if not isinstance(study.get("name"), str) or not study["name"].strip():
        problems["name"] = ["is required"]
    for key, (low, high) in LIMITS.items():
        value = study.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            problems[key] = [f"must be a whole number from {low} to {high} (got {value!r})"]
    space_problems, good = _space_problems(study["search_space"], study["hyperparameters"])
    problems.update(space_problems)
    for key, messages in _config_problems(study, good).items():
        problems.setdefault(key, []).extend(messages)
    return problems


def study_create(
    *,
    user,
    name: str,
    base: ModelVersion,
    dataset_version: DatasetVersion,
    method: str,
    hyperparameters: dict,
    search_space: dict,
    coarse_trials: int,
    fine_trials: int = 0,
    parallelism: int = 1,
    seed: int = 0,
    prune_startup_trials: int = 2,
    prune_warmup_steps: int = 0,
) -> Study:
    """Validate everything (ValidationError keyed by field, ranges as "search_space.<name>"), then create the
    study and queue its first trials once the transaction commits."""
    values = {k: v for k, v in locals().items() if k != "user"}
    if problems := study_problems(**values):
        raise ValidationError(problems)
    with transaction.atomic():
        study = Study.objects.create(created_by=user, **{**values, "name": name.strip()})
        study_advance(study_id=study.pk)
    study.refresh_from_db()
    return study


def _next_trial(study: Study, trials: list[FineTuneJob], points: dict) -> tuple[str, dict] | None:
    space = study.search_space
    coarse = [t for t in trials if t.phase == "coarse"]
    if len(coarse) < study.coarse_trials:
        records = trial_records(study, trials, points)
        return "coarse", next_coarse_params(
            space, records, seed=study.seed, coarse_trials=study.coarse_trials
        )
    if any(not t.is_terminal for t in coarse) or sum(t.phase == "fine" for t in trials) >= study.fine_trials:
        return None
    best = best_of(coarse, points)
    if best is None:
        return None
    done = [params_of(space, t.config) for t in trials]
    grid = fine_grid(space, params_of(space, best.config), done=done, budget=1)
    return ("fine", grid[0]) if grid else None


def _submit_trial(study: Study, number: int, phase: str, params: dict) -> FineTuneJob | None:
    try:
        job = fine_tune_submit(user=study.created_by, base=study.base, dataset_version=study.dataset_version,
                               method=study.method, hyperparameters={**study.hyperparameters, **params})  # fmt: skip
    except ValidationError as e:
        reasons = "; ".join(f"{k}: {m}" for k, ms in e.message_dict.items() for m in ms)
        study.finish(StudyStatus.FAILED, error=f"trial {number} ({phase}) could not be submitted: {reasons}")
        return None
    FineTuneJob.objects.filter(pk=job.pk).update(study=study, trial_number=number, phase=phase)
    job.study, job.trial_number, job.phase = study, number, phase
    return job


@transaction.atomic
def study_advance(*, study_id: int) -> Study:
    """Fill the study's free trial slots; end it once no trial runs and none is left to submit. Idempotent."""
    study = Study.objects.select_for_update().select_related("base", "dataset_version").get(pk=study_id)
    if not study.is_running:
        return study
    trials, points = list(study.trials.order_by("trial_number")), val_points(study)
    active = sum(not t.is_terminal for t in trials)
    while active < study.parallelism:
        plan = _next_trial(study, trials, points)
        if plan is None:
            break
        job = _submit_trial(study, len(trials), *plan)
        if job is None:
            return study
        trials.append(job)
        active += 1
    if active == 0:
        best = best_of(trials, points)
        if best is None:
            study.finish(StudyStatus.FAILED, error="no trial finished with a validation loss")
        else:
            study.finish(StudyStatus.SUCCEEDED, best=best)
    return study


def study_trial_finished(*, job_id: int) -> Study | None:
    """The hook run after a fine-tune ends: if it was a study's trial, the study moves on."""
    row = FineTuneJob.objects.filter(pk=job_id).values("study_id", "status").first()
    if not row or row["study_id"] is None or row["status"] not in TERMINAL:
        return None
    return study_advance(study_id=row["study_id"])


def studies_advance_stalled() -> list[int]:
    """For a periodic task: advance every running study that has no queued or running trial (a trial ended by the
    reaper rather than by its own run never called the hook). Returns the ids of the studies it advanced."""
    stalled = Study.objects.filter(status=StudyStatus.RUNNING).exclude(
        trials__status__in=("queued", "running")
    )
    ids = list(stalled.values_list("pk", flat=True))
    for study_id in ids:
        study_advance(study_id=study_id)
    return ids


@transaction.atomic
def study_cancel(*, study_id: int) -> Study:
    """Cancel the study and its queued or running trials; IllegalTransition once it has ended."""
    study = Study.objects.select_for_update().get(pk=study_id)
    if not study.is_running:
        raise IllegalTransition(f"{study} has already ended")
    for job_id in study.trials.exclude(status__in=TERMINAL).values_list("pk", flat=True):
        try:
            job_cancel(model=FineTuneJob, job_id=job_id)
        except IllegalTransition:  # it ended meanwhile
            continue
    study.finish(StudyStatus.CANCELLED)
    return study


def study_should_prune(*, job_id: int) -> bool:
    """Asked by a running trial after each validation: is its loss worse than the median of the completed
    trials at the same step (optuna's MedianPruner, rebuilt from the MetricPoints)?"""
    job = FineTuneJob.objects.select_related("study").get(pk=job_id)
    study = job.study
    if study is None or not study.is_running:
        return False
    points = val_points(study)
    others = [t for t in study.trials.all() if t.pk != job.pk]
    current = TrialRecord(number=job.trial_number or 0, params=params_of(study.search_space, job.config),
                          state="running", intermediate=points.get(job.pk, {}))  # fmt: skip
    return should_prune(study.search_space, trial_records(study, others, points), current,
                        startup_trials=study.prune_startup_trials, warmup_steps=study.prune_warmup_steps)  # fmt: skip
