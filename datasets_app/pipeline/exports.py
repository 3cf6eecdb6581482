"""A dataset version's content hash and its exports (Django-free).

`export_all` streams the examples once (1M rows fit: at most one record batch per split is held) and writes

    <out>/jsonl/{train,validation,test}.jsonl        one training row per line (formats_columns.py shapes)
    <out>/parquet/{train,validation,test}.parquet    zstd-compressed, one row group per record batch
    <out>/hf/                                        a DatasetDict folder that `datasets.load_from_disk` opens

Every split gets its files even when it has no rows. The same examples in the same order give the same bytes.
The hf folder is written here in the layout `save_to_disk` produces (dataset_dict.json; per split state.json,
dataset_info.json and data-NNNNN-of-NNNNN.arrow Arrow IPC streams, shards of at most SHARD_BYTES) rather than
by `save_to_disk` itself, because that needs the whole table first and stores a fingerprint that need not be
reproducible; here the fingerprint is the first 16 hex digits of the split's data sha256.

The sha256 of a format's folder is the sha256 of its manifest: one line "<sha256 of file> <bytes> <relative
path>\\n" per file, sorted by the path (POSIX separators) — so one file's hash can be checked on its own.
"""

import hashlib
import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from datasets_app.pipeline.formats_columns import ColumnBuffer, arrow_schema, features_dict, training_row
from datasets_app.pipeline.types import SPLITS, TASK_TYPES, Example

FORMATS = ("jsonl", "parquet", "hf")
BATCH_ROWS = 32_768  # rows per record batch / Parquet row group ...
BATCH_BYTES = 32 * 1024 * 1024  # ... or fewer when their JSON passes this
JSONL_BUFFER = 1024 * 1024
SHARD_BYTES = 500 * 1000 * 1000  # save_to_disk's default max_shard_size ("500MB")
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3}


def canonical_row(example: Example) -> dict:
    """What the content hash covers of one example: split, task type, fields and how it was made."""
    return {"split": example.split, "task_type": example.task_type, "fields": example.fields,
            "augmented": example.augmented}  # fmt: skip


def canonical_bytes(example: Example) -> bytes:
    """The canonical JSON line: sorted keys, non-ASCII kept, no spaces (orjson), then "\\n"."""
    return orjson.dumps(canonical_row(example), option=orjson.OPT_SORT_KEYS) + b"\n"


def content_sha256(examples: Iterable[Example]) -> str:
    """The version's content hash: sha256 over the canonical JSON lines of the examples in the given order."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(canonical_bytes(example))
    return digest.hexdigest()


def export_jsonl(examples: Iterable[Example], path: Path, task_type: str) -> dict:
    """All `examples` (whatever their split) as one JSONL file of training rows: {"path", "sha256", "bytes", "rows"}."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with open(path, "wb") as out:
        buffer = bytearray()
        for example in examples:
            _check(example, task_type)
            buffer += orjson.dumps(training_row(example.fields, task_type)) + b"\n"
            rows += 1
            if len(buffer) >= JSONL_BUFFER:
                out.write(buffer)
                buffer.clear()
        out.write(buffer)
    sha256, size = file_sha256(path)
    return {"path": str(path), "sha256": sha256, "bytes": size, "rows": rows}


def export_all(examples: Iterable[Example], out_dir: Path, task_type: str) -> dict[str, dict]:
    """Write the jsonl, parquet and hf exports of `examples` (each with its split set) under `out_dir`.

    Returns {format: {"path": folder, "sha256": of the folder's manifest, "bytes": total, "rows": {split: n},
    "files": {relative path: {"sha256", "bytes"}}}}; the paths are strings (JSON-ready).
    """
    if task_type not in TASK_TYPES:
        raise ValueError(f"unknown task type {task_type!r}")
    out_dir = Path(out_dir)
    for fmt in FORMATS:
        shutil.rmtree(out_dir / fmt, ignore_errors=True)  # nothing stale may enter a folder's hash
        (out_dir / fmt).mkdir(parents=True)
    schema = arrow_schema(task_type)
    writers = {split: _SplitWriter(out_dir, split, schema) for split in SPLITS}
    try:
        for example in examples:
            writer = writers.get(example.split)
            if writer is None or example.task_type != task_type:
                _check(example, task_type)
                raise ValueError(f"example {example.ref} has split {example.split!r}, not one of {SPLITS}")
            writer.add(training_row(example.fields, task_type))
    finally:
        for writer in writers.values():
            writer.close()
    _write_json(out_dir / "hf" / "dataset_dict.json", {"splits": list(SPLITS)})
    rows = {split: writer.rows for split, writer in writers.items()}
    return {fmt: {**folder_sha256(out_dir / fmt), "rows": rows} for fmt in FORMATS}


def _check(example: Example, task_type: str) -> None:
    if example.task_type != task_type:
        raise ValueError(f"example {example.ref} is {example.task_type}, the export {task_type}")


class _SplitWriter:
    """One split's three outputs, fed row by row; a record batch at a time goes to Parquet and the .arrow shard."""

    def __init__(self, out_dir: Path, split: str, schema: pa.Schema):
        self.split, self.schema, self.rows = split, schema, 0
        self.jsonl = open(out_dir / "jsonl" / f"{split}.jsonl", "wb")  # noqa: SIM115 — closed in close()
        self.lines = bytearray()
        self.parquet = pq.ParquetWriter(out_dir / "parquet" / f"{split}.parquet", schema, **PARQUET_OPTIONS)
        self.hf_dir = out_dir / "hf" / split
        self.hf_dir.mkdir()
        self.shards: list[Path] = []
        self.shard = self.sink = None
        self.columns = ColumnBuffer(schema)
        self.pending_bytes = 0

    def add(self, row: dict) -> None:
        line = orjson.dumps(row)
        self.lines += line
        self.lines += b"\n"
        if len(self.lines) >= JSONL_BUFFER:
            self.jsonl.write(self.lines)
            self.lines.clear()
        self.columns.add(row)
        self.rows += 1
        self.pending_bytes += len(line)
        if self.columns.rows >= BATCH_ROWS or self.pending_bytes >= BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        self.pending_bytes = 0
        batch = self.columns.batch()
        self.parquet.write_batch(batch)
        if self.shard is None:
            self._open_shard()
        self.shard.write_batch(batch)
        if self.sink.tell() >= SHARD_BYTES:
            self._close_shard()

    def _open_shard(self) -> None:
        path = self.hf_dir / f"shard-{len(self.shards):05d}.arrow.part"
        self.shards.append(path)
        self.sink = pa.OSFile(str(path), "wb")
        self.shard = pa.ipc.new_stream(self.sink, self.schema)

    def _close_shard(self) -> None:
        self.shard.close()
        self.sink.close()
        self.shard = self.sink = None

    def close(self) -> None:
        if self.jsonl.closed:
            return
        if self.columns.rows:
            self._flush()
        if not self.shards:
            self._open_shard()  # an empty split still gets a schema-only .arrow shard (and Parquet file)
        if self.shard is not None:
            self._close_shard()
        self.parquet.close()
        self.jsonl.write(self.lines)
        self.jsonl.close()
        self._finish_hf()

    def _finish_hf(self) -> None:
        names, digest = [], hashlib.sha256()
        for i, part in enumerate(self.shards):
            name = f"data-{i:05d}-of-{len(self.shards):05d}.arrow"
            part.rename(self.hf_dir / name)
            names.append(name)
            digest.update(file_sha256(self.hf_dir / name)[0].encode())
        state = {"_data_files": [{"filename": n} for n in names], "_fingerprint": digest.hexdigest()[:16],
                 "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
                 "_output_all_columns": False, "_split": self.split}  # fmt: skip
        _write_json(self.hf_dir / "state.json", state)
        info = {"citation": "", "description": "", "features": features_dict(self.schema), "homepage": "",
                "license": ""}  # fmt: skip
        _write_json(self.hf_dir / "dataset_info.json", info)


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def file_sha256(path: Path) -> tuple[str, int]:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest(), path.stat().st_size


def folder_sha256(folder: Path) -> dict:
    """{"path", "sha256" (of the manifest, see the module docstring), "bytes", "files": {path: {sha256, bytes}}}."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        sha256, size = file_sha256(path)
        files[path.relative_to(folder).as_posix()] = {"sha256": sha256, "bytes": size}
    manifest = "".join(f"{f['sha256']} {f['bytes']} {name}\n" for name, f in sorted(files.items()))
    return {"path": str(folder), "sha256": hashlib.sha256(manifest.encode()).hexdigest(),
            "bytes": sum(f["bytes"] for f in files.values()), "files": files}  # fmt: skip
