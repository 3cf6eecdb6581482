"""A dataset version's recipe: which sources to read and how each build step is set, as plain dataclasses.

`Recipe.from_dict(d)` checks a JSON-like dict and raises `RecipeError` naming every problem at once, keyed by the
dotted path of the field (`"steps.split.train": ["ratios must sum to 1 (got 0.9)"]`); a missing key takes its
default. `Recipe.to_dict()` is the canonical form with every default filled in: store that, so a version's recipe
shows every setting it was built with. Problems that depend on the data (a split too small to stratify, a
tokenizer folder that will not load) are found by the build and raised as `BuildError`.
"""

import math
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from datetime import date
from types import NoneType, UnionType
from typing import Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from datasets_app.pipeline.types import TASK_TYPES

LANGUAGES = ("zh", "en", "other")
SENSITIVE_ACTIONS = ("mask", "drop", "off")


class RecipeError(ValueError):
    """Every problem of a recipe: {dotted field path: [messages]}."""

    def __init__(self, problems: dict[str, list[str]]):
        self.problems = problems
        super().__init__("; ".join(f"{path}: {msg}" for path, msgs in problems.items() for msg in msgs))


class _Part:
    def check(self) -> list[tuple[str, str]]:
        """(field name relative to this part, message) for each problem between fields or of range."""
        return []


# ---- sources ---------------------------------------------------------------------------------------------------


@dataclass
class CasesSource(_Part):
    """Approved error cases: any of `tags`, any of `products` (empty = all), created in [date_from, date_to]."""

    tags: list[str] = field(default_factory=list)
    products: list[str] = field(default_factory=list)
    date_from: str = ""  # "YYYY-MM-DD", inclusive; "" = no bound
    date_to: str = ""

    def check(self) -> list[tuple[str, str]]:
        problems, dates = [], {}
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            try:
                if value and len(value) != 10:
                    raise ValueError
                dates[name] = date.fromisoformat(value) if value else None
            except ValueError:
                problems.append((name, f"must be a date written YYYY-MM-DD, got {value!r}"))
        if dates.get("date_from") and dates.get("date_to") and dates["date_from"] > dates["date_to"]:
            problems.append(("date_to", "must not be before date_from"))
        return problems


@dataclass
class ReplaySource(_Part):
    """General rows of an earlier version added to train against forgetting: round(ratio × task rows) of them."""

    version: int  # a dataset version id
    ratio: float  # > 0 and ≤ 1

    def check(self) -> list[tuple[str, str]]:
        problems = [] if self.version > 0 else [("version", "must be a version id (a positive number)")]
        return problems + _ratio_problems(self.ratio, low_open=True)


@dataclass
class Sources(_Part):
    """Where rows come from: error cases (null = none), uploaded files by id, every row of a parent version."""

    cases: CasesSource | None = None
    files: list[int] = field(default_factory=list)
    parent_version: int | None = None
    replay: ReplaySource | None = None

    def check(self) -> list[tuple[str, str]]:
        problems = [
            (f"files[{i}]", "must be a file id (a positive number)")
            for i, f in enumerate(self.files)
            if f <= 0
        ]
        if len(set(self.files)) != len(self.files):
            problems.append(("files", "lists a file more than once"))
        if self.parent_version is not None and self.parent_version <= 0:
            problems.append(("parent_version", "must be a version id (a positive number)"))
        if self.cases is None and not self.files and self.parent_version is None:
            problems.append(("", "pick at least one source: cases, files or parent_version"))
        return problems


# ---- steps -----------------------------------------------------------------------------------------------------


@dataclass
class NormaliseStep(_Part):
    """Text clean-up on every text: NFKC (full-width forms become ASCII), invisible and control characters
    removed, whitespace collapsed (runs of spaces/tabs -> one space, lines trimmed, at most 2 newlines in a row)."""

    nfkc: bool = True
    strip_invisible: bool = True
    collapse_whitespace: bool = True


@dataclass
class FilterStep(_Part):
    """Drops rows by token count (`tokenizer`: a local Hugging Face tokenizer folder, "" = the approximation:
    a CJK character 1, another word 1.3), degenerate answers (empty, repetitive, boilerplate) and language
    ("zh", "en", "other"; empty = any)."""

    min_tokens: int = 1
    max_tokens: int = 4096
    tokenizer: str = ""
    drop_degenerate: bool = True
    languages: list[str] = field(default_factory=list)

    def check(self) -> list[tuple[str, str]]:
        problems = [] if self.min_tokens >= 0 else [("min_tokens", "must be 0 or more")]
        if self.max_tokens < 1:
            problems.append(("max_tokens", "must be at least 1"))
        elif self.min_tokens > self.max_tokens:
            problems.append(("min_tokens", f"must not exceed max_tokens ({self.max_tokens})"))
        bad = [(i, lang) for i, lang in enumerate(self.languages) if lang not in LANGUAGES]
        return problems + [
            (f"languages[{i}]", f"must be one of {', '.join(LANGUAGES)}, got {x!r}") for i, x in bad
        ]


@dataclass
class SensitiveStep(_Part):
    """The admins' sensitive words: "mask" masks the mask words, "drop" drops rows holding any word, "off"."""

    action: str = "mask"

    def check(self) -> list[tuple[str, str]]:
        if self.action in SENSITIVE_ACTIONS:
            return []
        return [("action", f"must be one of {', '.join(SENSITIVE_ACTIONS)}, got {self.action!r}")]


@dataclass
class IntegrityStep(_Part):
    """Shape checks: `labels` is the classification label set (empty = any non-empty label); `json_output`
    requires the answer to parse as JSON."""

    labels: list[str] = field(default_factory=list)
    json_output: bool = False

    def check(self) -> list[tuple[str, str]]:
        problems = [(f"labels[{i}]", "must not be empty") for i, x in enumerate(self.labels) if not x.strip()]
        if len(set(self.labels)) != len(self.labels):
            problems.append(("labels", "lists a label more than once"))
        return problems


@dataclass
class DedupStep(_Part):
    """Drops exact duplicates (equal normalised fields) and near duplicates (MinHash Jaccard estimate ≥
    `threshold`, in (0, 1]) of an earlier row."""

    exact: bool = True
    near: bool = True
    threshold: float = 0.8

    def check(self) -> list[tuple[str, str]]:
        return _ratio_problems(self.threshold, low_open=True, name="threshold")


@dataclass
class SynonymsAugment(_Part):
    """Copies `ratio` of the train rows with words of `table` (word -> synonyms) replaced in the prompt."""

    ratio: float = 0.0
    table: dict[str, list[str]] = field(default_factory=dict)

    def check(self) -> list[tuple[str, str]]:
        problems = _ratio_problems(self.ratio)
        if self.ratio > 0 and not any(self.table.values()):
            problems.append(("table", "a ratio above 0 needs at least one word with synonyms"))
        return problems


@dataclass
class NoiseAugment(_Part):
    """Copies `ratio` of the train rows with about `rate` (in (0, 0.5]) of the prompt's characters inserted,
    deleted or swapped."""

    ratio: float = 0.0
    rate: float = 0.05

    def check(self) -> list[tuple[str, str]]:
        problems = _ratio_problems(self.ratio)
        if not 0 < self.rate <= 0.5:
            problems.append(("rate", f"must be above 0 and at most 0.5 (got {self.rate:g})"))
        return problems


@dataclass
class BacktranslationAugment(_Part):
    """Copies `ratio` of the train rows with the prompt translated to `pivot` and back by `model` on an
    OpenAI-compatible server (`endpoint`: its base URL; /v1/chat/completions is added; `api_key` as Bearer)."""

    ratio: float = 0.0
    endpoint: str = ""
    model: str = ""
    api_key: str = ""
    pivot: str = "en"

    def check(self) -> list[tuple[str, str]]:
        problems = _ratio_problems(self.ratio)
        url = urlsplit(self.endpoint)
        if self.endpoint and (url.scheme not in ("http", "https") or not url.netloc):
            problems.append(("endpoint", f"must be an http:// or https:// URL, got {self.endpoint!r}"))
        elif self.ratio > 0 and not self.endpoint:
            problems.append(("endpoint", "a ratio above 0 needs an endpoint URL"))
        if self.ratio > 0 and not self.model.strip():
            problems.append(("model", "a ratio above 0 needs a model name"))
        if not self.pivot.strip():
            problems.append(("pivot", "must name a language"))
        return problems


@dataclass
class AugmentStep(_Part):
    """Made-up train rows, off by default (every ratio 0); only prompts change, answers stay."""

    synonyms: SynonymsAugment = field(default_factory=SynonymsAugment)
    noise: NoiseAugment = field(default_factory=NoiseAugment)
    backtranslation: BacktranslationAugment = field(default_factory=BacktranslationAugment)


@dataclass
class SplitStep(_Part):
    """Ratios in [0, 1] summing to 1; seeded; `stratify` keeps each category's share alike in every split;
    `pinned_test_version` reuses that version's test split verbatim (then `test` is unused)."""

    train: float = 0.8
    validation: float = 0.1
    test: float = 0.1
    seed: int = 42
    stratify: bool = True
    pinned_test_version: int | None = None

    def check(self) -> list[tuple[str, str]]:
        problems = []
        for name in ("train", "validation", "test"):
            problems += _ratio_problems(getattr(self, name), name=name)
        total = self.train + self.validation + self.test
        if abs(total - 1) > 1e-9:
            problems.append(("train", f"ratios must sum to 1 (got {total:g})"))
        if self.pinned_test_version is not None:
            if self.pinned_test_version <= 0:
                problems.append(("pinned_test_version", "must be a version id (a positive number)"))
            if self.train + self.validation <= 0:
                problems.append(
                    ("train", "with a pinned test split, train or validation needs a ratio above 0")
                )
        return problems


@dataclass
class Steps(_Part):
    normalise: NormaliseStep = field(default_factory=NormaliseStep)
    filter: FilterStep = field(default_factory=FilterStep)
    sensitive: SensitiveStep = field(default_factory=SensitiveStep)
    integrity: IntegrityStep = field(default_factory=IntegrityStep)
    dedup: DedupStep = field(default_factory=DedupStep)
    augment: AugmentStep = field(default_factory=AugmentStep)
    split: SplitStep = field(default_factory=SplitStep)


@dataclass
class Recipe(_Part):
    """How to build one dataset version (see the module docstring); `task_type` is one of TASK_TYPES."""

    task_type: str
    sources: Sources = field(default_factory=Sources)
    steps: Steps = field(default_factory=Steps)

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if self.task_type not in TASK_TYPES:
            problems.append(("task_type", f"must be one of {', '.join(TASK_TYPES)}, got {self.task_type!r}"))
        elif self.steps.integrity.labels and self.task_type != "classification":
            problems.append(("steps.integrity.labels", "a label set applies to classification only"))
        return problems

    @classmethod
    def from_dict(cls, data: object) -> "Recipe":
        problems: dict[str, list[str]] = {}
        recipe = _parse(cls, data, "", problems)
        if problems or recipe is None:
            raise RecipeError(problems or {"recipe": ["the recipe is empty"]})
        return recipe

    def to_dict(self) -> dict:
        """The canonical dict: every setting, defaults included (the back-translation api_key too)."""
        return asdict(self)

    def redacted_dict(self) -> dict:
        """`to_dict()` with a set api_key shown as "***": for pages and logs."""
        d = self.to_dict()
        backtranslation = d["steps"]["augment"]["backtranslation"]
        if backtranslation["api_key"]:
            backtranslation["api_key"] = "***"
        return d


def _ratio_problems(value: float, *, low_open: bool = False, name: str = "ratio") -> list[tuple[str, str]]:
    if low_open and not 0 < value <= 1:
        return [(name, f"must be above 0 and at most 1 (got {value:g})")]
    return [] if 0 <= value <= 1 else [(name, f"must be between 0 and 1 (got {value:g})")]


# ---- checking a dict against the dataclasses --------------------------------------------------------------------

_BAD = object()
_TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path and name else path or name


def _kind(value: object) -> str:
    return {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list", dict: "an object",
            NoneType: "null"}.get(type(value), type(value).__name__)  # fmt: skip


def _parse(cls: type, data: object, path: str, problems: dict[str, list[str]]):
    """An instance of the dataclass `cls` from `data`, or None; problems are added under their dotted paths."""

    def add(where: str, message: str) -> None:
        problems.setdefault(where or "recipe", []).append(message)

    if not isinstance(data, dict):
        add(path, f"must be an object, got {_kind(data)}")
        return None
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(str(key) for key in data if key not in known)
    if unknown:
        add(path, f"unknown keys: {', '.join(unknown)}")
    hints, values = get_type_hints(cls), {}
    required = {name for name, f in known.items() if f.default is MISSING and f.default_factory is MISSING}
    for name in known:
        if name in data:
            values[name] = _value(hints[name], data[name], _join(path, name), problems)
        elif name in required:
            add(_join(path, name), "is required")
    ok = all(value is not _BAD for value in values.values())
    values = {name: value for name, value in values.items() if value is not _BAD}
    if not required <= values.keys():
        return None
    obj = cls(**values)
    if ok:
        for where, message in obj.check():
            add(_join(path, where), message)
    return obj


def _value(tp, value: object, path: str, problems: dict[str, list[str]]):
    """`value` checked against the annotation `tp` (a scalar, list[...], dict[str, ...], X | None, a dataclass)."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, UnionType):
        if value is None:
            return None
        return _value(next(a for a in args if a is not NoneType), value, path, problems)
    if is_dataclass(tp):
        obj = _parse(tp, value, path, problems)
        return _BAD if obj is None else obj
    if origin is list:
        if not isinstance(value, list):
            return _bad(problems, path, f"must be a list, got {_kind(value)}")
        items = [_value(args[0], item, f"{path}[{i}]", problems) for i, item in enumerate(value)]
        return _BAD if any(item is _BAD for item in items) else items
    if origin is dict:
        if not isinstance(value, dict):
            return _bad(problems, path, f"must be an object, got {_kind(value)}")
        items = {k: _value(args[1], v, f"{path}.{k}", problems) for k, v in value.items()}
        return _BAD if any(v is _BAD for v in items.values()) else items
    return _scalar(tp, value, path, problems)


def _scalar(tp: type, value: object, path: str, problems: dict[str, list[str]]):
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
        return _bad(problems, path, "must be a finite number")
    if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    return _bad(problems, path, f"must be {_TYPE_WORDS[tp]}, got {_kind(value)}")


def _bad(problems: dict[str, list[str]], path: str, message: str):
    problems.setdefault(path or "recipe", []).append(message)
    return _BAD
