"""Step a, normalise: every text of every row cleaned the same way; and the helpers that reach a row's texts.

Cleaning, each part switchable in the recipe:
- NFKC: full-width letters and digits become ASCII (`ＡＢＣ１２３` -> `ABC123`), ligatures split, the ideographic
  space becomes a space. Full-width punctuation that Chinese is written with (`，！？：；（）～…`) stays as it is:
  NFKC would turn it into ASCII and teach a model to write Chinese with ASCII commas.
- Invisible characters removed: zero-width spaces and joiners, BOM, bidi marks, control characters (the list is
  `datasets_app.dedup.INVISIBLE_RANGES`); tabs and newlines are whitespace, not invisible.
- Whitespace: line breaks unified to `\\n`; runs of spaces/tabs inside a line become one space, trailing spaces
  go, leading indentation stays (code keeps its shape); at most two newlines in a row; the text is trimmed.

Fast paths: a printable ASCII text (no tab, newline or control character) only needs its spaces collapsed; NFKC
runs only on a text that is not already normalised (`unicodedata.is_normalized`, C speed).
"""

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator

from datasets_app.dedup import _INVISIBLE
from datasets_app.pipeline.recipe import NormaliseStep
from datasets_app.pipeline.types import Example, StepStats, count_note

_KEPT_PUNCTUATION = re.compile("([，！？：；（）～…]+)")
# Vertical whitespace other than \n (\r after \r\n is handled first): all become \n.
_LINE_BREAKS = re.compile("\r\n?|[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_INNER_SPACES = re.compile(r"(?<=\S)(?:[^\S\n]{2,}|[^\S\n ])(?=\S)")  # not a lone space: nothing to change
_TRAILING_SPACES = re.compile(r"[^\S\n]+(?=\n|\Z)")
_BLANK_LINES = re.compile(r"\n{3,}")


def nfkc(text: str) -> str:
    """NFKC, except the full-width punctuation Chinese is written with (see the module docstring)."""
    if unicodedata.is_normalized("NFKC", text):
        return text
    parts = _KEPT_PUNCTUATION.split(text)
    parts[::2] = [unicodedata.normalize("NFKC", part) for part in parts[::2]]
    return "".join(parts)


def collapse_whitespace(text: str) -> str:
    text = _LINE_BREAKS.sub("\n", text)
    text = _INNER_SPACES.sub(" ", text)
    text = _TRAILING_SPACES.sub("", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


def cleaner(cfg: NormaliseStep) -> Callable[[str], str]:
    """The function that cleans one text as `cfg` says."""

    def clean(text: str) -> str:
        if text.isascii() and text.isprintable():  # only " " as whitespace, nothing to normalise or remove
            if cfg.collapse_whitespace and ("  " in text or text[:1] == " " or text[-1:] == " "):
                return " ".join(text.split())
            return text
        if cfg.strip_invisible and not text.isprintable():  # before NFKC: a joiner may block a composition
            text = _INVISIBLE.sub("", text)
        if cfg.nfkc and not text.isascii():
            text = nfkc(text)
        if cfg.collapse_whitespace:
            if text.isprintable():
                return " ".join(text.split()) if "  " in text or text[:1] == " " or text[-1:] == " " else text
            return collapse_whitespace(text)
        return text

    return clean


# ---- reaching a row's texts -------------------------------------------------------------------------------------


def map_texts(fields: dict, fn: Callable[[str], str]) -> dict:
    """`fields` with `fn` applied to every text (string values and the `content` of message lists): a copy where
    a text changed, the very same dict when none did (`fn` returns the same object for a text it leaves alone)."""
    out = None
    for name, value in fields.items():
        if isinstance(value, str):
            new = fn(value)
        elif isinstance(value, list):
            new = _map_messages(value, fn)
        else:
            continue
        if new is not value:
            if out is None:
                out = dict(fields)
            out[name] = new
    return fields if out is None else out


def _map_messages(messages: list[dict], fn: Callable[[str], str]) -> list[dict]:
    out = None
    for i, message in enumerate(messages):
        content = message.get("content") or ""
        new = fn(content)
        if new is not content or "content" not in message:
            if out is None:
                out = list(messages)
            out[i] = {**message, "content": new}
    return messages if out is None else out


def all_texts(fields: dict) -> list[str]:
    """Every text of `fields`, in field order (message contents in conversation order)."""
    texts = []
    for value in fields.values():
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            texts += [m.get("content") or "" for m in value]
    return texts


def answer_text(example: Example) -> str:
    """What the model is taught to say: the last assistant turn, the output, the label or the chosen answer."""
    f = example.fields
    if example.task_type == "chat":
        messages = f.get("messages") or []
        return (
            (messages[-1].get("content") or "")
            if messages and messages[-1].get("role") == "assistant"
            else ""
        )
    key = {"instruction": "output", "classification": "label", "preference": "chosen"}[example.task_type]
    return f.get(key) or ""


# ---- the step ---------------------------------------------------------------------------------------------------


class Normalise:
    """Step a: clean every text of every row; never drops a row (empty texts are the filter's business)."""

    name = "normalise"

    def __init__(self, cfg: NormaliseStep):
        self.clean = cleaner(cfg)

    def __call__(self, examples: Iterable[Example], stats: StepStats) -> Iterator[Example]:
        changed = 0
        clean = self.clean
        for example in examples:
            stats.rows_in += 1
            fields = map_texts(example.fields, clean)
            if fields is not example.fields:
                changed += 1
                example.fields = fields
            stats.rows_out += 1
            yield example
        if changed:
            count_note(stats, "rows changed", changed)
