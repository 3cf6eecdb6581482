"""JSON Lines: one object per line, UTF-8. Each line is read as bytes (at most max_line_bytes) and decoded alone,
so a badly encoded or over-long line is reported and the next line is read as usual."""

from collections.abc import Iterator

from datasets_app.ingest.build import plain_row
from datasets_app.ingest.checks import checked_row
from datasets_app.ingest.readers import skip_rest_of_line, too_long
from datasets_app.ingest.rows import (
    UNSTORABLE_ESCAPE,
    CaseRow,
    LineError,
    clip,
    json_reason,
    kind,
    loads_line,
    row_or_errors,
    unstorable,
)


def jsonl_items(reader, max_line_bytes: int, known_tags: frozenset[str]) -> Iterator[CaseRow | LineError]:
    readline = reader.readline
    limit = max_line_bytes + 1
    number = 0
    found = False
    while True:
        data = readline(limit)
        if not data:
            break
        number += 1
        if len(data) == limit and data[-1] != 10:  # no newline within the limit: an over-long line
            size = skip_rest_of_line(readline, data)
            found = True
            raw = clip(data[:2000].decode("utf-8", "replace"))
            yield LineError(number, "(line)", too_long(size, max_line_bytes), raw)
            continue
        if data.isspace():
            continue
        found = True
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            reason = f"invalid UTF-8 at byte {e.start + 1} of the line (JSONL files must be UTF-8)"
            yield LineError(number, "(line)", reason, clip(data.decode("utf-8", "replace").rstrip("\r\n")))
            continue
        raw = text.rstrip("\r\n")
        try:
            obj = loads_line(text)
        except (ValueError, RecursionError) as e:
            yield LineError(number, "(line)", json_reason(e) + _array_hint(raw), clip(raw))
            continue
        if type(obj) is not dict:
            reason = f"each line must be a JSON object, got {kind(obj)}"
            if type(obj) is list and obj and type(obj[0]) is dict:
                reason += _array_hint(raw)
            yield LineError(number, "(line)", reason, clip(raw))
            continue
        problem = UNSTORABLE_ESCAPE.search(text) and unstorable(obj)
        if problem:
            errors = [LineError(number, "(line)", problem)]
        else:
            row = plain_row(obj, number, raw, known_tags)  # the common case, in one pass
            if row is not None:
                yield row
                continue
            errors = []
        row = checked_row(obj, number, raw, known_tags, errors)
        yield from row_or_errors(row, errors, raw)
    if not found:
        yield LineError(0, "(file)", "the file has no cases, only blank lines")


def _array_hint(raw: str) -> str:
    if raw.lstrip().startswith("["):
        return " (a JSON array? JSONL has one object per line, no surrounding [ ])"
    return ""
