"""Write many prepared cases fast: COPY on PostgreSQL (ids reserved from the sequence first, so tag links can be
copied too), bulk_create elsewhere. The caller owns the transaction: a failure leaves no rows."""

import json
from dataclasses import dataclass, field

import orjson
from django.db import connection
from django.utils import timezone

from datasets_app.models import CaseEvent, CaseStatus, ErrorCase, Tag
from datasets_app.services.prepare import Prepared

CASE_TABLE = ErrorCase._meta.db_table
TAG_LINK_TABLE = ErrorCase.tags.through._meta.db_table
EVENT_TABLE = CaseEvent._meta.db_table
COLUMNS = (
    "id", "messages", "bad_output", "expected_output", "task_type", "severity", "source", "product", "feature",
    "model_version", "status", "rejection_reason", "metadata", "flags", "fingerprint", "search_text", "version",
    "created_by_id", "updated_by_id", "created_at", "updated_at", "import_job_id",
)  # fmt: skip


def _json(value) -> str:
    return orjson.dumps(value).decode()


@dataclass(slots=True)
class NewCase:
    content: Prepared
    task_type: str = "chat"
    severity: str = "medium"
    product: str = ""
    feature: str = ""
    model_version: str = ""
    metadata: dict = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    origin: str = (
        ""  # where it came from, for the case's history: "line 12 of import #3", "item 4 of a bulk call"
    )


class CaseWriter:
    """Buffer rows and flush them in batches; `ids` collects the new case ids in order."""

    def __init__(
        self, *, user_id: int | None, source: str, import_job_id: int | None = None, batch: int = 5000
    ):
        self.user_id, self.source, self.import_job_id, self.batch = user_id, source, import_job_id, batch
        self.tag_ids = dict(Tag.objects.filter(is_active=True).values_list("name", "pk"))
        self.pending: list[NewCase] = []
        self.ids: list[int] = []
        self.now = timezone.now()

    def add(self, case: NewCase) -> None:
        self.pending.append(case)
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        rows, self.pending = self.pending, []
        if connection.vendor == "postgresql":
            self._copy(rows)
        else:
            self._bulk_create(rows)

    def _row(self, case_id: int, c: NewCase) -> tuple:
        p = c.content
        status = CaseStatus.CORRECTED if p.expected_output else CaseStatus.NEW
        return (
            case_id, _json(p.messages), p.bad_output, p.expected_output, c.task_type,
            c.severity, self.source, c.product, c.feature, c.model_version, status, "",
            _json(c.metadata), _json(p.flags), p.fingerprint, p.search_text, 1,
            self.user_id, self.user_id, self.now, self.now, self.import_job_id,
        )  # fmt: skip

    def _copy(self, rows: list[NewCase]) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [CASE_TABLE, len(rows)],
            )
            ids = [r[0] for r in cursor.fetchall()]
            raw = cursor.cursor  # the psycopg 3 cursor under Django's wrapper
            with raw.copy(f"COPY {CASE_TABLE} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for case_id, case in zip(ids, rows, strict=True):
                    copy.write_row(self._row(case_id, case))
            links = [(i, self.tag_ids[t]) for i, c in zip(ids, rows, strict=True) for t in c.tags]
            if links:
                with raw.copy(f"COPY {TAG_LINK_TABLE} (errorcase_id, tag_id) FROM STDIN") as copy:
                    for link in links:
                        copy.write_row(link)
            with raw.copy(
                f"COPY {EVENT_TABLE} (case_id, actor_id, at, kind, changes, note) FROM STDIN"
            ) as copy:
                for case_id, case in zip(ids, rows, strict=True):
                    copy.write_row((case_id, self.user_id, self.now, "created", "{}", self._note(case)))
        self.ids.extend(ids)

    def _note(self, case: NewCase) -> str:
        return f"source: {self.source}" + (f", {case.origin}" if case.origin else "")

    def _bulk_create(self, rows: list[NewCase]) -> None:
        objs = [ErrorCase(**dict(zip(COLUMNS[1:], self._row(None, c)[1:], strict=True))) for c in rows]
        for obj in objs:  # the ORM wants Python values for JSON fields, not the text COPY takes
            obj.messages, obj.metadata, obj.flags = (
                json.loads(obj.messages),
                json.loads(obj.metadata),
                json.loads(obj.flags),
            )
        created = ErrorCase.objects.bulk_create(objs, batch_size=1000)
        Link = ErrorCase.tags.through
        Link.objects.bulk_create(
            [
                Link(errorcase_id=o.pk, tag_id=self.tag_ids[t])
                for o, c in zip(created, rows, strict=True)
                for t in c.tags
            ]
        )
        CaseEvent.objects.bulk_create(
            [
                CaseEvent(
                    case_id=o.pk, actor_id=self.user_id, at=self.now, kind="created", note=self._note(c)
                )
                for o, c in zip(created, rows, strict=True)
            ]  # fmt: skip
        )
        self.ids.extend(o.pk for o in created)
