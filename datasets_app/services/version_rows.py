"""The rows of a version in and out of the database: the COPY writer, the data card's tallies, the content hash,
and Examples read back (to extend a version, replay it, or reuse its test split)."""

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack

import orjson
from django.db import connection

from datasets_app.models import DatasetExample, DatasetVersion
from datasets_app.pipeline.types import SPLITS, Example

EXAMPLE_TABLE = DatasetExample._meta.db_table
COLUMNS = ("version_id", "position", "split", "fields", "tokens", "origin", "ref", "case_id", "augmented", "group",
           "category", "key")  # fmt: skip
BATCH = 5000
TOKEN_BINS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)  # upper edges; the last bin is "more"
TOP_CATEGORIES = 30


class ExampleWriter:
    """Writes Examples in the order they arrive: on PostgreSQL through one COPY kept open from the first row to
    `close()`, fed a batch of pre-encoded text-format lines at a time, so the server parses one batch while the
    caller makes the next (a COPY per batch left each side waiting on the other); elsewhere with bulk_create.
    Nothing else may use the connection until `close()`; use it as a context manager (an error aborts the COPY)."""

    def __init__(self, version: DatasetVersion):
        self.version_id, self.pending, self.count = version.pk, [], 0
        self._copy = ExitStack()
        self._stream = None
        self._prefix = b"%d\t" % version.pk

    def add(self, example: Example) -> None:
        self.pending.append(example)
        if len(self.pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        if not pending:
            return
        if connection.vendor != "postgresql":
            rows = [self._row(self.count + i, e) for i, e in enumerate(pending)]
            DatasetExample.objects.bulk_create(
                [DatasetExample(**dict(zip(COLUMNS, _python(row), strict=True))) for row in rows],
                batch_size=1000,
            )
        else:
            if self._stream is None:
                columns = ", ".join(f'"{c}"' for c in COLUMNS)
                cursor = self._copy.enter_context(connection.cursor())
                self._stream = self._copy.enter_context(
                    cursor.cursor.copy(f"COPY {EXAMPLE_TABLE} ({columns}) FROM STDIN")
                )
            self._stream.write(b"".join([self._line(self.count + i, e) for i, e in enumerate(pending)]))
        self.count += len(pending)

    def close(self) -> None:
        """Write what is pending and end the COPY (the server then has every row)."""
        self.flush()
        self._stream = None
        self._copy.close()

    def __enter__(self) -> "ExampleWriter":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._stream = None
            self._copy.__exit__(*exc)  # the COPY is abandoned: the server discards its rows

    def _line(self, position: int, e: Example) -> bytes:
        """One row in COPY's text format. orjson escapes every control character inside JSON, so only the
        backslashes of a JSON text need doubling; free texts go through `_text`."""
        case_id = e.ref.get("case") if e.origin in ("case", "version") else None
        return b"%s%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n" % (
            self._prefix, position, _text(e.split), orjson.dumps(e.fields).replace(b"\\", b"\\\\"), e.tokens,
            _text(e.origin), orjson.dumps(e.ref).replace(b"\\", b"\\\\"),
            b"\\N" if case_id is None else str(case_id).encode(), _text(e.augmented), e.group, _text(e.category[:100]),
            _text(e.key),
        )  # fmt: skip

    def _row(self, position: int, e: Example) -> tuple:
        case_id = e.ref.get("case") if e.origin in ("case", "version") else None
        return (self.version_id, position, e.split, orjson.dumps(e.fields).decode(), e.tokens, e.origin,
                orjson.dumps(e.ref).decode(), case_id, e.augmented, e.group, e.category[:100], e.key)  # fmt: skip


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: str) -> bytes:
    """A text field in COPY's text format (backslash, tab, newline and carriage return escaped)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = value.translate(_COPY_ESCAPES)
    return value.encode()


def _python(row: tuple) -> tuple:
    return (*row[:3], json.loads(row[3]), *row[4:6], json.loads(row[6]), *row[7:])


class ContentHasher:
    """sha256 over the canonical JSON of each example (split, task type, fields, augmentation) in order."""

    def __init__(self):
        from datasets_app.pipeline.exports import canonical_bytes  # (pyarrow stays out of the web process)

        self.digest, self.line = hashlib.sha256(), canonical_bytes

    def add(self, e: Example) -> None:
        self.digest.update(self.line(e))

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


class CardBuilder:
    """What the data card shows, tallied while the rows are written."""

    def __init__(self):
        self.splits: Counter = Counter()
        self.categories: dict[str, Counter] = defaultdict(Counter)
        self.tokens: dict[str, list[int]] = {s: [0] * (len(TOKEN_BINS) + 1) for s in SPLITS}
        self.token_sum: Counter = Counter()
        self.origins: Counter = Counter()
        self.augmented: Counter = Counter()
        self.files: Counter = Counter()
        self.cases: set[int] = set()

    def add(self, e: Example) -> None:
        self.splits[e.split] += 1
        self.categories[e.split][e.category or "(none)"] += 1
        self.tokens[e.split][_bin(e.tokens)] += 1
        self.token_sum[e.split] += e.tokens
        self.origins[e.origin] += 1
        if e.augmented:
            self.augmented[e.augmented] += 1
        if "file" in e.ref:
            self.files[e.ref["file"]] += 1
        if "case" in e.ref:
            self.cases.add(e.ref["case"])

    def counts(self) -> dict[str, int]:
        return {split: self.splits.get(split, 0) for split in SPLITS}

    def as_dict(self) -> dict:
        top = Counter()
        for counter in self.categories.values():
            top.update(counter)
        names = [name for name, _ in top.most_common(TOP_CATEGORIES)]
        return {
            "categories": {
                "names": names,
                "by_split": {s: [self.categories[s].get(n, 0) for n in names] for s in SPLITS},
            },  # fmt: skip
            "token_bins": [f"≤{edge}" for edge in TOKEN_BINS] + [f">{TOKEN_BINS[-1]}"],
            "token_hist": self.tokens,
            "tokens_mean": {
                s: round(self.token_sum[s] / self.splits[s], 1) if self.splits[s] else 0 for s in SPLITS
            },
            "origins": dict(self.origins),
            "augmented": dict(self.augmented),
            "files": dict(self.files),
            "cases": len(self.cases),
        }


def _bin(tokens: int) -> int:
    for i, edge in enumerate(TOKEN_BINS):
        if tokens <= edge:
            return i
    return len(TOKEN_BINS)


def version_examples(
    version_id: int, *, split: str | None = None, originals_only: bool = False
) -> Iterator[Example]:
    """A version's rows as Examples, in order (origin and ref kept, so lineage survives an extension)."""
    rows = DatasetExample.objects.filter(version_id=version_id).order_by("position")
    if split:
        rows = rows.filter(split=split)
    if originals_only:
        rows = rows.filter(augmented="")
    task_type = (
        DatasetVersion.objects.filter(pk=version_id).values_list("dataset__task_type", flat=True).get()
    )
    fields = ("fields", "origin", "ref", "category", "augmented", "group", "tokens", "split", "key")
    for row in rows.values_list(*fields).iterator(chunk_size=2000):
        data, origin, ref, category, augmented, group, tokens, row_split, key = row
        yield Example(task_type=task_type, fields=data, origin=origin, ref=ref, category=category,
                      augmented=augmented, group=group, tokens=tokens, split=row_split, key=key)  # fmt: skip
