"""The one path every batch of new cases takes (bulk API and file import): scrub, fingerprint, skip exact
duplicates (within the batch and against the notebook), write with CaseWriter. Dry runs stop before writing."""

from collections import Counter
from dataclasses import dataclass, field

from datasets_app.models import ErrorCase
from datasets_app.services.prepare import Scrubber, prepare_content
from datasets_app.services.writer import CaseWriter, NewCase

LOOKUP_BATCH = 2000


@dataclass
class IngestStats:
    created: int = 0
    duplicates: list[tuple[int, str]] = field(default_factory=list)  # (line or index, "duplicate of ...")
    preview: list[dict] = field(default_factory=list)
    pii_found: Counter = field(default_factory=Counter)


class Ingestor:
    def __init__(
        self,
        *,
        user_id: int | None,
        source: str,
        scrubber: Scrubber,
        import_job_id: int | None = None,
        dry_run: bool = False,
        preview_limit: int = 20,
        unit: str = "line",
    ):
        """`unit` names what a key counts in messages and history: "line" of a file, or "item" of a bulk call."""
        self.scrubber, self.dry_run, self.preview_limit, self.unit = scrubber, dry_run, preview_limit, unit
        self.import_job_id = import_job_id
        self.writer = (
            None if dry_run else CaseWriter(user_id=user_id, source=source, import_job_id=import_job_id)
        )
        self.seen: dict[str, int] = {}
        self.pending: list[tuple[int, NewCase]] = []
        self.stats = IngestStats(pii_found=scrubber.found)

    def add(
        self, key: int, *, messages: list, bad_output: str, expected_output: str = "", metadata=None, **fields
    ) -> None:
        content = prepare_content(self.scrubber, messages, bad_output, expected_output, metadata)
        first = self.seen.get(content.fingerprint)
        if first is not None:
            self.stats.duplicates.append((key, f"same content as {self.unit} {first}"))
            return
        self.seen[content.fingerprint] = key
        case = NewCase(content=content, metadata=content.metadata, origin=self._origin(key), **fields)
        if len(self.stats.preview) < self.preview_limit:
            self.stats.preview.append(_preview(key, case))
        self.pending.append((key, case))
        if len(self.pending) >= LOOKUP_BATCH:
            self._flush_pending()

    def _origin(self, key: int) -> str:
        where = f" of import #{self.import_job_id}" if self.import_job_id else ""
        return f"{self.unit} {key}{where}"

    def stop_writing(self) -> None:
        """An atomic import met an invalid line: from now on only check, so every problem is still found."""
        if self.writer is not None:
            self.writer = None
            self.dry_run = True

    def _flush_pending(self) -> None:
        batch, self.pending = self.pending, []
        existing = dict(
            ErrorCase.objects.filter(
                fingerprint__in=[c.content.fingerprint for _, c in batch], merged_into=None
            )
            .values_list("fingerprint", "pk")
            .order_by()
        )
        for key, case in batch:
            found = existing.get(case.content.fingerprint)
            if found is not None:
                self.stats.duplicates.append((key, f"already in the notebook as case #{found}"))
                continue
            self.stats.created += 1
            if self.writer is not None:
                self.writer.add(case)

    def finish(self) -> IngestStats:
        self._flush_pending()
        if self.writer is not None:
            self.writer.flush()
        return self.stats

    @property
    def created_ids(self) -> list[int]:
        return self.writer.ids if self.writer else []


def _preview(key: int, case: NewCase) -> dict:
    p = case.content
    return {
        "line": key,
        "messages": p.messages,
        "bad_output": p.bad_output,
        "expected_output": p.expected_output,
        "tags": case.tags,
        "severity": case.severity,
        "task_type": case.task_type,
        "product": case.product,
        "flags": p.flags,
    }
