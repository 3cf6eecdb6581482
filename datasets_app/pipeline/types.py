"""The records that flow through a dataset build, shared by sources, steps and exports (Django-free).

Task types and their normalised `fields`:
- "chat":           {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}  (ends with assistant)
- "instruction":    {"instruction": str, "input": str, "output": str}                          (Alpaca)
- "classification": {"text": str, "label": str}
- "preference":     {"prompt": [{"role", "content"}, ...] (ends with user), "chosen": str, "rejected": str}
"""

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

TASK_TYPES = ("chat", "instruction", "classification", "preference")
SPLITS = ("train", "validation", "test")
DROPPED_EXAMPLES_KEPT = 5  # per step and reason


@dataclass(slots=True)
class Example:
    task_type: str
    fields: dict  # see the module docstring
    origin: str  # "case" | "file" | "version" | "replay"
    ref: dict  # where it came from: {"case": 12} | {"file": "a.jsonl", "line": 3} | {"version": 4, "example": 99}
    category: str = (
        ""  # stratification key: the label (classification) or the first tag / category ("" if none)
    )
    augmented: str = ""  # "" for an original; "synonyms" | "noise" | "backtranslation" for a made-up row
    group: int = -1  # the group that must not straddle splits (near-duplicate cluster / augmentation source)
    tokens: int = 0  # token count of all the text of `fields`
    split: str = ""  # one of SPLITS once the split step ran
    key: str = (
        ""  # sha256 hex of the canonical normalised fields (exact-duplicate key, set by the dedup step)
    )


@dataclass
class StepStats:
    """What one step did: rows in and out, drops by reason with a few examples each, and free-form notes."""

    name: str
    rows_in: int = 0
    rows_out: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> count
    examples: dict = field(
        default_factory=dict
    )  # reason -> [{"ref": ..., "fields": ...}] (≤ DROPPED_EXAMPLES_KEPT)
    notes: list = field(
        default_factory=list
    )  # e.g. "masked 12 sensitive words", "augmented 40 rows by noise"
    seconds: float = 0.0

    def drop(self, example: Example, reason: str) -> None:
        self.dropped[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < DROPPED_EXAMPLES_KEPT:
            kept.append({"ref": example.ref, "fields": example.fields})

    def as_dict(self) -> dict:
        return {"name": self.name, "rows_in": self.rows_in, "rows_out": self.rows_out,
                "dropped": dict(self.dropped), "examples": self.examples, "notes": self.notes,
                "seconds": round(self.seconds, 3)}  # fmt: skip


def keep_unless(
    examples: Iterable[Example], stats: StepStats, reason: Callable[[Example], str]
) -> Iterator[Example]:
    """The shape of a filtering step: count every row in, drop it when `reason(example)` names why, else pass it."""
    for example in examples:
        stats.rows_in += 1
        why = reason(example)
        if why:
            stats.drop(example, why)
            continue
        stats.rows_out += 1
        yield example


class BuildError(Exception):
    """A build cannot go on (bad recipe, broken source file, nothing left): the message is shown to the user."""
