"""Portal rows as OpenAI objects (file, fine_tuning.job, model, checkpoint) and the ids that name them."""

from datetime import datetime

from django.utils import timezone

from datasets_app.models import DatasetVersion, SourceFile, VersionStatus
from llmops.jobs import JobStatus
from registry_app.models import ModelVersion
from training_app.engine_config import train_config_module
from training_app.models import FineTuneJob
from training_app.openai_api.errors import not_found

FILE_STATUS = {
    VersionStatus.BUILDING: "uploaded",
    VersionStatus.READY: "processed",
    VersionStatus.FAILED: "error",
}
JOB_STATUS = {JobStatus.QUEUED: "queued", JobStatus.RUNNING: "running", JobStatus.SUCCEEDED: "succeeded",
              JobStatus.FAILED: "failed", JobStatus.CANCELLED: "cancelled"}  # fmt: skip
FILE_PREFIX, JOB_PREFIX = "file-", "ftjob-"


def unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment else None


def number_of(object_id: str, prefix: str) -> int | None:
    """The row id in ``<prefix><n>``, or None for anything else."""
    rest = object_id.removeprefix(prefix) if isinstance(object_id, str) else ""
    return int(rest) if object_id != rest and rest.isdigit() and len(rest) < 19 else None


def file_version(file_id: str, param: str = "file_id") -> DatasetVersion:
    """The dataset version behind ``file-<n>``; 404 naming ``param`` when there is none."""
    pk = number_of(file_id, FILE_PREFIX)
    version = DatasetVersion.objects.select_related("dataset").filter(pk=pk).first() if pk else None
    if version is None:
        raise not_found("file", str(file_id), param)
    return version


def fine_tune_job(job_id: str) -> FineTuneJob:
    pk = number_of(job_id, JOB_PREFIX)
    query = FineTuneJob.objects.select_related("base__model", "result_version__model")
    job = query.filter(pk=pk).first() if pk else None
    if job is None:
        raise not_found("fine-tuning job", str(job_id), "fine_tuning_job_id")
    return job


def _source_file(version: DatasetVersion) -> SourceFile | None:
    files = ((version.recipe or {}).get("sources") or {}).get("files") or []
    return SourceFile.objects.filter(pk=files[0]).first() if len(files) == 1 else None


def file_object(version: DatasetVersion) -> dict:
    """A version built from one uploaded file shows that file; another version shows its JSONL export."""
    source = _source_file(version)
    if source is not None:
        filename, size = source.name, source.size_bytes
    else:
        filename, size = (
            f"{version.dataset.name} {version.label}.jsonl",
            (version.exports or {}).get("jsonl", {}).get("bytes", 0),
        )
    return {"id": f"{FILE_PREFIX}{version.pk}", "object": "file", "bytes": size or 0,
            "created_at": unix(version.created_at), "filename": filename, "purpose": "fine-tune",
            "status": FILE_STATUS.get(version.status, "error"), "status_details": version.error or None,
            "expires_at": None}  # fmt: skip


def model_id(version: ModelVersion | None) -> str | None:
    return f"{version.model.name}:v{version.number}" if version else None


def model_object(version: ModelVersion) -> dict:
    owner = version.created_by.get_username() if version.created_by else "portal"
    return {
        "id": model_id(version),
        "object": "model",
        "created": unix(version.created_at),
        "owned_by": owner,
    }


def default_lr() -> float:
    return train_config_module().TrainConfig.__dataclass_fields__["lr"].default


def hyperparameters(config: dict) -> dict:
    lr = config.get("lr") or default_lr()
    return {"n_epochs": config.get("epochs", 1), "batch_size": config.get("batch_size"),
            "learning_rate_multiplier": round(lr / default_lr(), 10)}  # fmt: skip


def _estimated_finish(job: FineTuneJob) -> int | None:
    if job.status != JobStatus.RUNNING or not job.started_at or not 0 < job.progress < 1:
        return None
    elapsed = (timezone.now() - job.started_at).total_seconds()
    return unix(job.started_at) + int(elapsed / job.progress)


def job_object(job: FineTuneJob) -> dict:
    config, terminal = job.config or {}, job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
    hyper = hyperparameters(config)
    error = (
        {"code": "training_failed", "message": job.error, "param": None} if job.status == "failed" else None
    )
    return {
        "id": f"{JOB_PREFIX}{job.pk}", "object": "fine_tuning.job", "model": model_id(job.base),
        "created_at": unix(job.created_at), "finished_at": unix(job.finished_at),
        "fine_tuned_model": model_id(job.result_version), "organization_id": "portal", "result_files": [],
        "status": JOB_STATUS.get(job.status, job.status), "training_file": f"{FILE_PREFIX}{job.dataset_version_id}",
        "validation_file": None, "hyperparameters": hyper, "trained_tokens": job.tokens_seen if terminal else None,
        "error": error, "seed": config.get("seed", 42), "estimated_finish": _estimated_finish(job),
        "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}}, "integrations": [],
        "metadata": None, "user_provided_suffix": None,
        "portal": {"job": job.pk, "method": job.method, "progress": job.progress,
                   "progress_message": job.progress_message},
    }  # fmt: skip


def checkpoint_object(job: FineTuneJob, row: dict, metrics: dict) -> dict:
    step = row["step"]
    model = model_id(job.result_version) or f"{model_id(job.base)}:{JOB_PREFIX}{job.pk}"
    return {"id": f"ftckpt-{job.pk}-{step}", "object": "fine_tuning.job.checkpoint",
            "created_at": unix(row.get("created_at")), "fine_tuned_model_checkpoint": f"{model}:ckpt-step-{step}",
            "fine_tuning_job_id": f"{JOB_PREFIX}{job.pk}", "step_number": step,
            "metrics": {"step": step, **metrics}}  # fmt: skip
