"""Streaming parser for uploaded error cases: a JSONL or CSV file in, `CaseRow`s and `LineError`s out, in file order.

    parsed = parse_file(upload, filename="cases.csv", known_tags={"hallucination"})
    parsed.format, parsed.encoding        # known before the first row is read: "csv", "gb18030"
    for item in parsed:                   # CaseRow | LineError, lazily; one line in memory at a time
        ...

JSONL (UTF-8, BOM tolerated), one object per line, in either form:
  chat: {"messages": [...], "expected", "tags", "severity", "task_type", "product", "feature", "model_version",
         "metadata"}: the last assistant turn is the bad answer and is taken out of messages;
  flat: {"input", "output", "expected", "system"?, ...the same optional fields}.
CSV (UTF-8, UTF-8 with BOM, or GB18030/GBK, guessed from the first 64 KB): a header row with at least input and
output, and optionally expected, system, tags (split on , ; | 、 and their full-width forms), severity, task_type,
product, feature, model_version, metadata (a JSON object). The delimiter is the one of , TAB ; that the header
uses most (a comma when none).

Unknown JSONL fields and unknown CSV columns are kept in metadata (never dropped, never fatal), except names that
look like a misspelt known one ("severty", "expected_output"), which are reported so that a typo cannot silently
become a default. null means "not given" for optional fields. Severity and task type are matched ignoring case.
Problems are reported per line and the next line is read as usual; only a file that is not text or a bad CSV
header stops a file.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from datasets_app.ingest.csvfile import csv_items
from datasets_app.ingest.jsonlfile import jsonl_items
from datasets_app.ingest.readers import BOM, HEAD_BYTES, line_reader, not_text, read_head, sniff_encoding
from datasets_app.ingest.rows import CaseRow, LineError, normalise_tag

JSONL_EXTENSIONS = frozenset(("jsonl", "json", "ndjson"))


@dataclass(slots=True)
class ParsedFile:
    """What was learnt from the start of the file, and its rows, read lazily (iterate once)."""

    format: str  # "jsonl" | "csv"
    encoding: str  # "utf-8" | "utf-8-sig" | "gb18030"; "" when the file is empty or not text
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
    """Reads the first 64 KB now (format, encoding) and the rest as the returned ParsedFile is iterated.

    `stream` is only read: never seeked, never closed. `known_tags` are the tag names the admins defined (they
    are normalised here too); a row naming another tag is rejected. A line longer than `max_line_bytes` is
    reported and skipped without being held in memory.
    """
    if max_line_bytes < 1:
        raise ValueError("max_line_bytes must be at least 1")
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
    known = frozenset(normalise_tag(tag) for tag in known_tags)
    reader = line_reader(head, stream)
    if file_format == "jsonl":
        encoding = "utf-8"
        items = jsonl_items(reader, max_line_bytes, known)
    else:
        encoding = sniff_encoding(head, complete=complete)
        items = csv_items(reader, encoding, max_line_bytes, known)
    return ParsedFile(file_format, "utf-8-sig" if has_bom else encoding, items)
