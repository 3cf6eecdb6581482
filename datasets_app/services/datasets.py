"""Writes of datasets: create one, add source files (stored once under their sha256), ask for a new version.

A version is built by a cpu job (services/build.py); here it is only validated and queued. Every problem of a
recipe is reported at once, keyed by the recipe field it concerns.
"""

import hashlib
import itertools
import shutil
import uuid
import zipfile
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from datasets_app.models import Dataset, DatasetBuild, DatasetVersion, SourceFile, VersionStatus
from datasets_app.pipeline.types import BuildError
from llmops.jobs import job_enqueue

FILE_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet",
                ".zip": "hf"}  # fmt: skip
ZIP_MAX_BYTES = 4 * 1024 * 1024 * 1024  # unpacked size of a zipped save_to_disk folder
PEEK_ROWS = 50  # read at upload, so a broken file is named now rather than at build time


def files_dir() -> Path:
    path = Path(settings.ARTIFACT_ROOT) / "dataset-files"
    path.mkdir(parents=True, exist_ok=True)
    return path


@transaction.atomic
def dataset_create(
    *, user, name: str, task_type: str, product: str = "", description: str = "", is_general: bool = False
) -> Dataset:
    name = name.strip()
    if Dataset.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": f"a dataset named {name!r} exists already"})
    dataset = Dataset(name=name, task_type=task_type, product=product.strip(), description=description,
                      is_general=is_general, created_by=user)  # fmt: skip
    dataset.full_clean()
    dataset.save()
    return dataset


def source_file_add(*, user, dataset: Dataset, upload) -> SourceFile:
    """Store an uploaded JSONL, CSV, Parquet file or a zipped `save_to_disk` folder; read its first rows now."""
    name = Path(upload.name or "upload").name[:255]
    file_format = FILE_FORMATS.get(Path(name).suffix.lower())
    if file_format is None:
        raise ValidationError({"file": f"{name}: unknown format; use JSONL, CSV, Parquet or a zipped Hugging Face "
                                       "datasets folder (save_to_disk)"})  # fmt: skip
    if upload.size > settings.UPLOAD_MAX_BYTES:
        raise ValidationError({"file": f"{name}: over the upload limit of {settings.UPLOAD_MAX_BYTES} bytes"})
    tmp, digest, size = _store(upload)
    try:
        final = _place(tmp, digest, file_format)
        _peek(final, name=name, task_type=dataset.task_type, file_format=file_format)
    finally:
        tmp.unlink(missing_ok=True)
    return SourceFile.objects.create(dataset=dataset, name=name, path=str(final), file_format=file_format,
                                     sha256=digest, size_bytes=size, uploaded_by=user)  # fmt: skip


def _store(upload) -> tuple[Path, str, int]:
    tmp = files_dir() / f"upload-{uuid.uuid4().hex}"
    digest, size = hashlib.sha256(), 0
    with open(tmp, "wb") as out:
        for chunk in upload.chunks():
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    if size == 0:
        tmp.unlink()
        raise ValidationError({"file": f"{upload.name}: the file is empty"})
    return tmp, digest.hexdigest(), size


def _place(tmp: Path, digest: str, file_format: str) -> Path:
    """The content-addressed place of a file: dataset-files/<sha256>/data.<ext>, or .../hf/ for a folder."""
    home = files_dir() / digest
    final = home / ("hf" if file_format == "hf" else f"data.{file_format}")
    if final.exists():
        return final
    home.mkdir(exist_ok=True)
    if file_format == "hf":
        _unzip(tmp, home)
    else:
        shutil.copyfile(tmp, final)
    return final


def _unzip(archive: Path, home: Path) -> None:
    """A zip of a save_to_disk folder → home/hf; refuses unsafe names and zip bombs; the folder may be nested."""
    staging = home / f"unzip-{uuid.uuid4().hex}"
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            if sum(m.file_size for m in members) > ZIP_MAX_BYTES:
                raise ValidationError({"file": "the zip unpacks to more than 4 GiB"})
            for member in members:
                parts = Path(member.filename).parts
                if member.filename.startswith(("/", "\\")) or ".." in parts or ":" in member.filename:
                    raise ValidationError({"file": f"the zip holds an unsafe path: {member.filename[:200]}"})
            zf.extractall(staging)
        root = _hf_root(staging)
        root.rename(home / "hf")
    except zipfile.BadZipFile as e:
        raise ValidationError({"file": f"not a valid zip file: {e}"}) from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _hf_root(folder: Path) -> Path:
    for marker in ("dataset_dict.json", "state.json"):
        found = sorted(folder.rglob(marker), key=lambda p: len(p.parts))
        if found:
            return found[0].parent
    raise ValidationError(
        {"file": "the zip holds no Hugging Face datasets folder (no state.json or dataset_dict.json)"}
    )


def _peek(path: Path, *, name: str, task_type: str, file_format: str) -> None:
    from datasets_app.pipeline.sources import read_file

    try:
        rows = read_file(path, name=name, task_type=task_type, file_format=file_format)
        if not sum(1 for _ in itertools.islice(rows, PEEK_ROWS)):
            raise BuildError(f"{name}: no rows")
    except BuildError as e:
        if not SourceFile.objects.filter(path=str(path)).exists():  # stored for this upload only
            shutil.rmtree(path.parent, ignore_errors=True)
        raise ValidationError({"file": str(e)}) from e


# ---- versions ------------------------------------------------------------------------------------------------------


def version_create(*, user, dataset: Dataset, recipe: dict) -> DatasetVersion:
    """Validate the recipe and every version or file it names, then queue the build of the next version."""
    from datasets_app.pipeline.recipe import Recipe, RecipeError

    try:
        parsed = Recipe.from_dict({**recipe, "task_type": dataset.task_type})
    except RecipeError as e:
        raise ValidationError({key: list(reasons) for key, reasons in e.problems.items()}) from e
    canonical = parsed.to_dict()
    problems = _reference_problems(dataset, canonical)
    if problems:
        raise ValidationError(problems)
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        number = (locked.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        version = DatasetVersion.objects.create(dataset=locked, number=number, recipe=canonical, created_by=user,
                                                parent_id=canonical["sources"]["parent_version"])  # fmt: skip
        job_enqueue(job=DatasetBuild.objects.create(version=version, created_by=user))
    return version


def _reference_problems(dataset: Dataset, recipe: dict) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    sources, split = recipe["sources"], recipe["steps"]["split"]
    files = set(dataset.files.values_list("pk", flat=True))
    unknown = [f for f in sources["files"] if f not in files]
    if unknown:
        problems["sources.files"] = [f"no file {', '.join(map(str, unknown))} in dataset {dataset.name}"]
    if not (sources["cases"] is not None or sources["files"] or sources["parent_version"]):
        problems["sources"] = ["choose at least one source: error cases, files or a previous version"]
    checks = [("sources.parent_version", sources["parent_version"], dataset, False),
              ("sources.replay.version", (sources["replay"] or {}).get("version"), None, True),
              ("steps.split.pinned_test_version", split["pinned_test_version"], None, False)]  # fmt: skip
    for key, version_id, same_dataset, general in checks:
        if version_id is not None:
            reason = _version_problem(version_id, dataset, same_dataset=same_dataset, general=general)
            if reason:
                problems[key] = [reason]
    tokenizer = recipe["steps"]["filter"]["tokenizer"]
    if tokenizer:
        reason = _tokenizer_problem(tokenizer)
        if reason:
            problems["steps.filter.tokenizer"] = [reason]
    pinned = split["pinned_test_version"]
    pinned_ok = pinned is not None and "steps.split.pinned_test_version" not in problems
    if pinned_ok and not DatasetVersion.objects.get(pk=pinned).counts.get("test"):
        problems["steps.split.pinned_test_version"] = [f"version {pinned} has no test rows to pin"]
    if not problems and not sources["files"]:  # file rows are only counted by the build itself
        too_small = _split_too_small(recipe)
        if too_small:
            problems["steps.split"] = [too_small]
    return problems


def _tokenizer_problem(path: str) -> str:
    from registry_app.base_imports import outside_import_roots

    folder = Path(path).resolve()
    if outside := outside_import_roots(folder):
        return f"a tokenizer folder {outside}"
    if not ((folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file()):
        return f"{path} holds no tokenizer (tokenizer.json or tokenizer_config.json)"
    return ""


def _split_too_small(recipe: dict) -> str:
    """With at most N source rows, a split whose share is under one row cannot be filled: say so before building."""
    from datasets_app.services.build import approved_cases

    sources, split = recipe["sources"], recipe["steps"]["split"]
    rows = approved_cases(sources["cases"]).count() if sources["cases"] is not None else 0
    if sources["parent_version"] is not None:
        counts = DatasetVersion.objects.get(pk=sources["parent_version"]).counts
        rows += sum(counts.values())
    names = (
        ("train", "validation")
        if split["pinned_test_version"] is not None
        else ("train", "validation", "test")
    )
    empty = [f"{name} ({split[name]:g} × {rows} = {split[name] * rows:.2g} rows)" for name in names
             if 0 < split[name] * rows < 0.5 or (split[name] > 0 and rows == 0)]  # fmt: skip
    if not empty:
        return ""
    if rows == 0:
        return "the sources hold no rows yet: no approved case with an expected answer matches the filters"
    return f"{rows} source rows are too few for this split: {', '.join(empty)} would get no row"


def _version_problem(
    version_id: int, dataset: Dataset, *, same_dataset: Dataset | None, general: bool
) -> str:
    version = DatasetVersion.objects.select_related("dataset").filter(pk=version_id).first()
    if version is None:
        return f"no dataset version {version_id}"
    if version.status != VersionStatus.READY:
        return f"{version} is {version.status}, not ready"
    if same_dataset is not None and version.dataset_id != same_dataset.pk:
        return f"{version} belongs to another dataset"
    if version.dataset.task_type != dataset.task_type:
        return f"{version} holds {version.dataset.task_type} rows; this dataset needs {dataset.task_type}"
    if general and not version.dataset.is_general:
        return f"{version.dataset} is not marked as general-purpose data"
    return ""
