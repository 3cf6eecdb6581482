"""Step f, augment (off by default): made-up copies of train rows, with only their prompts changed.

Only prompt texts change (user turns, instruction and input, the classification text, the preference prompt):
noise or a paraphrase in the answer would teach the model to write them. Each kind picks round(ratio × train rows)
of the train rows with its own seeded sample; a picked row whose prompt the kind cannot change (no word of the
synonym table in it) gets no copy, and a note counts them. A copy: `augmented` = the kind, `origin` as its source,
`ref` = {"augmented_from": source ref}, the source's group and category, split "train" (augmenting only train
rows keeps variants of test rows out of training).

- "synonyms": each occurrence of a table word is replaced by one of its synonyms (seeded choice). ASCII words match
  whole words, ignoring case; Chinese words match anywhere.
- "noise": about `rate` of the characters are deleted, duplicated-with-a-neighbour (inserted) or swapped with the
  next one (seeded, at least one edit per text).
- "backtranslation": the text is translated to `pivot` and back to its own language (English if it is neither
  Chinese nor English) by an OpenAI-compatible `/v1/chat/completions` endpoint (urllib, temperature 0, 4 requests
  in flight). An error status, a timeout or an unreadable answer is a `BuildError` naming the endpoint.
"""

import random
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial

import orjson

from datasets_app.pipeline.filters import detect_language
from datasets_app.pipeline.recipe import AugmentStep, BacktranslationAugment
from datasets_app.pipeline.types import BuildError, Example

KINDS = ("synonyms", "noise", "backtranslation")
LANGUAGE_NAMES = {
    "en": "English",
    "zh": "Simplified Chinese",
    "ja": "Japanese",
    "fr": "French",
    "de": "German",
}
TIMEOUT_SECONDS = 60
IN_FLIGHT = 4
Translate = Callable[[str, str], str]  # (text, target language code) -> translation


def prompt_keys(example: Example) -> list[tuple[str, int | None]]:
    """Where the prompt texts of a row are: (field, message index or None)."""
    f = example.fields
    if example.task_type in ("chat", "preference"):
        name = "messages" if example.task_type == "chat" else "prompt"
        return [(name, i) for i, m in enumerate(f.get(name) or []) if m.get("role") == "user"]
    if example.task_type == "instruction":
        return [("instruction", None), ("input", None)]
    return [("text", None)]


def with_prompts(example: Example, change: Callable[[str], str | None]) -> dict | None:
    """A copy of the fields with `change` applied to each non-empty prompt text; None when nothing changed."""
    fields = {k: ([dict(m) for m in v] if isinstance(v, list) else v) for k, v in example.fields.items()}
    changed = False
    for name, i in prompt_keys(example):
        holder, key = (fields[name][i], "content") if i is not None else (fields, name)
        text = holder.get(key) or ""
        new = change(text) if text.strip() else None
        if new is not None and new != text:
            holder[key], changed = new, True
    return fields if changed else None


class Synonyms:
    def __init__(self, table: dict[str, list[str]]):
        self.table = {word.lower(): choices for word, choices in table.items() if choices}
        words = sorted(self.table, key=len, reverse=True)
        pattern = "|".join(rf"\b{re.escape(w)}\b" if w.isascii() else re.escape(w) for w in words)
        self.regex = re.compile(pattern, re.IGNORECASE) if words else None

    def __call__(self, text: str, rng: random.Random) -> str | None:
        if self.regex is None:
            return None
        return self.regex.sub(lambda m: rng.choice(self.table[m.group().lower()]), text)


def add_noise(text: str, rate: float, rng: random.Random) -> str:
    chars = list(text)
    edits = max(1, round(len(chars) * rate))
    for _ in range(edits):
        if len(chars) < 2:
            break
        at = rng.randrange(len(chars) - 1)
        op = rng.randrange(3)
        if op == 0:
            del chars[at]
        elif op == 1:
            chars.insert(at, chars[at + 1])
        else:
            chars[at], chars[at + 1] = chars[at + 1], chars[at]
    return "".join(chars)


class Backtranslator:
    """`translate(text, target)` through an OpenAI-compatible chat completions endpoint."""

    def __init__(self, cfg: BacktranslationAugment, timeout: float = TIMEOUT_SECONDS):
        base = cfg.endpoint.rstrip("/")
        self.url = base if base.endswith("/chat/completions") else base + "/v1/chat/completions"
        self.model, self.api_key, self.timeout = cfg.model, cfg.api_key, timeout

    def __call__(self, text: str, target: str) -> str:
        language = LANGUAGE_NAMES.get(target, target)
        body = {"model": self.model, "temperature": 0, "messages": [
            {"role": "system", "content": f"Translate the user's text into {language}. Reply with the translation only."},
            {"role": "user", "content": text}]}  # fmt: skip
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=orjson.dumps(body), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = orjson.loads(response.read())
            return answer["choices"][0]["message"]["content"].strip()
        except urllib.error.HTTPError as e:
            detail = e.read()[:200].decode("utf-8", "replace")
            raise BuildError(f"back-translation endpoint {self.url} answered {e.code}: {detail}") from e
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            raise BuildError(f"back-translation endpoint {self.url} could not be reached: {e}") from e
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as e:
            raise BuildError(
                f"back-translation endpoint {self.url} sent an answer without choices[0].message"
            ) from e


def round_trip(translate: Translate, pivot: str) -> Callable[[str], str]:
    def change(text: str) -> str:
        language = detect_language([text])
        own = language if language in ("zh", "en") else "en"
        through = pivot if pivot != own else ("zh" if own == "en" else "en")
        return translate(translate(text, through), own)

    return change


class Augmenter:
    """Picks the train rows to copy (`plan`) and makes the copies (`copies`)."""

    def __init__(self, cfg: AugmentStep, seed: int, backtranslate: Translate | None = None):
        self.cfg, self.seed = cfg, seed
        self.synonyms = Synonyms(cfg.synonyms.table)
        bt = cfg.backtranslation
        self.translate = backtranslate or (Backtranslator(bt) if bt.ratio > 0 else None)
        self.unchanged = dict.fromkeys(KINDS, 0)
        self.made = dict.fromkeys(KINDS, 0)

    def ratio(self, kind: str) -> float:
        return getattr(self.cfg, kind).ratio

    def plan(self, train_rows: int) -> dict[str, set[int]]:
        """For each kind, the positions (0-based, among the train rows in output order) to copy."""
        picked = {}
        for kind in KINDS:
            k = min(train_rows, round(self.ratio(kind) * train_rows))
            rng = random.Random(f"{self.seed}:{kind}")
            picked[kind] = set(rng.sample(range(train_rows), k)) if k else set()
        return picked

    def copies(self, jobs: list[tuple[int, Example, str]]) -> list[list[Example]]:
        """For each (position, source row, kind): the copy made ([] when the kind could not change it)."""
        translated = self._translated([(p, e) for p, e, kind in jobs if kind == "backtranslation"])
        out = []
        for position, example, kind in jobs:
            if kind == "backtranslation":
                fields = translated[position]
            else:
                fields = with_prompts(
                    example, self._changer(kind, random.Random(f"{self.seed}:{kind}:{position}"))
                )
            out.append([self._copy(example, kind, fields)] if fields is not None else [])
            self.made[kind] += fields is not None
            self.unchanged[kind] += fields is None
        return out

    def _changer(self, kind: str, rng: random.Random) -> Callable[[str], str | None]:
        if kind == "synonyms":
            return partial(self.synonyms, rng=rng)
        return partial(add_noise, rate=self.cfg.noise.rate, rng=rng)

    def _translated(self, jobs: list[tuple[int, Example]]) -> dict[int, dict | None]:
        if not jobs:
            return {}
        change = round_trip(self.translate, self.cfg.backtranslation.pivot)
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            results = list(pool.map(lambda job: with_prompts(job[1], change), jobs))
        return {position: fields for (position, _), fields in zip(jobs, results, strict=True)}

    @staticmethod
    def _copy(example: Example, kind: str, fields: dict) -> Example:
        return replace(
            example, fields=fields, augmented=kind, ref={"augmented_from": example.ref}, split="train", key=""
        )

    def notes(self) -> list[str]:
        notes = [f"{n} rows added by {kind}" for kind, n in self.made.items() if n]
        return notes + [f"{n} picked rows not changed by {kind}" for kind, n in self.unchanged.items() if n]
