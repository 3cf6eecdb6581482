"""What the gateway asks the model cache for (ServeSpec) and the one error it answers from (ServeError).

No torch here: the web process builds specs and catches ServeError without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass

TASKS = ("causal_lm", "classification")
FORMATS = ("hf", "peft_adapter", "quantized")  # registry_app.models.VersionFormat values


class ServeError(RuntimeError):
    """A model cannot be loaded or asked this (missing folder, bad prompt, bad settings); the message says why."""


@dataclass(frozen=True)
class ServeSpec:
    key: str  # cache key, e.g. "version:12"
    path: str  # the model folder: HF folder, PEFT adapter folder, or quantised folder
    task: str  # "causal_lm" | "classification"
    fmt: str  # "hf" | "peft_adapter" | "quantized"
    base_key: str | None = None  # adapters: the base version's key
    base_path: str | None = None  # adapters: the base folder

    def problems(self) -> list[str]:
        p = []
        if not self.key:
            p.append("key is required")
        if self.task not in TASKS:
            p.append(f"task must be one of {', '.join(TASKS)} (got {self.task!r})")
        if self.fmt not in FORMATS:
            p.append(f"fmt must be one of {', '.join(FORMATS)} (got {self.fmt!r})")
        if self.fmt == "peft_adapter" and not (self.base_key and self.base_path):
            p.append(f"{self.path} is a PEFT adapter: base_key and base_path are required")
        if self.base_key is not None and self.base_key == self.key:
            p.append(f"base_key must differ from key (both {self.key!r})")
        return p

    def base(self) -> ServeSpec:
        """The spec of an adapter's base weights (its format read from the folder when loaded)."""
        return ServeSpec(key=self.base_key or "", path=self.base_path or "", task=self.task, fmt="hf")
