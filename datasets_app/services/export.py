"""Export of approved cases: JSONL in chat format (the expected answer as the assistant turn) and CSV.

Streamed row by row. CSV cells that a spreadsheet would run as a formula (starting with = + - @, or a tab or
carriage return) are prefixed with a single quote, as OWASP recommends against CSV injection.
"""

import csv
import io
import json
from collections.abc import Iterator

from datasets_app.models import CaseStatus, ErrorCase
from datasets_app.selectors import CaseFilters, cases_filtered

CSV_COLUMNS = ["id", "system", "input", "expected", "bad_output", "tags", "severity", "task_type", "product", "feature",
               "model_version"]  # fmt: skip
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def approved_cases(filters: CaseFilters):
    filters.status = CaseStatus.APPROVED
    return cases_filtered(filters).order_by("pk").prefetch_related("tags")


def neutralise(cell: str) -> str:
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def _chat_record(case: ErrorCase) -> dict:
    return {
        "messages": [*case.messages, {"role": "assistant", "content": case.expected_output}],
        "id": case.pk,
        "task_type": case.task_type,
        "tags": [t.name for t in case.tags.all()],
        "severity": case.severity,
        "product": case.product,
        "feature": case.feature,
        "rejected_output": case.bad_output,
    }


def export_jsonl(filters: CaseFilters) -> Iterator[str]:
    for case in approved_cases(filters).iterator(chunk_size=2000):
        yield json.dumps(_chat_record(case), ensure_ascii=False) + "\n"


def _csv_row(case: ErrorCase) -> list[str]:
    system = "\n".join(m["content"] for m in case.messages if m["role"] == "system")
    cells = [system, case.user_input, case.expected_output, case.bad_output, ",".join(t.name for t in case.tags.all()),
             case.severity, case.task_type, case.product, case.feature, case.model_version]  # fmt: skip
    return [str(case.pk), *(neutralise(c) for c in cells)]


def export_csv(filters: CaseFilters) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")  # UTF-8 BOM: spreadsheet programs then read Chinese text correctly
    writer.writerow(CSV_COLUMNS)
    for case in approved_cases(filters).iterator(chunk_size=2000):
        writer.writerow(_csv_row(case))
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
