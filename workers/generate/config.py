"""What a generation call is asked to do (GenerateConfig), what it gives back (Generation), its errors.

No torch here, like workers.train.config: a form can validate a GenerateConfig without loading torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from workers.train.config import ConfigError
from workers.train.config import _coerce as coerce_value


class GenerateError(RuntimeError):
    """Generation cannot run (missing folder, missing base for an adapter, bad prompt); the message says why."""


class GenerationStopped(RuntimeError):
    """The progress callback answered "stop"."""


@dataclass
class GenerateConfig:
    """How to decode. Plain values only, so it round-trips through JSON."""

    max_new_tokens: int = 128
    """New tokens at most per example."""
    do_sample: bool = False
    """False: greedy (argmax); True: sample from the softmax of logits / temperature, within top_p."""
    temperature: float = 1.0
    """Softmax temperature when sampling, > 0."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p, in (0, 1]."""
    seed: int = 0
    """Sampling is seeded per example (seed + example index), so results do not depend on batch composition."""
    stop: list[str] = field(default_factory=list)
    """Stop sequences: an example ends when its text contains one; the text is cut before it."""
    max_batch_size: int = 32
    """Rows at most in a batch."""
    max_batch_tokens: int = 16384
    """Cap on (longest prompt + max_new_tokens) * rows of a batch; a longer prompt still runs, alone."""

    def problems(self) -> dict[str, list[str]]:
        p: dict[str, list[str]] = {}
        for f in fields(self):
            _, error = coerce_value(getattr(self, f.name), f.type)
            if error:
                p.setdefault(f.name, []).append(error)

        def bad(name: str, message: str) -> None:
            if name not in p:
                p.setdefault(name, []).append(message)

        for name in ("max_new_tokens", "max_batch_size", "max_batch_tokens"):
            if name not in p and getattr(self, name) < 1:
                bad(name, f"must be at least 1 (got {getattr(self, name)})")
        if "temperature" not in p and not (math.isfinite(self.temperature) and self.temperature > 0):
            bad("temperature", f"must be a positive number (got {self.temperature})")
        if "top_p" not in p and not 0 < self.top_p <= 1:
            bad("top_p", f"must be in (0, 1] (got {self.top_p})")
        if "seed" not in p and self.seed < 0:
            bad("seed", f"must not be negative (got {self.seed})")
        if "stop" not in p and any(not s for s in self.stop):
            bad("stop", "stop sequences must not be empty strings")
        return p

    def validate(self) -> None:
        """Raise ConfigError naming every problem."""
        if problems := self.problems():
            raise ConfigError(problems)

    @classmethod
    def from_dict(cls, data: dict) -> GenerateConfig:
        """Build from JSON-like values; unknown keys and wrong types are reported with the other problems."""
        if not isinstance(data, dict):
            raise ConfigError({"config": [f"must be an object (got {type(data).__name__})"]})
        problems: dict[str, list[str]] = {}
        known = {f.name: f for f in fields(cls)}
        for key in data:
            if key not in known:
                problems.setdefault(str(key), []).append("is not a known setting")
        values = {}
        for name, f in known.items():
            if name in data:
                value, error = coerce_value(data[name], f.type)
                if error:
                    problems.setdefault(name, []).append(error)
                else:
                    values[name] = value
        config = cls(**values)
        for name, msgs in config.problems().items():
            if name in values:
                problems.setdefault(name, []).extend(msgs)
        if problems:
            raise ConfigError(problems)
        return config


@dataclass
class Generation:
    text: str  # decoded new tokens, special tokens skipped, cut at the first stop sequence
    token_ids: list[int]  # the new tokens kept (through the eos, or the token that completed a stop sequence)
    prompt_tokens: int
    new_tokens: int
    latency_s: float  # from the start of its batch to the step that finished this example
    finish_reason: str  # "stop" (eos or stop sequence) | "length"
