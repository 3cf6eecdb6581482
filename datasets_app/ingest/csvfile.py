"""CSV: a header row, then one case per record, turned into the flat form's object so one validation serves both.

Physical lines are read as bytes (at most max_line_bytes each) and decoded one by one with the detected encoding
(a newline byte never occurs inside a UTF-8 or GB18030 character), then handed to the csv module. A line that
cannot be used is replaced by an empty one so the reader stays in step, and the record it belongs to is rejected
with the line's problem. A "line" number is a record number (what a spreadsheet shows as the row; a quoted cell
may span several physical lines); blank records count, the header is usually 1.
"""

import csv
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from datasets_app.ingest.build import build_row
from datasets_app.ingest.readers import skip_rest_of_line, too_long
from datasets_app.ingest.rows import (
    KNOWN_FIELDS,
    UNSTORABLE_ESCAPE,
    CaseRow,
    LineError,
    clip,
    decode_json,
    json_reason,
    quote,
    row_or_errors,
    suggest,
    unstorable,
)

COLUMNS = KNOWN_FIELDS - {"messages"}
REQUIRED_COLUMNS = ("input", "output")
TAG_SEPARATORS = re.compile("[,;|、，；｜]")


@dataclass(slots=True)
class Columns:
    width: int  # cells per row, as in the header
    known: list[tuple[int, str]]  # (index, field)
    extras: list[tuple[int, str]]  # (index, header text): kept in metadata


def csv_items(
    reader, encoding: str, max_line_bytes: int, known_tags: frozenset[str]
) -> Iterator[CaseRow | LineError]:
    pending: list[str] = []  # the physical lines of the record being read
    problems: list[tuple[str, str]] = []  # (reason, line text) of its unusable lines
    lines = _decoded_lines(reader, encoding, max_line_bytes, pending, problems)
    first = next(lines, None)
    if first is None:
        yield LineError(0, "(file)", "the file has no cases, only blank lines")
        return
    records = csv.reader(itertools.chain((first,), lines), delimiter=_delimiter(first))
    number = 0
    columns: Columns | None = None
    found = False
    while True:
        try:
            cells = next(records)
        except StopIteration:
            break
        except csv.Error as e:  # e.g. a cell over the csv module's field size limit (131,072 characters)
            number += 1
            found = True
            yield LineError(
                number, "(line)", f"unreadable CSV row: {e}", clip("".join(pending).rstrip("\r\n"))
            )
            pending.clear()
            problems.clear()
            continue
        number += 1
        raw = (pending[0] if len(pending) == 1 else "".join(pending)).rstrip("\r\n")
        pending.clear()
        if problems:
            found = True
            for reason, text in problems:
                yield LineError(number, "(line)", reason, clip(text.rstrip("\r\n")))
            problems.clear()
            if columns is None:
                yield LineError(number, "(file)", "the header row could not be read, so nothing else was")
                return
            continue
        if not any(cells):
            continue  # a blank line, or a row of empty cells
        if columns is None:
            columns, errors = read_header(cells, number)
            if errors:
                yield from errors
                return
            continue
        found = True
        if len(cells) != columns.width:
            reason = f"row has {len(cells)} cells; the header has {columns.width}"
            yield LineError(number, "(line)", reason, clip(raw))
            continue
        errors = []
        row = build_row(row_object(cells, columns, number, errors), number, raw, known_tags, errors)
        yield from row_or_errors(row, errors, raw)
    if columns is None:
        yield LineError(0, "(file)", "the file has no cases, only blank lines")
    elif not found:
        yield LineError(0, "(file)", "the file has a header row but no cases")


def _decoded_lines(
    reader, encoding: str, max_line_bytes: int, pending: list, problems: list
) -> Iterator[str]:
    readline = reader.readline
    limit = max_line_bytes + 1
    label = "UTF-8" if encoding == "utf-8" else encoding.upper()
    while True:
        data = readline(limit)
        if not data:
            return
        if len(data) == limit and data[-1] != 10:  # no newline within the limit: an over-long line
            size = skip_rest_of_line(readline, data)
            problems.append((too_long(size, max_line_bytes), data[:2000].decode(encoding, "replace")))
            yield "\n"
            continue
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as e:
            problems.append(
                (f"invalid {label} at byte {e.start + 1} of the line", data.decode(encoding, "replace"))
            )
            yield "\n"
            continue
        if "\x00" in text:
            problems.append(("the line holds a NUL character, which cannot be stored", text))
            yield "\n"
            continue
        pending.append(text)
        yield text


def read_header(cells: list[str], number: int) -> tuple[Columns | None, list[LineError]]:
    """Maps header names (any case) to fields; unknown names become metadata keys, near-misses are errors."""
    errors = []
    known, extras, seen = [], [], set()
    for i, cell in enumerate(cells):
        title = cell.strip().lstrip("\ufeff").strip()
        name = title.lower()
        if not name:
            continue  # spreadsheets often export empty trailing columns
        if name in seen:
            errors.append(
                LineError(number, "(file)", f"the column {quote(title)} appears more than once in the header")
            )
            continue
        seen.add(name)
        if name in COLUMNS:
            known.append((i, name))
        elif name == "messages":
            reason = "a CSV file has input and output columns; messages (the chat form) is for JSONL files"
            errors.append(LineError(number, "(file)", reason))
        elif (meant := suggest(name)) is not None:
            errors.append(
                LineError(number, "(file)", f"unknown column {quote(title)}; did you mean '{meant}'?")
            )
        else:
            extras.append((i, title))
    missing = [name for name in REQUIRED_COLUMNS if name not in seen]
    if missing:
        found = ", ".join(cell.strip() for cell in cells if cell.strip()) or "nothing"
        reason = f"the header row must name the columns input and output; missing: {', '.join(missing)} (found: {found})"
        errors.append(LineError(number, "(file)", reason))
    return (None if errors else Columns(len(cells), known, extras)), errors


def row_object(cells: list[str], columns: Columns, number: int, errors: list) -> dict:
    """A CSV row as the flat form's object: empty optional cells are left out, tags split, metadata parsed."""
    obj = {name: cells[i] for i, name in columns.known if cells[i] or name in REQUIRED_COLUMNS}
    tags = obj.get("tags")
    if tags is not None:
        obj["tags"] = TAG_SEPARATORS.split(tags)
    metadata = obj.get("metadata")
    if metadata is not None and metadata.isspace():
        metadata = obj["metadata"] = None
    elif metadata is not None:
        text = metadata
        try:
            metadata = obj["metadata"] = decode_json(text)
        except (ValueError, RecursionError) as e:
            errors.append(LineError(number, "metadata", f"metadata must be a JSON object: {json_reason(e)}"))
            metadata = obj["metadata"] = None
        else:
            problem = UNSTORABLE_ESCAPE.search(text) and unstorable(metadata)
            if problem:
                errors.append(LineError(number, "metadata", problem))
    if columns.extras:
        extras = {title: cells[i] for i, title in columns.extras if cells[i]}
        if extras and (metadata is None or type(metadata) is dict):
            obj["metadata"] = extras | metadata if metadata else extras  # the metadata column's keys win
    return obj


def _delimiter(first_line: str) -> str:
    """The one of , TAB ; that the header line uses most; a comma when it uses none."""
    counts = {delimiter: first_line.count(delimiter) for delimiter in ",\t;"}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","
