"""File imports of error cases: stored upload → ImportJob → streamed parse → Ingestor, in one transaction.

Atomic by default: any invalid line and nothing is written (every problem is still reported). With
"skip invalid lines" the valid rows are imported and the rejected lines are offered as a file. A dry run writes no
case, and shows the first rows as they would be stored. Scrubbing happens before anything is written, and the
stored upload (the only copy of the originals) is deleted once the import has run.
"""

import csv
import logging
import uuid
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from datasets_app.ingest.parse import LineError, parse_file
from datasets_app.ingest.readers import human_size
from datasets_app.models import ImportJob, Tag
from datasets_app.pii import scrub
from datasets_app.services.dedup import dedup_job_after_import
from datasets_app.services.ingest import Ingestor
from datasets_app.services.prepare import Scrubber
from llmops.jobs import JobCancelled, JobFailed, Reporter, RunOutcome, job_enqueue, job_run

log = logging.getLogger(__name__)
PROBLEMS_KEPT = 500  # in the job row; every problem is in the downloadable CSV
PROGRESS_EVERY = 2000
ROW_FIELDS = ("messages", "bad_output", "expected_output", "task_type", "tags", "severity", "product", "feature",
              "model_version", "metadata")  # fmt: skip


def imports_dir() -> Path:
    path = Path(settings.ARTIFACT_ROOT) / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _store_upload(upload) -> tuple[Path, int]:
    """Stream the upload to a file whose name we choose (never the user's)."""
    suffix = Path(upload.name or "").suffix.lower()
    suffix = suffix if suffix in {".jsonl", ".json", ".ndjson", ".csv", ".txt"} else ""
    path = imports_dir() / f"{uuid.uuid4().hex}{suffix}"
    size = 0
    with open(path, "wb") as out:
        for chunk in upload.chunks():
            size += len(chunk)
            out.write(chunk)
    return path, size


def check_size(size: int) -> None:
    if size > settings.UPLOAD_MAX_BYTES:
        raise ValidationError(
            {"file": f"the file is {human_size(size)}; the limit is {human_size(settings.UPLOAD_MAX_BYTES)}"}
        )
    if size == 0:
        raise ValidationError({"file": "the file is empty"})


def import_job_create(
    *,
    user,
    upload,
    dry_run: bool = False,
    skip_invalid: bool = False,
    scrub_pii: bool = True,
    source: str = "import",
) -> ImportJob:
    """Store the upload and import it: inline when small, else as a cpu job (the caller polls the job)."""
    check_size(upload.size)
    path, size = _store_upload(upload)
    name = Path(upload.name or "upload").name[:255]
    with transaction.atomic():
        job = ImportJob.objects.create(
            created_by=user, filename=name, path=str(path), size_bytes=size, dry_run=dry_run,
            skip_invalid=skip_invalid, scrub_pii=scrub_pii, source=source,
        )  # fmt: skip
        if size > settings.IMPORT_INLINE_MAX_BYTES:
            return job_enqueue(job=job)
        job.celery_task_id = f"inline-{uuid.uuid4().hex}"
        job.save(update_fields=["celery_task_id"])
    import_run(job_id=job.pk, task_id=job.celery_task_id, hostname="web (inline)")
    job.refresh_from_db()
    return job


def import_run(*, job_id: int, task_id: str, hostname: str | None) -> RunOutcome:
    return job_run(model=ImportJob, job_id=job_id, task_id=task_id, hostname=hostname, work=_run)


class _Problems:
    """Every problem to a CSV file (scrubbed), the first PROBLEMS_KEPT into the job row; rejected lines to a file."""

    def __init__(self, job: ImportJob, scrub_pii: bool):
        base = imports_dir() / f"job-{job.pk}"
        self.report_path, self.rejected_path = base.with_suffix(".problems.csv"), Path(f"{base}.rejected")
        self.report = open(self.report_path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self.rejected = open(self.rejected_path, "w", encoding="utf-8")  # noqa: SIM115
        self.writer = csv.writer(self.report)
        self.writer.writerow(["line", "field", "reason"])
        self.kept: list[dict] = []
        self.lines: set[int] = set()
        self.scrub_pii = scrub_pii

    def clean(self, text: str) -> str:
        return scrub(text)[0] if self.scrub_pii else text

    def add(self, error: LineError) -> None:
        reason = self.clean(error.reason)
        self.writer.writerow([error.line, error.field, reason])
        if len(self.kept) < PROBLEMS_KEPT:
            self.kept.append({"line": error.line, "field": error.field, "reason": reason})
        if error.line and error.line not in self.lines and error.raw:
            self.rejected.write(self.clean(error.raw) + "\n")
        self.lines.add(error.line)

    def close(self, csv_header: str | None) -> None:
        self.report.close()
        self.rejected.close()
        if csv_header and self.rejected_path.stat().st_size:
            body = self.rejected_path.read_text(encoding="utf-8")
            self.rejected_path.write_text(self.clean(csv_header) + "\n" + body, encoding="utf-8")


def _run(job: ImportJob, report: Reporter) -> str:
    scrubber = Scrubber.from_database(scrub_pii=job.scrub_pii)
    known = set(Tag.objects.filter(is_active=True).values_list("name", flat=True))
    problems = _Problems(job, job.scrub_pii)
    try:
        with open(job.path, "rb") as upload:
            parsed = parse_file(upload, filename=job.filename, known_tags=known,
                                max_line_bytes=settings.IMPORT_MAX_LINE_BYTES)  # fmt: skip
            ImportJob.objects.filter(pk=job.pk).update(file_format=parsed.format, encoding=parsed.encoding)
            try:
                stats, lines = _ingest(job, parsed, scrubber, problems, report, upload)
            finally:
                problems.close(_csv_header(job.path, parsed.encoding) if parsed.format == "csv" else None)
    finally:
        Path(job.path).unlink(missing_ok=True)  # the only copy of unscrubbed originals
    written = not job.dry_run and (job.skip_invalid or not problems.lines)
    ImportJob.objects.filter(pk=job.pk).update(
        lines_read=lines, imported=stats.created if written else 0, duplicates=len(stats.duplicates),
        invalid_lines=len(problems.lines - {0}), problems=problems.kept, preview=stats.preview,
        pii_found=dict(stats.pii_found), report_path=str(problems.report_path),
        rejected_path=str(problems.rejected_path) if problems.rejected_path.stat().st_size else "", path="",
    )  # fmt: skip
    summary = _summary(job, stats.created if written else 0, problems, stats)
    if problems.lines and not (job.skip_invalid or job.dry_run):
        raise JobFailed(summary)
    if written and stats.created:
        dedup_job_after_import(user=job.created_by)
    return summary


def _ingest(job, parsed, scrubber, problems, report, upload):
    with transaction.atomic():
        ingest = Ingestor(
            user_id=job.created_by_id,
            source=job.source,
            scrubber=scrubber,
            import_job_id=job.pk,
            dry_run=job.dry_run,
        )
        lines = 0
        for lines, item in enumerate(parsed, start=1):
            if isinstance(item, LineError):
                problems.add(item)
                if not job.skip_invalid:
                    ingest.stop_writing()  # keep parsing to report every problem; write nothing
            else:
                ingest.add(item.line, **{name: getattr(item, name) for name in ROW_FIELDS})
            if lines % PROGRESS_EVERY == 0 and report(progress=upload.tell() / max(job.size_bytes, 1),
                                                      message=f"{lines} lines read") == "stop":  # fmt: skip
                raise JobCancelled("import cancelled")
        stats = ingest.finish()
        if job.dry_run or (problems.lines and not job.skip_invalid):
            transaction.set_rollback(True)
    return stats, lines


def _csv_header(path: str, encoding: str) -> str:
    """The header line of a CSV upload, so the rejected-lines file can be fixed and imported again."""
    with open(path, "rb") as upload:
        first = upload.readline(settings.IMPORT_MAX_LINE_BYTES)
    return first.decode(encoding or "utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")


def _summary(job: ImportJob, imported: int, problems: _Problems, stats) -> str:
    invalid = len(problems.lines - {0})
    if job.dry_run:
        return f"dry run: {stats.created} would be imported, {invalid} invalid lines, {len(stats.duplicates)} duplicates"
    if invalid and not job.skip_invalid:
        return f"nothing imported: {invalid} invalid lines (fix them, or choose to skip invalid lines)"
    return f"{imported} imported, {invalid} invalid lines skipped, {len(stats.duplicates)} duplicates skipped"
