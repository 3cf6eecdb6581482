"""Exports of a version for other serving stacks (issue 8 point 7): a merged Hugging Face folder, ONNX for
classifiers, a Triton Inference Server model repository (Python backend).

``export_submit`` checks what can be checked from the rows (the kind is known; ONNX only for a classifier; a
quantised version cannot be exported, since its int8/int4 weights cannot be turned back into an HF folder; an
adapter needs its base) and queues an ``ExportJob`` on the cpu queue once the transaction commits.
``export_run`` is what the ``registry.export`` task calls on the worker: the engine (workers.export) writes
``EXPORT_ROOT/<family>/v<N>/<kind>-<job id>/`` (through a ``.partial`` folder renamed at the end), then the
folder's sha256 manifest and size are recorded on the job. An engine refusal fails the job with its message.
"""

import re
import shutil
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from llmops.jobs import JobFailed, Reporter, RunOutcome, job_enqueue, job_run
from registry_app.models import ExportJob, ExportKind, ModelTask, ModelVersion, VersionFormat

QUANTISED = (
    "{version} is quantised: its int8/int4 weights cannot be merged back into a Hugging Face folder, ONNX or "
    "Triton export; export the version it was compressed from instead"
)
CAUSAL_ONNX = (
    "ONNX export is for classifiers only; {version} is a causal language model: export it as a merged Hugging "
    "Face folder or a Triton repository instead"
)


def export_problems(*, version: ModelVersion, kind: str) -> dict[str, list[str]]:
    """Every reason this version cannot be exported as ``kind``, keyed by field (empty when it can)."""
    problems: dict[str, list[str]] = {}
    if kind not in ExportKind.values:
        problems["kind"] = [f"must be one of {', '.join(ExportKind.values)} (got {kind!r})"]
    elif version.format == VersionFormat.QUANTIZED:
        problems["kind"] = [QUANTISED.format(version=version)]
    elif kind == ExportKind.ONNX and version.model.task != ModelTask.CLASSIFICATION:
        problems["kind"] = [CAUSAL_ONNX.format(version=version)]
    if version.format == VersionFormat.PEFT_ADAPTER and version.base_id is None:
        problems["version"] = [f"{version} is a PEFT adapter without a base version to merge it into"]
    return problems


def export_submit(*, user, version: ModelVersion, kind: str) -> ExportJob:
    """Check everything at once (ValidationError keyed by field), then queue the export on commit."""
    if problems := export_problems(version=version, kind=kind):
        raise ValidationError(problems)
    with transaction.atomic():
        job = ExportJob.objects.create(version=version, kind=kind, created_by=user)
        job_enqueue(job=job)
    return job


def safe_name(name: str) -> str:
    """A family name as one folder name: characters outside letters, digits and _ . - become _."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._-") or "model"


def export_folder(job: ExportJob) -> Path:
    version = job.version
    return (
        Path(settings.EXPORT_ROOT)
        / safe_name(version.model.name)
        / f"v{version.number}"
        / f"{job.kind}-{job.pk}"
    )


def export_run(*, job_id: int, task_id: str, hostname: str | None) -> RunOutcome:
    return job_run(model=ExportJob, job_id=job_id, task_id=task_id, hostname=hostname, work=_export)


def _export(job: ExportJob, report: Reporter) -> str:
    from datasets_app.pipeline.exports import folder_sha256
    from workers.export import ExportError

    job = ExportJob.objects.select_related("version__model", "version__base").get(pk=job.pk)
    version = job.version
    if problems := export_problems(version=version, kind=job.kind):
        raise JobFailed("; ".join(m for messages in problems.values() for m in messages))
    out = export_folder(job)
    shutil.rmtree(out, ignore_errors=True)  # this job's own folder, left by an attempt whose worker was lost
    out.parent.mkdir(parents=True, exist_ok=True)
    report(progress=0.05, message=f"exporting {version} as {job.get_kind_display()}")
    report.check()
    try:
        result = _engine(job, out)
    except ExportError as exc:
        raise JobFailed(str(exc)) from exc
    report(progress=0.9, message="hashing the exported files")
    digest = folder_sha256(out)
    ExportJob.objects.filter(pk=job.pk).update(
        result_uri=str(out), result_sha256=digest["sha256"], result_bytes=digest["bytes"]
    )
    return f"wrote {len(result.files)} files to {out}"


def _engine(job: ExportJob, out: Path):
    from workers.export.merged import export_merged

    version = job.version
    args = {"task": version.model.task, "fmt": version.format,
            "base_dir": version.base.artifact_uri if version.format == VersionFormat.PEFT_ADAPTER else None}  # fmt: skip
    if job.kind == ExportKind.ONNX:
        from workers.export.onnx import export_onnx

        return export_onnx(version.artifact_uri, out, **args)
    if job.kind == ExportKind.TRITON:
        from workers.export.triton import export_triton, model_name_for

        name = model_name_for(version.model.name, version.number)
        return export_triton(version.artifact_uri, out, model_name=name, **args)
    return export_merged(version.artifact_uri, out, **args)
