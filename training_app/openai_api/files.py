"""POST /v1/files: an uploaded chat JSONL file becomes a SourceFile of a new chat dataset and a version built from it
on the cpu queue. The whole file is read first, so bad lines are answered at once, each named, and nothing is kept."""

import shutil
import tempfile
import uuid
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from datasets_app.models import DatasetVersion, SourceFile
from datasets_app.pipeline.sources import SourceError, read_file
from datasets_app.services.datasets import dataset_create, source_file_add, version_create
from training_app.openai_api.errors import invalid

PURPOSE = "fine-tune"
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
PRODUCT = "openai-api"  # marks the datasets this API created
# rows kept as the user wrote them (as OpenAI does): no normalisation, dedup or degenerate filter; all go to train.
# The admins' sensitive-word policy still applies, as to every build.
RECIPE_STEPS = {
    "normalise": {"nfkc": False, "strip_invisible": False, "collapse_whitespace": False},
    "filter": {"min_tokens": 0, "max_tokens": 10**9, "drop_degenerate": False},
    "dedup": {"exact": False, "near": False},
    "split": {"train": 1.0, "validation": 0.0, "test": 0.0, "stratify": False},
}


def openai_file_create(*, user, upload, purpose) -> DatasetVersion:
    """Store, check every line, and queue the build; OpenAIError (400) naming every problem, nothing written."""
    problems = []
    if purpose != PURPOSE:
        problems.append(
            ("purpose", f"must be {PURPOSE!r} (the only purpose this portal serves), got {purpose!r}")
        )
    if upload is None:
        problems.append(("file", 'is required: a JSONL file of {"messages": [...]} lines'))
    if problems:
        raise invalid(problems)
    name = Path(upload.name or "upload").name
    if Path(name).suffix.lower() not in JSONL_SUFFIXES:
        upload.name = f"{name}.jsonl"  # fine-tuning files are JSON lines, whatever they are called
    if upload.size > settings.UPLOAD_MAX_BYTES:
        raise invalid([("file", f"{name}: over the upload limit of {settings.UPLOAD_MAX_BYTES} bytes")])
    _read_every_line(upload)
    stored = []
    try:
        with transaction.atomic():
            dataset = dataset_create(user=user, name=_dataset_name(name), task_type="chat", product=PRODUCT,
                                     description=f"Uploaded through the OpenAI-compatible API as {name}.")  # fmt: skip
            source = source_file_add(user=user, dataset=dataset, upload=upload)
            stored.append(Path(source.path))
            return version_create(user=user, dataset=dataset,
                                  recipe={"sources": {"files": [source.pk]}, "steps": RECIPE_STEPS})  # fmt: skip
    except ValidationError as e:
        _forget(stored)
        raise invalid(_problems(e), code="invalid_file") from e


def _dataset_name(filename: str) -> str:
    return f"{filename[:70]} ({uuid.uuid4().hex[:12]})"


def _read_every_line(upload) -> None:
    """Every line must be a chat example; OpenAIError listing each bad line (up to MAX_PROBLEMS of them)."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as copy:
        for chunk in upload.chunks():
            copy.write(chunk)
        copy.flush()
        try:
            for _ in read_file(Path(copy.name), name=upload.name, task_type="chat", file_format="jsonl"):
                pass
        except SourceError as e:
            more = [("file", f"{e.name}: and {e.more} more problems")] if e.more else []
            raise invalid([("file", f"{e.name}: {p}") for p in e.problems] + more, code="invalid_file") from e


def _forget(stored: list[Path]) -> None:
    """A refused upload leaves no file behind unless another source file shares its content."""
    for path in stored:
        if not SourceFile.objects.filter(path=str(path)).exists():
            shutil.rmtree(path.parent, ignore_errors=True)


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    if not hasattr(error, "error_dict"):
        return [("file", m) for m in error.messages]
    return [
        ("file" if key in ("file", "name") else key, m)
        for key, msgs in error.message_dict.items()
        for m in msgs
    ]
