"""Registry writes: register a base model folder, register the output of a job as a new version."""

from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from registry_app.models import ModelTask, ModelVersion, RegisteredModel, VersionFormat, VersionSource


def model_folder_problems(path: Path, fmt: str) -> list[str]:
    """What is missing from a model folder; never runs code from it (no trust_remote_code, safetensors only)."""
    if not path.is_dir():
        return [f"{path}: no such folder"]
    problems = []
    if fmt == VersionFormat.PEFT_ADAPTER:
        if not (path / "adapter_config.json").is_file():
            problems.append(f"{path}: adapter_config.json is missing")
    elif not (path / "config.json").is_file():
        problems.append(f"{path}: config.json is missing")
    if not any(path.glob("*.safetensors")):
        problems.append(f"{path}: no .safetensors weights (pickled weights are not accepted)")
    if any(path.glob("*.bin")) or any(path.glob("*.pt")) or any(path.glob("*.pkl")):
        problems.append(f"{path}: holds pickled files (.bin/.pt/.pkl); save the model as safetensors only")
    return problems


def _next_number(model: RegisteredModel) -> int:
    return (model.versions.aggregate(n=Max("number"))["n"] or 0) + 1


def _create_version(*, model: RegisteredModel, path: Path, **fields) -> ModelVersion:
    from datasets_app.pipeline.exports import folder_sha256

    digest = folder_sha256(path)
    locked = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    return ModelVersion.objects.create(
        model=locked, number=_next_number(locked), artifact_uri=str(path), sha256=digest["sha256"],
        size_bytes=digest["bytes"], **fields,
    )  # fmt: skip


@transaction.atomic
def base_model_register(
    *, user, name: str, path: str | Path, task: str = ModelTask.CAUSAL_LM
) -> ModelVersion:
    """Register a Hugging Face folder as a new base version of the model ``name`` (created when new)."""
    folder = Path(path)
    problems: dict[str, list[str]] = {}
    if task not in ModelTask.values:
        problems["task"] = [f"must be one of {', '.join(ModelTask.values)} (got {task!r})"]
    if not name.strip():
        problems["name"] = ["is required"]
    if folder_problems := model_folder_problems(folder, VersionFormat.HF):
        problems["path"] = folder_problems
    if problems:
        raise ValidationError(problems)
    model, _ = RegisteredModel.objects.get_or_create(
        name=name.strip(), defaults={"task": task, "created_by": user}
    )
    if model.task != task:
        raise ValidationError({"task": [f"{model.name} is a {model.task} model, not {task}"]})
    return _create_version(
        model=model, path=folder.resolve(), source=VersionSource.BASE, format=VersionFormat.HF,
        lineage={"path": str(folder)}, created_by=user,
    )  # fmt: skip


@transaction.atomic
def base_model_ensure(
    *, user, name: str, path: str | Path, task: str = ModelTask.CAUSAL_LM
) -> tuple[ModelVersion, bool]:
    """The base version of ``name`` with this folder's content, registered only when none has its sha256 yet.

    Returns (version, created). Lets set-up commands run again and again without adding versions.
    """
    from datasets_app.pipeline.exports import folder_sha256

    folder = Path(path)
    if folder.is_dir():
        same = ModelVersion.objects.filter(
            model__name=name.strip(), source=VersionSource.BASE, sha256=folder_sha256(folder)["sha256"]
        ).order_by("-number")
        if same := same.first():
            return same, False
    return base_model_register(user=user, name=name, path=folder, task=task), True


@transaction.atomic
def derived_version_register(
    *, user, base: ModelVersion, path: str | Path, source: str, fmt: str, lineage: dict
) -> ModelVersion:
    """A version produced by a job from ``base``: a new version of the same registered model."""
    folder = Path(path)
    if problems := model_folder_problems(folder, fmt):
        raise ValidationError({"path": problems})
    return _create_version(
        model=base.model, path=folder, source=source, format=fmt, base=base,
        lineage={"base_version": base.pk, **lineage}, created_by=user,
    )  # fmt: skip
