"""Step b, filter: token length bounds, empty or degenerate answers, and (optionally) language.

Reasons, checked in this order (a row is dropped for the first that applies):
- "empty_answer": the answer (`normalise.answer_text`) is empty or blank.
- "too_short" / "too_long": the row's tokens (`tokens.TokenCounter`, stored in `example.tokens`) are outside
  [min_tokens, max_tokens].
- "repetition" (when drop_degenerate): one word said 3 or more times and nothing else, or a run of one unit of
  1-200 characters repeated 3 or more times that covers more than half of the answer (and at least 6 characters):
  `哈哈哈哈哈哈`, `I don't know. I don't know. I don't know. ok`. Labels of classification rows are not checked.
- "boilerplate" (when drop_degenerate): the answer holds a refusal or self-description phrase of `BOILERPLATE`.
- "language": the row's language (`detect_language`) is not one of the recipe's languages.
"""

import re
from collections.abc import Iterable, Iterator

from datasets_app.pipeline.normalise import all_texts, answer_text
from datasets_app.pipeline.recipe import FilterStep
from datasets_app.pipeline.tokens import TokenCounter
from datasets_app.pipeline.types import Example, StepStats, keep_unless

BOILERPLATE = (
    "as an ai language model",
    "as an ai model",
    "as a large language model",
    "i'm sorry, but i cannot",
    "i'm sorry, but i can't",
    "i am sorry, but i cannot",
    "i cannot fulfill that request",
    "作为一个ai",
    "作为一个人工智能",
    "作为ai语言模型",
    "作为一个语言模型",
    "作为人工智能语言模型",
    "我只是一个ai",
)
_BOILERPLATE = tuple(phrase.replace(" ", "") for phrase in BOILERPLATE)
# Every phrase (spaces removed) holds one of these: checked first, they rule out most answers in a few scans.
_BOILERPLATE_HINTS = ("languagemodel", "aimodel", "sorry,but", "cannotfulfill", "作为", "我只是")
MIN_REPEATS = 3
MIN_REPEATED_CHARS = 6
MAX_UNIT = 200
_PROBE = 8  # characters looked up around the middle of an answer to find a repeated unit
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_LATIN = re.compile("[A-Za-z\u00c0-\u024f]")
_OTHER_LETTERS = re.compile(
    "[\u0370-\u03ff\u0400-\u052f\u0590-\u06ff\u0900-\u0dff\u0e00-\u0e7f\u3040-\u30ff\uac00-\ud7af]"
)


class Filter:
    """Step b; sets `example.tokens` on every row it keeps."""

    name = "filter"

    def __init__(self, cfg: FilterStep, counter: TokenCounter | None = None):
        self.cfg = cfg
        self.counter = counter or TokenCounter(cfg.tokenizer)
        self.languages = set(cfg.languages)

    def __call__(self, examples: Iterable[Example], stats: StepStats) -> Iterator[Example]:
        return keep_unless(examples, stats, self.reason)

    def reason(self, example: Example) -> str:
        """The reason to drop `example`, or "" to keep it."""
        answer = answer_text(example)
        if not answer.strip():
            return "empty_answer"
        example.tokens = tokens = self.counter.count(example)
        if tokens < self.cfg.min_tokens:
            return "too_short"
        if tokens > self.cfg.max_tokens:
            return "too_long"
        if self.cfg.drop_degenerate and example.task_type != "classification":
            if is_repetitive(answer):
                return "repetition"
            if is_boilerplate(answer):
                return "boilerplate"
        if self.languages and detect_language(all_texts(example.fields)) not in self.languages:
            return "language"
        return ""


# ---- degenerate answers -----------------------------------------------------------------------------------------


def is_boilerplate(answer: str) -> bool:
    """Spaces are ignored (`作为一个 AI`), case too, and typographic apostrophes count as `'`."""
    folded = answer.lower().replace(" ", "")
    if not folded.isascii():
        folded = folded.replace("’", "'")
    return any(hint in folded for hint in _BOILERPLATE_HINTS) and any(
        phrase in folded for phrase in _BOILERPLATE
    )


def is_repetitive(answer: str) -> bool:
    n = len(answer)
    if n < MIN_REPEATED_CHARS:
        return False
    if n < 4 * _PROBE:  # one short word said again and again: `ok ok ok`
        words = answer.split()
        if len(words) >= MIN_REPEATS and len(set(words)) == 1:
            return True
    return _repeated_around_middle(answer, min(_PROBE, n // 4))


def _covers(run: int, unit: str, n: int) -> bool:
    """A run of `unit` repeated counts when it is long, covers most of the answer and holds a letter
    (`1000000` and `------` are not degenerate)."""
    return (
        run * 2 > n
        and run >= MIN_REPEATED_CHARS
        and run >= MIN_REPEATS * len(unit)
        and any(char.isalpha() for char in unit)
    )


def _repeated_around_middle(text: str, probe_size: int) -> bool:
    """A periodic run covering more than half of `text` contains its middle character, and one of the two
    windows of `probe_size` (at most a quarter of the text) next to the middle lies inside it; the run's unit then
    shows as the distance from that window to another occurrence of it nearby. Each candidate distance is checked
    by measuring how far the text stays periodic with it, with slice comparisons (C speed), not char by char."""
    n = len(text)
    middle = n // 2
    max_unit = min(MAX_UNIT, n // MIN_REPEATS)
    for at in (middle, middle - probe_size):
        probe = text[at : at + probe_size]
        end = at + max_unit + probe_size
        found = text.find(probe, max(0, at - max_unit), end)
        while found != -1:
            if found != at:
                start, unit = min(at, found), abs(found - at)
                if _covers(_periodic_run(text, start, unit), text[start : start + unit], n):
                    return True
            found = text.find(probe, found + 1, end)
    return False


def _periodic_run(text: str, at: int, unit: int) -> int:
    """The length of the longest run through position `at` in which text[i] == text[i + unit]."""
    forward = _common_prefix(text, at, at + unit, len(text) - at - unit)
    backward = _common_suffix(text, at, at + unit, at)
    return backward + forward + unit


def _common_prefix(text: str, a: int, b: int, limit: int) -> int:
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if text[a : a + mid] == text[b : b + mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(text: str, a: int, b: int, limit: int) -> int:
    """The largest k <= limit with text[a - k : a] == text[b - k : b]."""
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if text[a - mid : a] == text[b - mid : b]:
            lo = mid
        else:
            hi = mid - 1
    return lo


# ---- language ---------------------------------------------------------------------------------------------------


def detect_language(texts: list[str]) -> str:
    """ "zh", "en" or "other", by script: Han characters count 1 each, Latin letters 1/4 (about a word's share),
    letters of other scripts (kana, hangul, Cyrillic, Arabic, ...) 1/2 each; the largest wins, "other" if none."""
    text = " ".join(texts)
    if text.isascii():
        return "en" if _LATIN.search(text) else "other"
    han = len(_HAN.findall(text))
    latin = len(_LATIN.findall(text)) / 4
    other = len(_OTHER_LETTERS.findall(text)) / 2
    if max(han, latin, other) == 0:
        return "other"
    if han >= latin and han >= other:
        return "zh"
    return "en" if latin >= other else "other"
