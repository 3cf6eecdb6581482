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

    def merge(self, later: "StepStats") -> None:
        """Add what the step did to later rows (the next batches): as if one run had seen all of them."""
        self.rows_in += later.rows_in
        self.rows_out += later.rows_out
        self.seconds += later.seconds
        self.dropped.update(later.dropped)
        for reason, examples in later.examples.items():
            kept = self.examples.setdefault(reason, [])
            kept.extend(examples[: DROPPED_EXAMPLES_KEPT - len(kept)])
        for note in later.notes:
            count, _, what = note.partition(" ")
            if count.isdigit():
                count_note(self, what, int(count))
            else:
                self.notes.append(note)

    def as_dict(self) -> dict:
        return {"name": self.name, "rows_in": self.rows_in, "rows_out": self.rows_out,
                "dropped": dict(self.dropped), "examples": self.examples, "notes": self.notes,
                "seconds": round(self.seconds, 3)}  # fmt: skip


def count_note(stats: StepStats, what: str, n: int) -> None:
    """Keep one running "N <what>" note per step across the batches a step is called with."""
    for i, note in enumerate(stats.notes):
        count, _, rest = note.partition(" ")
        if rest == what and count.isdigit():
            stats.notes[i] = f"{int(count) + n} {what}"
            return
    stats.notes.append(f"{n} {what}")


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
