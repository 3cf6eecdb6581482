"""Reads of datasets and their versions for the pages and the API: the list, version choices, sample rows (keyset
pages by position), the diff against the parent version, and the data card's figures in the shape templates use."""

from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery

from datasets_app.models import Dataset, DatasetExample, DatasetVersion, SourceFile, VersionStatus
from datasets_app.pipeline.types import SPLITS

SAMPLE_ROWS = 10
DIFF_EXAMPLES = 10
TEXT_PREVIEW = 600
ROWS_MAX = 1000  # the API's largest page
DOWNLOADS = {"jsonl": "jsonl", "parquet": "parquet"}  # format -> file extension of one split's file


def dataset_list() -> list[Dataset]:
    """Every dataset with `n_versions`, `n_files` and `latest` (its newest version or None)."""
    newest = DatasetVersion.objects.filter(dataset=OuterRef("pk")).order_by("-number").values("pk")[:1]
    versions = DatasetVersion.objects.filter(dataset=OuterRef("pk")).values("dataset")
    files = SourceFile.objects.filter(dataset=OuterRef("pk")).values("dataset")
    datasets = list(
        Dataset.objects.annotate(
            latest_id=Subquery(newest),
            n_versions=Subquery(versions.annotate(n=Count("pk")).values("n")),
            n_files=Subquery(files.annotate(n=Count("pk")).values("n")),
        ).select_related("created_by")
    )
    latest = DatasetVersion.objects.in_bulk([d.latest_id for d in datasets if d.latest_id])
    for d in datasets:
        d.latest = latest.get(d.latest_id)
        d.n_versions, d.n_files = d.n_versions or 0, d.n_files or 0
    return datasets


def version_choices(dataset: Dataset, kind: str) -> list[tuple[int, str]]:
    """Ready versions a recipe may name: "parent" (this dataset's), "replay" (general datasets of the same task
    type), "pinned" (any dataset of the same task type, for its test split)."""
    ready = DatasetVersion.objects.filter(status=VersionStatus.READY).select_related("dataset")
    if kind == "parent":
        ready = ready.filter(dataset=dataset)
    elif kind == "replay":
        ready = ready.filter(dataset__task_type=dataset.task_type, dataset__is_general=True)
    else:
        ready = ready.filter(dataset__task_type=dataset.task_type)
    ready = ready.order_by("dataset__name", "-number")
    return [(v.pk, f"{v.dataset.name} v{v.number} ({sum(v.counts.values())} rows)") for v in ready]


# ---- rows ----------------------------------------------------------------------------------------------------------


@dataclass
class RowPage:
    rows: list
    next_after: int | None


def example_rows(version: DatasetVersion, *, split: str | None = None) -> QuerySet:
    rows = DatasetExample.objects.filter(version=version)
    return rows.filter(split=split) if split else rows


def row_page(version: DatasetVersion, *, split: str | None, after: int | None, limit: int) -> RowPage:
    """Rows after position `after` (keyset on the (version, split, position) index), in order."""
    page = []
    # Without a split, each split is read on its own index range and the three are merged: a walk over all rows
    # of a version by position has no index of its own and would sort the whole version for every page.
    for one in [split] if split else SPLITS:
        rows = example_rows(version, split=one).order_by("position")
        if after is not None:
            rows = rows.filter(position__gt=after)
        page += rows[: limit + 1]
    page.sort(key=lambda e: e.position)
    page = page[: limit + 1]
    more = len(page) > limit
    page = page[:limit]
    return RowPage(page, page[-1].position if more else None)


def row_dict(example: DatasetExample) -> dict:
    """One row for the API (JSON and JSONL)."""
    return {"position": example.position, "split": example.split, "fields": example.fields,
            "tokens": example.tokens, "origin": example.origin, "ref": example.ref,
            "category": example.category, "augmented": example.augmented, "key": example.key}  # fmt: skip


def _preview(text) -> str:
    text = text if isinstance(text, str) else str(text)
    return text if len(text) <= TEXT_PREVIEW else text[: TEXT_PREVIEW - 1] + "…"


def display_fields(fields: dict) -> list[dict]:
    """A row's fields for a template: [{"name", "text"} | {"name", "messages": [(role, text)]}], text shortened."""
    shown = []
    for name, value in (fields or {}).items():
        if isinstance(value, list) and all(isinstance(m, dict) for m in value):
            messages = [(str(m.get("role", "")), _preview(m.get("content", ""))) for m in value]
            shown.append({"name": name, "messages": messages})
        else:
            shown.append({"name": name, "text": _preview(value)})
    return shown


def source_view(ref: dict | None) -> dict:
    """Where a row came from, for a template: {"case": id} links to the case; {"file", "line"}; else the ref."""
    ref = ref if isinstance(ref, dict) else {}
    case = ref.get("case")
    if isinstance(case, int) and not isinstance(case, bool) and case > 0:
        return {"case": case}
    if ref.get("file"):
        return {"file": str(ref["file"]), "line": ref.get("line")}
    return {"other": ", ".join(f"{k} {v}" for k, v in ref.items())}


def sample_view(example: DatasetExample) -> dict:
    return {"position": example.position, "split": example.split, "fields": display_fields(example.fields),
            "tokens": example.tokens, "origin": example.origin, "augmented": example.augmented,
            "category": example.category, "source": source_view(example.ref), "ref": example.ref}  # fmt: skip


# ---- diff against the parent ---------------------------------------------------------------------------------------


@dataclass
class DiffPart:
    count: int = 0
    examples: list = field(default_factory=list)


@dataclass
class VersionDiff:
    parent: DatasetVersion | None
    added: DiffPart = field(default_factory=DiffPart)
    removed: DiffPart = field(default_factory=DiffPart)
    changed: DiffPart = field(default_factory=DiffPart)


def _same_key(rows: QuerySet) -> Exists:
    return Exists(rows.filter(key=OuterRef("key")))


def _same_source_other_key(rows: QuerySet) -> Exists:
    """A row of `rows` from the same case, or the same file and line, with other content."""
    from_a_source = Q(ref__has_key="case") | Q(ref__has_key="file")
    return Exists(rows.filter(from_a_source, ref=OuterRef("ref")).exclude(key=OuterRef("key")))


def version_diff(version: DatasetVersion) -> VersionDiff:
    """Rows against the parent version, three disjoint sets: changed = a row whose source (case, or file and
    line) the parent holds with other content; added = other rows whose content the parent lacks; removed = rows
    of the parent whose content and source this version lacks.

    Every condition is a plain (NOT) EXISTS, so PostgreSQL runs each as a hash (anti-)join: a negated EXISTS
    inside an OR would be re-run for every row instead (minutes at 30k rows)."""
    parent = version.parent
    if parent is None:
        return VersionDiff(None)
    mine, theirs = example_rows(version).order_by(), example_rows(parent).order_by()
    new, gone = mine.filter(~_same_key(theirs)), theirs.filter(~_same_key(mine))
    changed = new.filter(_same_source_other_key(theirs))
    added = new.filter(~_same_source_other_key(theirs))
    removed = gone.filter(~_same_source_other_key(mine))
    return VersionDiff(parent, _part(added), _part(removed), _part(changed, parent=parent))


def _part(rows: QuerySet, parent: DatasetVersion | None = None) -> DiffPart:
    examples = [sample_view(e) for e in rows.order_by("position")[:DIFF_EXAMPLES]]
    if parent is not None:  # changed rows: show what the parent held for the same source
        before = {}
        for old in example_rows(parent).filter(ref__in=[e["ref"] for e in examples]):
            before.setdefault(_ref_key(old.ref), display_fields(old.fields))
        for e in examples:
            e["before"] = before.get(_ref_key(e["ref"]), [])
    return DiffPart(rows.count(), examples)


def _ref_key(ref: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in (ref or {}).items()))


# ---- the data card -------------------------------------------------------------------------------------------------


def funnel(steps: list[dict]) -> list[dict]:
    """Per step: rows in → out, the kept share for a bar, and each drop reason with its examples."""
    rows = []
    for step in steps or []:
        rows_in, rows_out = step.get("rows_in", 0), step.get("rows_out", 0)
        examples = step.get("examples") or {}
        drops = [
            {"reason": reason, "label": reason.replace("_", " "), "n": n,
             "examples": [{"source": source_view(e.get("ref")), "fields": display_fields(e.get("fields"))}
                          for e in examples.get(reason, [])[:5]]}
            for reason, n in sorted((step.get("dropped") or {}).items(), key=lambda kv: -kv[1])
        ]  # fmt: skip
        rows.append({"name": step.get("name", "?"), "rows_in": rows_in, "rows_out": rows_out,
                     "pct": 100 * rows_out / rows_in if rows_in else 0, "drops": drops,
                     "notes": step.get("notes") or [], "seconds": step.get("seconds", 0)})  # fmt: skip
    return rows


def leakage_examples(leakage: dict) -> list[dict]:
    """The report's example pairs ({"test": ref, "train": ref, "kind"}) with both sources ready to link."""
    pairs = [e for e in (leakage or {}).get("examples") or [] if isinstance(e, dict)]
    return [{"kind": e.get("kind", ""), "test": source_view(e.get("test")), "train": source_view(e.get("train"))}
            for e in pairs]  # fmt: skip


def category_rows(card: dict) -> list[dict]:
    """Per category: the count per split and in all, with the bar width (share of the largest category)."""
    categories = card.get("categories") or {}
    names, by_split = categories.get("names") or [], categories.get("by_split") or {}
    rows = []
    for i, name in enumerate(names):
        per_split = [(by_split.get(s) or [0] * len(names))[i] for s in SPLITS]
        rows.append({"name": name, "splits": per_split, "total": sum(per_split)})
    top = max((r["total"] for r in rows), default=0)
    for r in rows:
        r["pct"] = 100 * r["total"] / top if top else 0
    return rows


def token_rows(card: dict) -> list[dict]:
    """The token histogram as a table: per bin the count of each split."""
    bins, hist = card.get("token_bins") or [], card.get("token_hist") or {}
    return [
        {"bin": b, "splits": [(hist.get(s) or [0] * len(bins))[i] for s in SPLITS]}
        for i, b in enumerate(bins)
    ]


def export_rows(version: DatasetVersion) -> list[dict]:
    """The stored exports with which splits can be downloaded as single files."""
    rows = []
    for fmt, info in sorted((version.exports or {}).items()):
        splits = [s for s in SPLITS if export_file(version, fmt, s) is not None] if fmt in DOWNLOADS else []
        rows.append({"format": fmt, "sha256": info.get("sha256", ""), "bytes": info.get("bytes", 0),
                     "files": info.get("files") or {}, "splits": splits})  # fmt: skip
    return rows


def _artifact(path: str | Path, inside: Path | None = None) -> Path | None:
    """A stored path as an existing file under ARTIFACT_ROOT (and under `inside`, when given), else None."""
    root = Path(settings.ARTIFACT_ROOT).resolve()
    try:
        resolved = Path(path).resolve()
    except (OSError, RuntimeError, TypeError):
        return None
    if not resolved.is_relative_to(root) or (inside is not None and not resolved.is_relative_to(inside)):
        return None
    return resolved if resolved.is_file() else None


def export_file(version: DatasetVersion, fmt: str, split: str) -> Path | None:
    """The file of one split of a stored export, or None: only names the stored exports dict lists are served."""
    if fmt not in DOWNLOADS or split not in SPLITS:
        return None
    info = (version.exports or {}).get(fmt)
    if not isinstance(info, dict):
        return None
    files = info.get("files") or {}
    entry = files.get(split)
    if isinstance(entry, str):  # {"files": {"train": "/path/train.jsonl"}}
        return _artifact(entry)
    if isinstance(entry, dict) and entry.get("path"):
        return _artifact(entry["path"])
    name = f"{split}.{DOWNLOADS[fmt]}"  # {"path": folder, "files": {"train.jsonl": {sha256, bytes}}}
    if name in files and info.get("path"):
        folder = Path(info["path"]).resolve()
        return _artifact(folder / name, inside=folder)
    return None


def hf_files(version: DatasetVersion) -> list[tuple[Path, str]]:
    """(file, name in the zip) for each file the stored hf export lists; [] when there is none."""
    info = (version.exports or {}).get("hf")
    if not isinstance(info, dict) or not info.get("path"):
        return []
    folder = Path(info["path"]).resolve()
    found = []
    for name in sorted(info.get("files") or {}):
        path = _artifact(folder / name, inside=folder)
        if path is None:
            return []  # a listed file is missing: no partial zip
        found.append((path, name))
    return found
