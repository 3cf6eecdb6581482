"""Streaming row readers for source files: each yields (line, row) with row a dict, or (line, reason) for a line
that cannot be read at all; a file that cannot be read at all raises Unreadable.

Nothing holds more than one line (JSONL/CSV, at most MAX_LINE_BYTES) or one batch (Parquet/Arrow, BATCH_ROWS rows)
in memory, except a JSON array's current item.
Line numbers: JSONL — the physical line; a JSON array — the item (1-based); CSV — the record, the header being 1
(what a spreadsheet shows as the row); Parquet/Arrow — the row index + 1.
"""

import codecs
import csv
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from datasets_app.ingest.readers import HEAD_BYTES, not_text, skip_rest_of_line, sniff_encoding, too_long

MAX_LINE_BYTES = 64 * 1024 * 1024
BATCH_ROWS = 4096
CHUNK_CHARS = 1024 * 1024
STRUCTURED = (
    "messages",
    "conversations",
    "history",
    "system",
    "tags",
    "category",
)  # empty CSV cell = no value

Rows = Iterator[tuple[int, dict | str]]


class Source(NamedTuple):
    unit: str  # what a number counts, for messages: "line" | "item" | "row"
    class_names: dict[str, list]  # column → names of a Hugging Face ClassLabel column
    rows: Rows


class Unreadable(Exception):
    """The whole file cannot be read (broken Parquet, not text, a JSON array cut short): the reason."""


def head_of(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(HEAD_BYTES)


def _text_encoding(head: bytes, size: int) -> str:
    reason = not_text(head)
    if reason:
        raise Unreadable(reason)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    return sniff_encoding(head, complete=size <= len(head))


# ---- JSON ----------------------------------------------------------------------------------------------------------


def json_source(path: Path) -> Source:
    """JSON Lines (one object per line), or — when the file starts with "[" — one JSON array of objects."""
    head = head_of(path)
    encoding = _text_encoding(head, path.stat().st_size)
    if head.removeprefix(codecs.BOM_UTF8).lstrip()[:1] == b"[":
        return Source("item", {}, _array_rows(path, encoding))
    return Source("line", {}, _lines_rows(path, encoding))


def _lines_rows(path: Path, encoding: str) -> Rows:
    with open(path, "rb") as f:
        readline = f.readline
        for number in itertools.count(1):
            line = readline(MAX_LINE_BYTES)
            if not line:
                return
            if len(line) == MAX_LINE_BYTES and not line.endswith(b"\n"):
                yield number, too_long(skip_rest_of_line(readline, line), MAX_LINE_BYTES)
                continue
            if number == 1:
                line = line.removeprefix(codecs.BOM_UTF8)
            if line.isspace():
                continue
            try:
                value = orjson.loads(line if encoding != "gb18030" else line.decode(encoding))
            except (orjson.JSONDecodeError, UnicodeDecodeError) as e:
                yield number, _json_reason(e)
                continue
            yield (number, value) if isinstance(value, dict) else (number, _not_object(value))


def _array_rows(path: Path, encoding: str) -> Rows:
    decoder = json.JSONDecoder()
    with open(path, encoding=encoding) as f:
        buffer, pos, eof, want, item = "", 0, False, CHUNK_CHARS, 0

        def more() -> bool:
            nonlocal buffer, pos, eof, want
            chunk = f.read(want)
            want = min(want * 2, MAX_LINE_BYTES)  # an item that spans chunks: ask for more each time
            eof = not chunk
            buffer, pos = buffer[pos:] + chunk, 0
            return not eof

        def skip_space() -> str:
            nonlocal pos
            while True:
                while pos < len(buffer) and buffer[pos] in " \t\r\n":
                    pos += 1
                if pos < len(buffer) or not more():
                    return buffer[pos : pos + 1]

        try:
            skip_space()
            pos += 1  # "["
            if skip_space() == "]":
                return
            while True:
                item += 1
                start = pos
                while True:
                    try:
                        _, end = decoder.raw_decode(buffer, pos)
                        break
                    except json.JSONDecodeError as e:
                        if eof or len(buffer) - start > MAX_LINE_BYTES or not more():
                            raise Unreadable(
                                f"item {item}: invalid JSON ({e.msg}); the array stops here"
                            ) from None
                        start = pos
                value = orjson.loads(buffer[start:end])  # orjson refuses lone surrogates the decoder accepts
                pos = end
                yield (item, value) if isinstance(value, dict) else (item, _not_object(value))
                want = CHUNK_CHARS
                separator = skip_space()
                pos += 1
                if separator == "]":
                    break
                if separator != ",":
                    raise Unreadable(f"item {item}: expected ',' or ']' after it in the JSON array")
                skip_space()
            if skip_space():
                raise Unreadable("text after the end of the JSON array")
        except orjson.JSONDecodeError as e:
            raise Unreadable(f"item {item}: {_json_reason(e)}") from None
        except UnicodeDecodeError:
            raise Unreadable(f"not valid {encoding} text (around item {item})") from None


def _json_reason(e: Exception) -> str:
    if isinstance(e, UnicodeDecodeError):
        return "not valid UTF-8 text"
    return f"invalid JSON: {e.msg} at column {e.colno}" if isinstance(e, json.JSONDecodeError) else str(e)


def _not_object(value) -> str:
    return f"expected a JSON object, got {type(value).__name__ if value is not None else 'null'}"


# ---- CSV -----------------------------------------------------------------------------------------------------------


def csv_source(path: Path) -> Source:
    """UTF-8 (with or without BOM) or GB18030; delimiter , TAB or ; (whichever the header uses most)."""
    return Source("line", {}, _csv_rows(path, _text_encoding(head_of(path), path.stat().st_size)))


def _csv_rows(path: Path, encoding: str) -> Rows:
    with open(path, encoding=encoding, newline="") as f:
        number = 1
        try:
            first = f.readline()
            counts = {d: first.count(d) for d in ",\t;"}
            delimiter = max(counts, key=counts.__getitem__) if any(counts.values()) else ","
            records = csv.reader(itertools.chain((first,), f), delimiter=delimiter)
            header = [cell.strip().lower() for cell in next(records, [])]
            if not any(header):
                raise Unreadable("the first row must name the columns (e.g. instruction,input,output)")
            while True:
                number += 1
                try:
                    cells = next(records)
                except StopIteration:
                    return
                except csv.Error as e:
                    yield number, f"unreadable CSV row: {e}"
                    continue
                if not any(cells):
                    continue
                if len(cells) > len(header):
                    yield number, f"{len(cells)} cells but the header names {len(header)} columns"
                    continue
                row = dict(zip(header, cells, strict=False))
                for name in STRUCTURED:
                    if row.get(name) == "":
                        del row[name]
                yield number, row
        except UnicodeDecodeError:
            raise Unreadable(f"not valid UTF-8 or GB18030 text (around line {number})") from None


# ---- Parquet, Arrow and Hugging Face folders -----------------------------------------------------------------------


def parquet_source(path: Path) -> Source:
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError) as e:
        raise Unreadable(f"not a readable Parquet file ({e})") from None
    return Source(
        "row",
        class_names(schema.metadata),
        _batches_rows(parquet.iter_batches(batch_size=BATCH_ROWS), "Parquet"),
    )


def arrow_source(paths: list[Path]) -> Source:
    """Arrow IPC files (the stream format save_to_disk writes, or the file format), read as one table."""
    readers = []
    for path in paths:
        try:
            source = pa.memory_map(str(path))
            try:
                readers.append(pa.ipc.open_stream(source))
            except pa.ArrowInvalid:
                readers.append(pa.ipc.open_file(pa.memory_map(str(path))))
        except (pa.ArrowException, OSError) as e:
            raise Unreadable(f"{path.name} is not a readable Arrow file ({e})") from None
    names = class_names(readers[0].schema.metadata) if readers else {}
    return Source(
        "row", names, _batches_rows(itertools.chain.from_iterable(map(_batches_of, readers)), "Arrow")
    )


def _batches_of(reader) -> Iterator:
    if isinstance(reader, pa.ipc.RecordBatchFileReader):
        return (reader.get_batch(i) for i in range(reader.num_record_batches))
    return iter(reader)


def _batches_rows(batches: Iterator, kind: str) -> Rows:
    number = 0
    try:
        for batch in batches:
            for offset in range(0, batch.num_rows, BATCH_ROWS):
                for row in batch.slice(offset, BATCH_ROWS).to_pylist():
                    number += 1
                    yield number, row
    except (pa.ArrowException, OSError) as e:
        raise Unreadable(f"the {kind} data is broken after row {number} ({e})") from None


def hf_parts(folder: Path) -> list[tuple[str | None, list[Path]]]:
    """[(split or None, its .arrow files)] of a save_to_disk folder (a DatasetDict or a single Dataset)."""
    if (folder / "dataset_dict.json").is_file():
        splits = _json_file(folder / "dataset_dict.json").get("splits")
        if not (isinstance(splits, list) and all(isinstance(s, str) for s in splits)):
            raise Unreadable("dataset_dict.json names no splits")
        return [(split, _arrow_files(_inside(folder, split))) for split in splits]
    if (folder / "state.json").is_file():
        return [(None, _arrow_files(folder))]
    raise Unreadable("not a Hugging Face datasets folder: it has no dataset_dict.json or state.json")


def _arrow_files(folder: Path) -> list[Path]:
    files = _json_file(folder / "state.json").get("_data_files")
    if not isinstance(files, list) or not all(
        isinstance(f, dict) and isinstance(f.get("filename"), str) for f in files
    ):
        raise Unreadable(f"{folder.name}/state.json lists no data files")
    return [_inside(folder, f["filename"]) for f in files]


def _inside(folder: Path, name: str) -> Path:
    """A path named by the folder's own JSON, refused unless it stays inside the folder."""
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.exists():
        raise Unreadable(f"{name!r} is not inside the folder")
    return path


def _json_file(path: Path) -> dict:
    try:
        value = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as e:
        raise Unreadable(f"{path.name} is not readable JSON ({e})") from None
    if not isinstance(value, dict):
        raise Unreadable(f"{path.name} is not a JSON object")
    return value


def class_names(metadata: dict | None) -> dict[str, list]:
    """column → names of a Hugging Face ClassLabel column, from the schema metadata datasets writes."""
    try:
        features = (
            orjson.loads((metadata or {}).get(b"huggingface", b"{}")).get("info", {}).get("features", {})
        )
        return {column: feature["names"] for column, feature in features.items()
                if isinstance(feature, dict) and feature.get("_type") == "ClassLabel"}  # fmt: skip
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
        return {}
