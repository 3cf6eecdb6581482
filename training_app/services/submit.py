"""Submit a fine-tune: turn a base version, a dataset version and hyperparameters into a validated engine config,
then create the job and queue it on commit. Every problem is reported at once, keyed by field."""

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from datasets_app.models import DatasetVersion, VersionStatus
from llmops.jobs import job_enqueue
from registry_app.models import ModelVersion, VersionFormat
from training_app.engine_config import train_config_module
from training_app.models import FineTuneJob

# dataset task type -> engine task
TASKS = {"chat": "chat", "instruction": "instruction", "classification": "classification"}
# set by the portal from the base and the dataset version, never by the user
RESERVED = ("base_model_path", "output_dir", "train_file", "validation_file", "task", "method")


def run_dir(job_id: int) -> Path:
    return Path(settings.ARTIFACT_ROOT) / "runs" / f"fine-tune-{job_id}"


def _data_files(version: DatasetVersion, problems: dict) -> tuple[str | None, str | None]:
    if version.status != VersionStatus.READY:
        problems.setdefault("dataset_version", []).append(f"{version} is {version.status}, not ready")
        return None, None
    if not (version.counts or {}).get("train"):
        problems.setdefault("dataset_version", []).append(f"{version} has no train rows")
        return None, None
    folder = Path((version.exports or {}).get("jsonl", {}).get("path", ""))
    train = folder / "train.jsonl"
    if not version.exports.get("jsonl") or not train.is_file():
        problems.setdefault("dataset_version", []).append(f"{version} has no JSONL export at {train}")
        return None, None
    validation = folder / "validation.jsonl"
    has_validation = (version.counts or {}).get("validation") and validation.is_file()
    return str(train), str(validation) if has_validation else None


def fine_tune_config(
    *,
    base: ModelVersion,
    dataset_version: DatasetVersion,
    method: str,
    hyperparameters: dict,
    output_dir: str,
) -> dict:
    """The engine's TrainConfig as JSON; ValidationError listing every problem (hyperparameters by name)."""
    engine = train_config_module()  # validation only: the web process never imports torch
    ConfigError, TrainConfig = engine.ConfigError, engine.TrainConfig  # noqa: N806

    problems: dict[str, list[str]] = {}
    if not isinstance(hyperparameters, dict):
        raise ValidationError({"hyperparameters": ["must be an object of setting -> value"]})
    for key in RESERVED:
        if key in hyperparameters:
            problems.setdefault(key, []).append("is set by the portal, not in hyperparameters")
    if base.format != VersionFormat.HF:
        problems.setdefault("base", []).append(f"{base} is an adapter; fine-tune a full model version")
    task = TASKS.get(dataset_version.dataset.task_type)
    if task is None:
        problems.setdefault("dataset_version", []).append(
            f"{dataset_version.dataset.task_type} datasets cannot be fine-tuned yet"
        )
    train_file, validation_file = _data_files(dataset_version, problems)
    data = {
        **{k: v for k, v in hyperparameters.items() if k not in RESERVED},
        "base_model_path": base.artifact_uri,
        "output_dir": output_dir,
        "train_file": train_file or "missing",
        "validation_file": validation_file,
        "task": task or "chat",
        "method": method,
    }
    try:
        config = TrainConfig.from_dict(data)
        config.validate()
    except ConfigError as e:
        for key, messages in e.problems.items():
            problems.setdefault(key, []).extend(messages)
    if problems:
        raise ValidationError(problems)
    return config.to_dict()


def fine_tune_submit(
    *,
    user,
    base: ModelVersion,
    dataset_version: DatasetVersion,
    method: str,
    hyperparameters: dict,
    gpus: int = 1,
    priority: int = 0,
) -> FineTuneJob:
    """Validate everything, then create the job and queue it on the gpu queue once the transaction commits."""
    problems = {}
    if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 1:
        problems["gpus"] = [f"must be a whole number of at least 1 (got {gpus!r})"]
    try:
        config = fine_tune_config(base=base, dataset_version=dataset_version, method=method,
                                  hyperparameters=hyperparameters, output_dir="pending")  # fmt: skip
    except ValidationError as e:
        problems.update(e.message_dict)
    if problems:
        raise ValidationError(problems)
    with transaction.atomic():
        job = FineTuneJob.objects.create(base=base, dataset_version=dataset_version, method=method, config=config,
                                         gpus=gpus, priority=priority, created_by=user)  # fmt: skip
        job.output_dir = str(run_dir(job.pk))
        job.config = {**config, "output_dir": job.output_dir}
        job.save(update_fields=["output_dir", "config"])
        job_enqueue(job=job)
    return job
