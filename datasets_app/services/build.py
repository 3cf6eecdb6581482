"""Build one dataset version (the cpu job): read the recipe's sources in one consistent snapshot, run the pipeline,
store the examples, the data card and the exports, and mark the version ready — or failed with the reason.

Everything a build writes happens in one transaction: a failure or a cancel leaves no examples behind.
"""

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from datasets_app.models import DatasetBuild, DatasetVersion, ErrorCase, SensitiveWord, SourceFile
from datasets_app.models.cases import CaseStatus
from datasets_app.pipeline.types import BuildError, Example
from datasets_app.services.version_rows import CardBuilder, ContentHasher, ExampleWriter, version_examples
from llmops.jobs import JobCancelled, JobFailed, Reporter, RunOutcome, job_run

CASE_CHUNK = 2000


def build_run(*, job_id: int, task_id: str, hostname: str | None) -> RunOutcome:
    return job_run(model=DatasetBuild, job_id=job_id, task_id=task_id, hostname=hostname, work=_build)


class BuildLog:
    """Lines shown on the version page: live through the job's progress message, kept whole in job.log."""

    def __init__(self, job: DatasetBuild, report: Reporter):
        self.job, self.report, self.lines = job, report, []

    def __call__(self, step: str, message: str, progress: float | None = None) -> None:
        self.lines.append(
            {"at": timezone.now().isoformat(timespec="seconds"), "step": step, "message": message}
        )
        if self.report(progress=progress, message=f"{step}: {message}") == "stop":
            raise JobCancelled("build cancelled")

    def save(self) -> None:
        DatasetBuild.objects.filter(pk=self.job.pk).update(log=self.lines)


def _build(job: DatasetBuild, report: Reporter) -> str:
    version = DatasetVersion.objects.select_related("dataset").get(pk=job.version_id)
    log = BuildLog(job, report)
    work = Path(settings.ARTIFACT_ROOT) / "tmp" / f"build-{job.pk}-{time.monotonic_ns()}"
    work.mkdir(parents=True)
    try:
        summary = _build_in_snapshot(version, log, work)
    except BuildError as e:
        log("failed", str(e))
        raise JobFailed(str(e)) from e
    finally:
        log.save()
        shutil.rmtree(work, ignore_errors=True)
    return summary


def _build_in_snapshot(version: DatasetVersion, log: BuildLog, work: Path) -> str:
    from datasets_app.pipeline.recipe import Recipe
    from datasets_app.pipeline.run import run_pipeline

    recipe = Recipe.from_dict(version.recipe)
    outermost = not connection.in_atomic_block  # (tests run builds inside their own transaction)
    with transaction.atomic():
        if outermost:
            _repeatable_read()  # every source read below sees the same moment, whatever PMs edit meanwhile
        sources = version.recipe["sources"]
        result = run_pipeline(
            _source_examples(version, log),
            recipe,
            words=_sensitive_words(),
            pinned_test=_pinned_test(version),
            replay=_replay(sources["replay"]),
            spool_dir=work,
            progress=lambda fraction, message: log("pipeline", message, 0.05 + 0.7 * fraction),
        )
        for stats in result.steps:
            log(stats.name, f"{stats.rows_in} in, {stats.rows_out} out" + _dropped(stats.dropped))
        return _store(version, result, log, work)


def _repeatable_read() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


def _dropped(dropped: dict) -> str:
    return (
        "".join(f", {n} {reason.replace('_', ' ')}" for reason, n in sorted(dropped.items()))
        if dropped
        else ""
    )


def _store(version: DatasetVersion, result, log: BuildLog, work: Path) -> str:
    """COPY the rows, tally the card and the content hash here, while a forked child writes the exports from the
    same spool on the other core (it never touches the database: see pipeline/forked.py)."""
    from datasets_app.pipeline.exports import export_all
    from datasets_app.pipeline.forked import Forked
    from datasets_app.pipeline.formats_columns import arrow_schema

    # imports `datasets` (1-2 s) here, once per worker process, rather than in every build's export child
    arrow_schema(version.dataset.task_type)

    card, hasher = CardBuilder(), ContentHasher()
    out = Path(settings.ARTIFACT_ROOT) / "datasets" / str(version.dataset_id) / f"v{version.number}"
    staging = work / "exports"
    task_type = version.dataset.task_type
    with (
        Forked(lambda: export_all(result.examples, staging, task_type)) as exporting,
        ExampleWriter(version) as writer,
    ):
        for example in result.examples:
            writer.add(example)
            card.add(example)
            hasher.add(example)
        writer.close()
        exports = exporting.result()
    log("store", f"{writer.count} examples stored", 0.9)
    if out.exists():
        shutil.rmtree(out)  # a failed earlier attempt of this very version
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging), out)
    exports = {fmt: {**info, "path": _moved(info["path"], staging, out)} for fmt, info in exports.items()}
    version.mark_ready(content_sha256=hasher.hexdigest(), counts=card.counts(), steps=[s.as_dict() for s in
                       result.steps], leakage=result.leakage, card=card.as_dict(), exports=exports)  # fmt: skip
    counts = ", ".join(f"{n} {split}" for split, n in card.counts().items())
    log("ready", f"{version} ready: {counts}", 1.0)
    return f"{version}: {counts}"


def _moved(path: str, old: Path, new: Path) -> str:
    return str(new / Path(path).relative_to(old))


# ---- sources -------------------------------------------------------------------------------------------------------


def _source_examples(version: DatasetVersion, log: BuildLog) -> Iterator[Example]:
    from datasets_app.pipeline.sources import read_file

    sources, task_type = version.recipe["sources"], version.dataset.task_type
    if sources["cases"] is not None:
        log("sources", "reading approved error cases", 0.01)
        yield from _case_examples(sources["cases"], task_type)
    for file_id in sources["files"]:
        source = SourceFile.objects.get(pk=file_id)
        log("sources", f"reading {source.name}", None)
        yield from read_file(Path(source.path), name=source.name, task_type=task_type,
                             file_format=source.file_format)  # fmt: skip
    if sources["parent_version"] is not None:
        log("sources", f"reading the rows of v{version.parent.number}", None)
        yield from version_examples(sources["parent_version"], originals_only=True)


def approved_cases(filters: dict):
    cases = ErrorCase.objects.filter(status=CaseStatus.APPROVED, merged_into=None).exclude(expected_output="")
    if filters.get("tags"):
        cases = cases.filter(tags__name__in=filters["tags"]).distinct()
    if filters.get("products"):
        cases = cases.filter(product__in=filters["products"])
    if filters.get("date_from"):
        cases = cases.filter(created_at__date__gte=filters["date_from"])
    if filters.get("date_to"):
        cases = cases.filter(created_at__date__lte=filters["date_to"])
    return cases


def _case_examples(filters: dict, task_type: str) -> Iterator[Example]:
    from datasets_app.pipeline.sources import example_from_case

    after = 0
    while True:
        chunk = list(approved_cases(filters).filter(pk__gt=after).order_by("pk")
                     .values("id", "messages", "bad_output", "expected_output", "task_type")[:CASE_CHUNK])  # fmt: skip
        if not chunk:
            return
        tags = _tags_of([c["id"] for c in chunk])
        for case in chunk:
            example = example_from_case({**case, "tags": tags.get(case["id"], [])}, task_type)
            if example is not None:
                yield example
        after = chunk[-1]["id"]


def _tags_of(case_ids: list[int]) -> dict[int, list[str]]:
    link = ErrorCase.tags.through
    tags: dict[int, list[str]] = {}
    for case_id, name in (link.objects.filter(errorcase_id__in=case_ids).order_by("errorcase_id", "tag__name")
                          .values_list("errorcase_id", "tag__name")):  # fmt: skip
        tags.setdefault(case_id, []).append(name)
    return tags


def _sensitive_words():
    from datasets_app.pii import SensitiveWords

    pairs = list(SensitiveWord.objects.values_list("word", "action"))
    return SensitiveWords(pairs) if pairs else None


def _pinned_test(version: DatasetVersion) -> list[Example] | None:
    pinned = version.recipe["steps"]["split"]["pinned_test_version"]
    if pinned is None:
        return None
    return list(version_examples(pinned, split="test"))


def _replay(replay: dict | None) -> list[Example] | None:
    if not replay:
        return None
    rows = list(version_examples(replay["version"], originals_only=True))
    for row in rows:
        row.origin = "replay"
    return rows
