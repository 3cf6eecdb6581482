"""Turn incoming case content into what is stored: PII scrubbed, sensitive words applied, fingerprint, search text.

Used by every way in (form, API, bulk API, file import), so scrubbing cannot be bypassed by one of them.
"""

from collections import Counter
from dataclasses import dataclass, field

from datasets_app.dedup import fingerprint
from datasets_app.pii import SensitiveWords, scrub
from datasets_app.search import search_text

CACHE_MAX_CHARS = 400
CACHE_MAX_ENTRIES = 20_000


@dataclass
class Scrubber:
    """PII scrubbing (on unless an import turns it off) and the admin-managed sensitive-word list."""

    scrub_pii: bool = True
    words: SensitiveWords | None = None
    found: Counter = field(default_factory=Counter)
    # Imports repeat short strings (system prompts, canned answers): remember their cleaned form.
    cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_database(cls, scrub_pii: bool = True) -> "Scrubber":
        from datasets_app.models import SensitiveWord

        pairs = list(SensitiveWord.objects.values_list("word", "action"))
        return cls(scrub_pii=scrub_pii, words=SensitiveWords(pairs) if pairs else None)

    def clean(self, text: str, flags: set[str]) -> str:
        if not text:
            return text
        hit = self.cache.get(text)
        if hit is None:
            hit = self._clean(text)
            if len(text) <= CACHE_MAX_CHARS and len(self.cache) < CACHE_MAX_ENTRIES:
                self.cache[text] = hit
        cleaned, kinds, flagged = hit
        if kinds:
            self.found.update(kinds)
        if flagged:
            flags.update(flagged)
        return cleaned

    def clean_json(self, value, flags: set[str]):
        """`clean` applied to every string (keys too) and integer inside a JSON value such as a case's metadata:
        unknown import fields and CSV columns land there, and they hold personal data as often as the text does."""
        if type(value) is str:
            return self.clean(value, flags)
        if type(value) is dict:
            return {self.clean(k, flags): self.clean_json(v, flags) for k, v in value.items()}
        if type(value) is list:
            return [self.clean_json(v, flags) for v in value]
        if type(value) is int:  # a phone or card number given as a JSON number
            text = str(value)
            cleaned = self.clean(text, flags)
            return value if cleaned == text else cleaned
        return value

    def _clean(self, text: str) -> tuple[str, Counter | None, tuple[str, ...]]:
        kinds = None
        if self.scrub_pii:
            text, kinds = scrub(text)
        flagged: tuple[str, ...] = ()
        if self.words is not None:
            text, words = self.words.apply(text)
            flagged = tuple(f"sensitive:{w}" for w in words)
        return text, kinds or None, flagged


@dataclass(slots=True)
class Prepared:
    messages: list
    bad_output: str
    expected_output: str
    flags: list
    fingerprint: str
    search_text: str
    metadata: dict = field(default_factory=dict)


def prepare_content(
    scrubber: Scrubber,
    messages: list,
    bad_output: str,
    expected_output: str = "",
    metadata: dict | None = None,
) -> Prepared:
    flags: set[str] = set()
    clean_metadata = scrubber.clean_json(metadata, flags) if metadata else {}
    clean_messages = [{"role": m["role"], "content": scrubber.clean(m["content"], flags)} for m in messages]
    bad = scrubber.clean(bad_output, flags)
    expected = scrubber.clean(expected_output, flags)
    contents = [m["content"] for m in clean_messages]
    return Prepared(
        messages=clean_messages,
        bad_output=bad,
        expected_output=expected,
        flags=sorted(flags),
        fingerprint=fingerprint(clean_messages, bad),
        search_text=search_text(*contents, bad, expected),
        metadata=clean_metadata,
    )
