"""Submit a compression: a source version, a method and its settings become a validated engine config; the method
is checked against the gpu workers' hardware and the source's shapes before anything is queued. Every problem is
reported at once, keyed by field; nothing is saved on error. Runs in the web process: no torch."""

import contextlib
import json
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from datasets_app.models import DatasetVersion
from llmops.jobs import job_enqueue
from registry_app.models import ModelTask, ModelVersion, VersionFormat
from training_app.models import CompressionJob
from training_app.services.submit import _data_files

# set by the portal from the versions chosen, never by the user
RESERVED = ("model_path", "output_dir", "train_file", "validation_file", "task", "method", "data_task",
            "student_path", "labels", "device")  # fmt: skip
# engine field -> the form field a problem is shown under
FIELDS = {"train_file": "dataset_version", "student_path": "student", "model_path": "source"}
DATA_TASKS = {"chat": "chat", "instruction": "instruction", "classification": "classification"}


def compression_dir(job_id: int) -> Path:
    return Path(settings.ARTIFACT_ROOT) / "runs" / f"compress-{job_id}"


def model_folder(version: ModelVersion, field: str, problems: dict) -> str | None:
    """The full Hugging Face folder of a version (an adapter's merged copy), or a problem under ``field``."""
    if version.format == VersionFormat.QUANTIZED:
        problems.setdefault(field, []).append(f"{version} is already quantised; compress its source instead")
        return None
    path = version.artifact_uri
    if version.format == VersionFormat.PEFT_ADAPTER:
        path = (version.lineage or {}).get("merged_model") or ""
        if not path or not Path(path, "config.json").is_file():
            problems.setdefault(field, []).append(
                f"{version} is an adapter whose merged model is not on disk"
            )
            return None
    return path


def _read_config(path: str, field: str, problems: dict) -> dict:
    try:
        data = json.loads(Path(path, "config.json").read_text())
    except (OSError, ValueError) as e:
        problems.setdefault(field, []).append(f"{path}/config.json cannot be read: {e}")
        return {}
    return data if isinstance(data, dict) else {}


def _training_data(version: DatasetVersion | None, task: str, problems: dict) -> dict:
    if version is None:
        return {}
    is_classifier = task == ModelTask.CLASSIFICATION
    if is_classifier != (version.dataset.task_type == "classification"):
        problems.setdefault("dataset_version", []).append(
            f"{version} is a {version.dataset.task_type} dataset; the model is a {task} model"
        )
        return {}
    train, validation = _data_files(version, problems)
    data_task = DATA_TASKS.get(version.dataset.task_type)
    if data_task is None:
        problems.setdefault("dataset_version", []).append(f"{version.dataset.task_type} data cannot train")
    return {"train_file": train, "validation_file": validation, "data_task": data_task}


def _eval_data(version: DatasetVersion | None, split: str, task: str, problems: dict) -> None:
    """The evaluation app's own check of a dataset split, its problems shown under this form's field names."""
    from evaluation_app.services.submit import _example_set

    if version is None:
        return
    found: dict[str, list[str]] = {}
    _example_set(version, split, "", task, found)
    for key, messages in found.items():
        problems.setdefault(f"eval_{key}", []).extend(messages)


def _student(student: ModelVersion | None, source: ModelVersion, teacher: dict, problems: dict) -> dict:
    if student is None:
        return {}
    path = model_folder(student, "student", problems)
    if path is None:
        return {}
    if student.model.task != source.model.task:
        problems.setdefault("student", []).append(
            f"{student} is a {student.model.task} model, not {source.model.task}"
        )
    mine = _read_config(path, "student", problems)
    if source.model.task == ModelTask.CAUSAL_LM and mine.get("vocab_size") != teacher.get("vocab_size"):
        problems.setdefault("student", []).append(
            f"{student}'s vocabulary ({mine.get('vocab_size')}) differs from the teacher's "
            f"({teacher.get('vocab_size')}): distil between models sharing a tokenizer"
        )
    return {"student_path": path}


def _engine_checks(config, teacher: dict, problems: dict) -> None:
    from workers.compress.config import check_hardware, check_shapes

    hardware = check_hardware(
        config, cuda=settings.GPU_WORKERS_CUDA, int4_cpu_kernel=settings.GPU_WORKERS_INT4_CPU_KERNEL,
        bitsandbytes=settings.GPU_WORKERS_BITSANDBYTES,
    )  # fmt: skip
    for problem in hardware:
        key, _, message = problem.partition(": ")
        problems.setdefault(key, []).append(message)
    if teacher:
        for key, messages in check_shapes(config, teacher).items():
            problems.setdefault("source" if key == "model" else key, []).extend(messages)


def compression_config(
    *,
    source: ModelVersion,
    method: str,
    options: dict,
    dataset_version: DatasetVersion | None = None,
    student: ModelVersion | None = None,
    output_dir: str = "pending",
) -> dict:
    """The engine's CompressConfig as JSON; ValidationError listing every problem (settings by name)."""
    from workers.compress.config import CompressConfig, ConfigError

    if not isinstance(options, dict):
        raise ValidationError({"settings": ["must be an object of setting -> value"]})
    problems: dict[str, list[str]] = {}
    for key in RESERVED:
        if key in options:
            problems.setdefault(key, []).append("is set by the portal, not in the settings")
    path = model_folder(source, "source", problems)
    teacher = _read_config(path, "source", problems) if path else {}
    data = {**{k: v for k, v in options.items() if k not in RESERVED},
            "method": method, "model_path": path or "missing", "output_dir": output_dir,
            "task": source.model.task, "device": "cpu" if method == "int8_dynamic" else "auto",
            **_training_data(dataset_version, source.model.task, problems),
            **_student(student, source, teacher, problems)}  # fmt: skip
    data = {k: v for k, v in data.items() if v is not None}
    config = None
    try:
        config = CompressConfig.from_dict(data)
        config.validate()
    except ConfigError as e:
        for key, messages in e.problems.items():
            problems.setdefault(FIELDS.get(key, key), []).extend(messages)
    if config is not None:  # checked even when a setting is wrong, so all problems show at once; a setting of
        with contextlib.suppress(TypeError, ValueError):  # the wrong type is already listed above
            _engine_checks(config, teacher, problems)
    if problems:
        raise ValidationError(problems)
    return config.to_dict()


def compression_submit(
    *,
    user,
    source: ModelVersion,
    method: str,
    options: dict | None = None,
    dataset_version: DatasetVersion | None = None,
    student: ModelVersion | None = None,
    eval_dataset_version: DatasetVersion | None = None,
    eval_split: str = "test",
) -> CompressionJob:
    """Validate everything, then create the job and queue it on the gpu queue once the transaction commits."""
    problems: dict[str, list[str]] = {}
    try:
        config = compression_config(source=source, method=method, options=options or {},
                                    dataset_version=dataset_version, student=student)  # fmt: skip
    except ValidationError as e:
        problems.update(e.message_dict)
    if eval_split not in ("train", "validation", "test"):
        problems.setdefault("eval_split", []).append(
            f"must be train, validation or test (got {eval_split!r})"
        )
    else:
        _eval_data(eval_dataset_version, eval_split, source.model.task, problems)
    if problems:
        raise ValidationError(problems)
    with transaction.atomic():
        job = CompressionJob.objects.create(
            source=source, method=method, config=config, dataset_version=dataset_version, student=student,
            eval_dataset_version=eval_dataset_version, eval_split=eval_split, created_by=user,
        )  # fmt: skip
        job.output_dir = str(compression_dir(job.pk))
        job.config = {**config, "output_dir": job.output_dir}
        job.save(update_fields=["output_dir", "config"])
        job_enqueue(job=job)
    return job
