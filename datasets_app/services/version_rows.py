"""The rows of a version in and out of the database: the COPY writer, the data card's tallies, the content hash,
and Examples read back (to extend a version, replay it, or reuse its test split)."""

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterator

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
    """Buffers Examples and writes them with COPY (PostgreSQL) or bulk_create, in the order they arrive."""

    def __init__(self, version: DatasetVersion):
        self.version_id, self.pending, self.count = version.pk, [], 0

    def add(self, example: Example) -> None:
        self.pending.append(example)
        if len(self.pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        rows = [self._row(self.count + i, e) for i, e in enumerate(self.pending)]
        self.count += len(self.pending)
        self.pending = []
        if not rows:
            return
        if connection.vendor == "postgresql":
            columns = ", ".join(f'"{c}"' for c in COLUMNS)
            with (
                connection.cursor() as cursor,
                cursor.cursor.copy(f"COPY {EXAMPLE_TABLE} ({columns}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
        else:
            DatasetExample.objects.bulk_create(
                [DatasetExample(**dict(zip(COLUMNS, _python(row), strict=True))) for row in rows],
                batch_size=1000,
            )

    def _row(self, position: int, e: Example) -> tuple:
        case_id = e.ref.get("case") if e.origin in ("case", "version") else None
        return (self.version_id, position, e.split, orjson.dumps(e.fields).decode(), e.tokens, e.origin,
                orjson.dumps(e.ref).decode(), case_id, e.augmented, e.group, e.category[:100], e.key)  # fmt: skip


def _python(row: tuple) -> tuple:
    return (*row[:3], json.loads(row[3]), *row[4:6], json.loads(row[6]), *row[7:])


class ContentHasher:
    """sha256 over the canonical JSON of each example (split, task type, fields, augmentation) in order."""

    def __init__(self):
        self.digest = hashlib.sha256()

    def add(self, e: Example) -> None:
        from datasets_app.pipeline.exports import canonical_row

        self.digest.update(orjson.dumps(canonical_row(e), option=orjson.OPT_SORT_KEYS) + b"\n")

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
