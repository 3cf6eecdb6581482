"""Streaming parser for uploaded error cases: a JSONL or CSV file in, `CaseRow`s and `LineError`s out, in file order.

    parsed = parse_file(upload, filename="cases.csv", known_tags={"hallucination"})
    parsed.format, parsed.encoding        # known before the first row is read: "csv", "gb18030"
    for item in parsed:                   # CaseRow | LineError, lazily, one line in memory at a time
        ...

JSONL (UTF-8, BOM tolerated), one object per line, in either form:
  chat: {"messages": [...], "expected", "tags", "severity", "task_type", "product", "feature", "model_version",
         "metadata"} -- the last assistant turn is the bad answer and is taken out of messages;
  flat: {"input", "output", "expected", "system"?, ...the same optional fields}.
CSV (UTF-8, UTF-8 with BOM or GB18030/GBK, guessed from the first 64 KB): a header row with at least input and
output, and optionally expected, system, tags (split on , ; | 、 and their full-width forms), severity, task_type,
product, feature, model_version, metadata (a JSON object). The delimiter is the one of , TAB ; that the header
uses most (comma when none).

Unknown JSONL fields and unknown CSV columns are kept in metadata (never dropped, never fatal), except names that
look like a misspelt known one ("severty", "expected_output"), which are reported so a typo cannot silently turn
into a default. Problems are reported per line and the next line is read as usual; only an unreadable header or a
file that is not text stops a file. A CSV "line" is a record (the row number a spreadsheet shows; a quoted cell may
span several physical lines); a problem in any physical line of a record rejects the whole record.
"""

import csv
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from datasets_app.ingest.readers import (
    BOM,
    HEAD_BYTES,
    line_reader,
    not_text,
    read_head,
    skip_rest_of_line,
    sniff_encoding,
    too_long,
)
from datasets_app.ingest.rows import (
    KNOWN_FIELDS,
    CaseRow,
    LineError,
    build_row,
    clip,
    decode_json,
    has_nul,
    kind,
    loads_line,
    normalise_tag,
    suggest,
)

JSONL_EXTENSIONS = frozenset(("jsonl", "json", "ndjson"))
CSV_COLUMNS = frozenset(KNOWN_FIELDS - {"messages"})
REQUIRED_COLUMNS = ("input", "output")
_TAG_SEPARATORS = str.maketrans({";": ",", "|": ",", "、": ",", "，": ",", "；": ",", "｜": ","})


@dataclass(slots=True)
class ParsedFile:
    """What was learnt from the start of the file, and the rows, read lazily (iterate once)."""

    format: str  # "jsonl" | "csv"
    encoding: str  # "utf-8" | "utf-8-sig" | "gb18030" ("" when the file is empty or not text)
    items: Iterator[CaseRow | LineError]

    def __iter__(self) -> Iterator[CaseRow | LineError]:
        return self.items

    def __next__(self) -> CaseRow | LineError:
        return next(self.items)


def detect_format(filename: str, first_bytes: bytes) -> str:
    """'jsonl' or 'csv': by extension (.jsonl .json .ndjson / .csv), else JSONL when the text starts with '{'."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension in JSONL_EXTENSIONS:
        return "jsonl"
    if extension == "csv":
        return "csv"
    return "jsonl" if first_bytes.removeprefix(BOM).lstrip().startswith(b"{") else "csv"


def parse_file(
    stream: BinaryIO, *, filename: str, known_tags: set[str], max_line_bytes: int = 1_048_576
) -> ParsedFile:
    """Reads the first 64 KB now (format, encoding) and the rest as the returned object is iterated.

    `stream` is read, never seeked or closed. `known_tags` are the tag names admins defined; a row naming
    another tag is rejected. A line longer than `max_line_bytes` is reported and skipped without being loaded.
    """
    if max_line_bytes < 1:
        raise ValueError("max_line_bytes must be positive")
    head = read_head(stream)
    file_format = detect_format(filename, head)
    if not head:
        return ParsedFile(file_format, "", iter([LineError(0, "(file)", "the file is empty")]))
    problem = not_text(head)
    if problem:
        return ParsedFile(file_format, "", iter([LineError(0, "(file)", problem)]))
    complete = len(head) < HEAD_BYTES
    has_bom = head.startswith(BOM)
    if has_bom:
        head = head[len(BOM) :]
    encoding = "utf-8" if file_format == "jsonl" else sniff_encoding(head, complete=complete)
    known = frozenset(normalise_tag(tag) for tag in known_tags)
    reader = line_reader(head, stream)
    if file_format == "jsonl":
        items = _jsonl_items(reader, max_line_bytes, known)
    else:
        items = _csv_items(reader, encoding, max_line_bytes, known)
    return ParsedFile(file_format, "utf-8-sig" if has_bom else encoding, items)


def _jsonl_items(reader, max_line_bytes: int, known_tags: frozenset[str]) -> Iterator[CaseRow | LineError]:
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
            yield LineError(
                number, "(line)", too_long(size, max_line_bytes), clip(data[:2000].decode("utf-8", "replace"))
            )
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
        except ValueError as e:
            yield LineError(number, "(line)", _json_reason(e), clip(raw))
            continue
        if type(obj) is not dict:
            yield LineError(number, "(line)", f"each line must be a JSON object, got {kind(obj)}", clip(raw))
            continue
        errors: list[LineError] = []
        if "\\u0000" in text and has_nul(obj):
            errors.append(
                LineError(number, "(line)", "the line holds the character U+0000, which cannot be stored")
            )
        row = build_row(obj, number, raw, known_tags, errors)
        if row is not None:
            yield row
            continue
        raw = clip(raw)
        for error in errors:
            error.raw = raw
            yield error
    if not found:
        yield LineError(0, "(file)", "the file has no cases, only blank lines")


def _decoded_lines(
    reader, encoding: str, max_line_bytes: int, pending: list, problems: list
) -> Iterator[str]:
    """Physical lines for the csv module, decoded one by one, each appended to `pending` (the record's raw text).

    A line that is too long, badly encoded or holds NUL is recorded in `problems` and replaced by an empty
    line, so the csv reader stays in step and the record it belongs to is rejected.
    """
    readline = reader.readline
    limit = max_line_bytes + 1
    label = "UTF-8" if encoding == "utf-8" else encoding.upper()
    while True:
        data = readline(limit)
        if not data:
            return
        if len(data) == limit and data[-1] != 10:
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


@dataclass(slots=True)
class _Columns:
    width: int  # cells per row, as in the header
    known: list[tuple[int, str]]  # (index, field)
    extras: list[tuple[int, str]]  # (index, header text): kept in metadata


def _read_header(cells: list[str], number: int) -> tuple[_Columns | None, list[LineError]]:
    errors = []
    known, extras, seen = [], [], set()
    for i, cell in enumerate(cells):
        title = cell.strip().lstrip("\ufeff").strip()
        name = title.lower()
        if not name:
            continue  # spreadsheets often export empty trailing columns
        if name in seen:
            errors.append(
                LineError(number, "(file)", f"the column '{title}' appears more than once in the header")
            )
            continue
        seen.add(name)
        if name in CSV_COLUMNS:
            known.append((i, name))
        elif name == "messages":
            errors.append(
                LineError(
                    number,
                    "(file)",
                    "a CSV file has input and output columns; messages (the chat form) is for JSONL files",
                )
            )
        elif (meant := suggest(name)) is not None:
            errors.append(LineError(number, "(file)", f"unknown column '{title}'; did you mean '{meant}'?"))
        else:
            extras.append((i, title))
    missing = [name for name in REQUIRED_COLUMNS if name not in seen]
    if missing:
        found = ", ".join(cell.strip() for cell in cells if cell.strip()) or "nothing"
        errors.append(
            LineError(
                number,
                "(file)",
                f"the header row must name the columns input and output; missing: {', '.join(missing)} (found: {found})",
            )
        )
    return (None if errors else _Columns(len(cells), known, extras)), errors


def _csv_items(
    reader, encoding: str, max_line_bytes: int, known_tags: frozenset[str]
) -> Iterator[CaseRow | LineError]:
    pending: list[str] = []
    problems: list[tuple[str, str]] = []
    lines = _decoded_lines(reader, encoding, max_line_bytes, pending, problems)
    first = next(lines, None)
    if first is None:
        yield LineError(0, "(file)", "the file has no cases, only blank lines")
        return
    rows = csv.reader(itertools.chain((first,), lines), delimiter=_delimiter(first))
    number = 0
    columns: _Columns | None = None
    found = False
    while True:
        try:
            cells = next(rows)
        except StopIteration:
            break
        except csv.Error as e:
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
                yield LineError(number, "(file)", "the header row could not be read; nothing else was read")
                return
            continue
        if not any(cells):
            continue  # a blank line, or a row of empty cells
        if columns is None:
            columns, errors = _read_header(cells, number)
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
        row = build_row(_row_object(cells, columns, number, errors), number, raw, known_tags, errors)
        if row is not None:
            yield row
            continue
        raw = clip(raw)
        for error in errors:
            error.raw = raw
            yield error
    if columns is None:
        yield LineError(0, "(file)", "the file has no cases, only blank lines")
    elif not found:
        yield LineError(0, "(file)", "the file has a header row but no cases")


def _row_object(cells: list[str], columns: _Columns, number: int, errors: list) -> dict:
    """A CSV row as the object the flat JSONL form would give, so one validation serves both."""
    obj = {name: cells[i] for i, name in columns.known}
    tags = obj.get("tags")
    if tags is not None:
        obj["tags"] = tags.translate(_TAG_SEPARATORS).split(",")
    metadata = obj.get("metadata")
    if metadata is not None:
        if not metadata.strip():
            metadata = None
        else:
            try:
                metadata = decode_json(metadata)
            except ValueError as e:
                errors.append(
                    LineError(number, "metadata", f"metadata is not a JSON object: {_json_reason(e)}")
                )
                metadata = None
        obj["metadata"] = metadata
    extras = {title: cells[i] for i, title in columns.extras if cells[i]}
    if extras:
        if type(metadata) is dict:
            extras.update(metadata)  # the metadata column's own keys win
        if metadata is None or type(metadata) is dict:
            obj["metadata"] = extras
    return obj


def _delimiter(first_line: str) -> str:
    counts = {delimiter: first_line.count(delimiter) for delimiter in ",\t;"}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def _json_reason(error: ValueError) -> str:
    if hasattr(error, "colno"):
        return f"invalid JSON: {error.msg} at column {error.colno}"
    return f"invalid JSON: {error}"
