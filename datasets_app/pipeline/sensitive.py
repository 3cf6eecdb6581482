"""Step c, sensitive words: the admins' list (`datasets_app.pii.SensitiveWords`) applied to every text.

- "mask": the list's mask words are masked (`*` per character, by `SensitiveWords.apply`); flag words stay.
  Notes count the rows masked and the rows holding flag words.
- "drop": a row holding any word of the list, mask or flag, is dropped ("sensitive_word").
- "off", or no list: rows pass unchanged.
"""

from collections.abc import Iterable, Iterator

from datasets_app.pii import SensitiveWords
from datasets_app.pipeline.normalise import all_texts, map_texts
from datasets_app.pipeline.recipe import SensitiveStep
from datasets_app.pipeline.types import Example, StepStats, count_note


class Sensitive:
    name = "sensitive"

    def __init__(self, cfg: SensitiveStep, words: SensitiveWords | None):
        self.action = cfg.action if words else "off"
        self.words = words

    def __call__(self, examples: Iterable[Example], stats: StepStats) -> Iterator[Example]:
        if self.action == "off":
            yield from _passed(examples, stats)
        elif self.action == "drop":
            yield from self._drop(examples, stats)
        else:
            yield from self._mask(examples, stats)

    def _drop(self, examples: Iterable[Example], stats: StepStats) -> Iterator[Example]:
        apply = self.words.apply
        for example in examples:
            stats.rows_in += 1
            for text in all_texts(example.fields):
                masked, flagged = apply(text)
                if flagged or masked != text:
                    stats.drop(example, "sensitive_word")
                    break
            else:
                stats.rows_out += 1
                yield example

    def _mask(self, examples: Iterable[Example], stats: StepStats) -> Iterator[Example]:
        masked_rows = flagged_rows = 0
        flags: set[str] = set()

        def apply(text: str) -> str:
            masked, flagged = self.words.apply(text)
            flags.update(flagged)
            return masked

        for example in examples:
            stats.rows_in += 1
            flags.clear()
            fields = map_texts(example.fields, apply)
            if fields is not example.fields:
                masked_rows += 1
                example.fields = fields
            flagged_rows += bool(flags)
            stats.rows_out += 1
            yield example
        if masked_rows:
            count_note(stats, "rows with sensitive words masked", masked_rows)
        if flagged_rows:
            count_note(stats, "rows holding flag words (kept)", flagged_rows)


def _passed(examples: Iterable[Example], stats: StepStats) -> Iterator[Example]:
    for example in examples:
        stats.rows_in += 1
        stats.rows_out += 1
        yield example
