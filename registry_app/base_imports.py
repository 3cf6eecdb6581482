"""Base models registered from a folder on the portal's storage or from a Hugging Face hub id.

Submitting checks everything it can at once (name, task, the folder's place and contents, the hub id's shape) and
queues a `BaseImport` on the cpu queue; the worker downloads a hub model (safetensors, configs and tokenizer files
only — never pickled weights or code) into ARTIFACT_ROOT/base-models/hub/, then registers the folder as a new base
version. A hub id resolves only where the hub (settings.HF_ENDPOINT) is reachable; elsewhere the job fails saying
so, and the model can be downloaded on another machine and registered as a folder.
"""

import re
import shutil
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from llmops.jobs import JobFailed, Reporter, RunOutcome, job_enqueue, job_run
from registry_app.models import BaseImport, ImportSource, ModelTask, VersionFormat
from registry_app.services import base_model_ensure, model_folder_problems

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
REVISION = re.compile(r"^[\w./-]{1,100}$")
# what a model folder needs; pickled weights (*.bin, *.pt, *.pkl) and code (*.py) are never fetched
HUB_FILES = [
    "*.safetensors",
    "*.safetensors.index.json",
    "*.json",
    "*.txt",
    "*.model",
    "*.tiktoken",
    "*.jinja",
]


def import_roots() -> list[Path]:
    """Where a web or API user may point at a model or tokenizer folder (never any path on the server): the
    configured roots and the portal's own artifact store."""
    return [Path(root).resolve() for root in [*settings.MODEL_IMPORT_ROOTS, settings.ARTIFACT_ROOT]]


def outside_import_roots(folder: Path) -> str:
    """'' when ``folder`` (symlinks resolved) lies under an import root, else where it must lie."""
    roots = import_roots()
    if any(folder.resolve().is_relative_to(root) for root in roots):
        return ""
    return f"must lie under {' or '.join(str(r) for r in roots)}"


def _folder_problems(location: str) -> list[str]:
    folder = Path(location).expanduser()
    if not folder.is_absolute():
        return [f"{location}: give an absolute path"]
    if outside := outside_import_roots(folder):
        return [f"{location}: a model folder {outside}"]
    return model_folder_problems(folder.resolve(), VersionFormat.HF)


def _problems(name: str, task: str, source: str, location: str, revision: str) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if not name.strip():
        problems["name"] = ["is required"]
    if task not in ModelTask.values:
        problems["task"] = [f"must be one of {', '.join(ModelTask.values)} (got {task!r})"]
    if not location:
        problems["location"] = ["is required: a folder path or a hub id"]
    elif source == ImportSource.FOLDER:
        if found := _folder_problems(location):
            problems["location"] = found
    elif source == ImportSource.HUB:
        if not HUB_ID.match(location):
            problems["location"] = [f"{location!r} is not a hub id like owner/name"]
        if revision and not REVISION.match(revision):
            problems["revision"] = [f"{revision!r} is not a branch, tag or commit"]
    else:
        problems["source"] = [f"must be one of {', '.join(ImportSource.values)} (got {source!r})"]
    return problems


def base_import_submit(
    *, user, name: str, task: str, source: str, location: str, revision: str = ""
) -> BaseImport:
    """Check everything at once (ValidationError keyed by field), then queue the import on commit."""
    name, location, revision = name.strip(), location.strip(), revision.strip()
    if problems := _problems(name, task, source, location, revision):
        raise ValidationError(problems)
    with transaction.atomic():
        job = BaseImport.objects.create(name=name, task=task, source=source, location=location,
                                        revision=revision, created_by=user)  # fmt: skip
        job_enqueue(job=job)
    return job


def base_import_run(*, job_id: int, task_id: str, hostname: str | None) -> RunOutcome:
    return job_run(model=BaseImport, job_id=job_id, task_id=task_id, hostname=hostname, work=_import)


def _import(job: BaseImport, report: Reporter) -> str:
    folder = Path(job.location)
    if job.source == ImportSource.HUB:
        report(progress=0.05, message=f"downloading {job.location} from {settings.HF_ENDPOINT}")
        folder = hub_download(job.location, job.revision)
    elif problems := _folder_problems(job.location):  # checked again: the folder may have changed since
        raise JobFailed("; ".join(problems))
    report(progress=0.8, message="hashing and registering")
    try:
        version, _ = base_model_ensure(user=job.created_by, name=job.name, path=folder, task=job.task)
    except ValidationError as e:
        raise JobFailed("; ".join(e.messages)) from e
    BaseImport.objects.filter(pk=job.pk).update(result_version=version)
    return f"registered {version}"


def hub_download(repo_id: str, revision: str = "") -> Path:
    """The model's files under ARTIFACT_ROOT/base-models/hub/<owner>/<name>/<revision>; JobFailed with the reason
    when the hub cannot be reached or has no such model."""
    from huggingface_hub import snapshot_download

    target = Path(settings.ARTIFACT_ROOT) / "base-models" / "hub" / repo_id / (revision or "main")
    try:
        path = snapshot_download(repo_id, revision=revision or None, local_dir=target, allow_patterns=HUB_FILES,
                                 endpoint=settings.HF_ENDPOINT, token=settings.HF_TOKEN or None)  # fmt: skip
    except Exception as e:  # network, auth, missing repo or revision: all end the same way, with the reason
        raise JobFailed(
            f"could not download {repo_id} from {settings.HF_ENDPOINT}: {type(e).__name__}: {e}. Where the hub "
            "cannot be reached, download the model on another machine and register its folder instead."
        ) from e
    shutil.rmtree(Path(path) / ".cache", ignore_errors=True)  # the downloader's bookkeeping, not the model's
    return Path(path)
