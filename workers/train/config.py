"""What a fine-tuning run is asked to do: one dataclass, every field documented, validated all at once.

    config = TrainConfig(base_model_path="models/tiny", output_dir="runs/1", train_file="train.jsonl")
    config.validate()                    # ConfigError({"lr": [...], "lora_r": [...]}) listing every problem
    TrainConfig.from_dict(json.loads(text))  # unknown keys and wrong types are problems too

Checks that need the data or the loaded model run later in the engine and raise the same ConfigError:
``check_total_steps`` (warm-up longer than training once the step count is known) and ``check_against_model``
(target modules that match nothing, sequence length beyond the model's positions, label count).

Plain Python, no torch: the web process imports this module to validate forms (training_app.engine_config;
``workers.train`` loads its torch modules lazily), so it must import nothing beyond the standard library.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

TASKS = ("chat", "instruction", "classification")
METHODS = ("lora", "qlora", "prefix", "prompt", "ia3", "full")
PEFT_METHODS = ("lora", "qlora", "prefix", "prompt", "ia3")
PROMPT_METHODS = ("prefix", "prompt")  # virtual tokens: never packed, never merged
SCHEDULERS = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class ConfigError(ValueError):
    """A user's mistake in the configuration or the data: every problem, keyed by the field it concerns."""

    def __init__(self, problems: dict[str, list[str]]):
        self.problems = {name: list(msgs) for name, msgs in problems.items() if msgs}
        super().__init__(
            "; ".join(f"{name}: {msg}" for name, msgs in self.problems.items() for msg in msgs)
            or "invalid configuration"
        )


class TrainError(RuntimeError):
    """The run could not go on (missing model, out of memory, a failed worker); the message says what to do."""


@dataclass
class TrainConfig:
    """Everything one fine-tuning run needs. Plain values only, so it round-trips through JSON."""

    base_model_path: str
    """Folder of a Hugging Face model saved as safetensors (config.json, *.safetensors, tokenizer files)."""
    output_dir: str
    """Where checkpoints, the adapter / merged model and result.json go (created if missing)."""
    train_file: str
    """JSONL export of a dataset version's train split; the line format depends on ``task``."""
    task: str = "chat"
    """"chat": OpenAI {"messages": [{"role", "content"}...]}, loss on assistant tokens only;
    "instruction": Alpaca {"instruction", "input"?, "output", "system"?}, loss on the output only;
    "classification": {"text", "label"}, a sequence-classification head over ``labels``."""
    validation_file: str | None = None
    """JSONL in the same format; enables validation loss, early stopping and best-weights selection."""
    method: str = "lora"
    """"lora", "qlora" (4-bit base, CUDA + bitsandbytes only), "prefix", "prompt", "ia3" or "full"."""
    lora_r: int = 16
    """LoRA rank (lora, qlora)."""
    lora_alpha: float = 32.0
    """LoRA scaling numerator: the update is scaled by lora_alpha / lora_r."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA input, in [0, 1)."""
    target_modules: list[str] | None = None
    """Module names (suffixes such as "q_proj") that LoRA / IA3 wrap; ["all-linear"] for every linear layer;
    None for PEFT's default for the architecture."""
    num_virtual_tokens: int = 20
    """Virtual tokens learned by prefix and prompt tuning."""
    epochs: int = 1
    """Passes over the training data (ignored when max_steps is set)."""
    max_steps: int | None = None
    """Optimizer steps to run; overrides epochs."""
    batch_size: int = 8
    """Examples per micro-batch on each process."""
    grad_accum: int = 1
    """Micro-batches per optimizer step; one step sees batch_size * grad_accum * processes examples."""
    lr: float = 2e-4
    """Peak learning rate of AdamW."""
    weight_decay: float = 0.0
    """AdamW weight decay, applied to matrices only (not biases or norms)."""
    warmup_steps: int = 0
    """Linear warm-up from 0 to lr over this many steps."""
    warmup_ratio: float = 0.0
    """Warm-up as a fraction of the total steps, in [0, 1); use it or warmup_steps, not both."""
    scheduler: str = "cosine"
    """Decay after warm-up: "cosine" (to 0), "linear" (to 0) or "constant"."""
    max_grad_norm: float | None = 1.0
    """Clip the global gradient norm to this; None for no clipping (the norm is still reported)."""
    precision: str = "auto"
    """"auto" (bf16 on GPUs that have it, else fp16; fp32 on CPU), "fp32", "bf16" or "fp16" (GPU only)."""
    label_smoothing: float = 0.0
    """Cross-entropy label smoothing, in [0, 1)."""
    swa_start: float | None = None
    """Stochastic weight averaging from this fraction of the steps on, in (0, 1); None turns it off.
    The averaged weights become the output."""
    swa_lr: float | None = None
    """Learning rate SWA anneals to (SWALR); None keeps lr."""
    fgm_epsilon: float | None = None
    """FGM adversarial training: perturb the input-embedding weights by epsilon * g / ||g|| and add the
    perturbed loss's gradient; None turns it off."""
    seed: int = 42
    """Seeds torch, numpy and Python's random, the data order and adapter initialisation."""
    eval_every: int = 0
    """Validate every N optimizer steps (0: only at the end). Needs validation_file."""
    early_stopping_patience: int = 0
    """Stop after this many evaluations without improvement (0: never). Needs validation_file."""
    early_stopping_min_delta: float = 0.0
    """An evaluation improves only when its loss is lower than the best by more than this."""
    checkpoint_every: int = 0
    """Save a resumable checkpoint every N optimizer steps (0: only when cancelled). A finished run needs none: its
    outputs are the adapter / model folders."""
    keep_checkpoints: int = 2
    """Keep this many newest checkpoints; the best weights are kept separately in best/."""
    log_every: int = 1
    """Call report(...) every N optimizer steps (it is also the cancel check)."""
    max_seq_len: int = 1024
    """Examples are truncated to this many tokens (an example left with no target token is dropped)."""
    packing: bool = True
    """Causal LM with lora / qlora / ia3 / full: pack each micro-batch's examples into as few rows as
    possible, positions restarting per example, no padding mask (see workers.train.data). Otherwise, and for
    prefix / prompt tuning and classification: batches of similar lengths padded to their own longest."""
    merge_weights: bool = False
    """Also write the base model with the adapter merged in (lora, qlora, ia3) as model/."""
    labels: list[str] = field(default_factory=list)
    """Classification label names in id order; empty: the sorted distinct labels of the train file."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about a third more compute."""
    compile: bool = False
    """torch.compile the model's forward (dynamic shapes)."""

    # -- validation ---------------------------------------------------------------------------------------

    def problems(self) -> dict[str, list[str]]:
        """Every problem with these values, keyed by field name; empty when valid."""
        p: dict[str, list[str]] = {}

        def bad(name: str, msg: str) -> None:
            p.setdefault(name, []).append(msg)

        for name in ("base_model_path", "output_dir", "train_file"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                bad(name, "is required")
        for name, allowed in (
            ("task", TASKS),
            ("method", METHODS),
            ("scheduler", SCHEDULERS),
            ("precision", PRECISIONS),
        ):
            if getattr(self, name) not in allowed:
                bad(name, f"must be one of {', '.join(allowed)} (got {getattr(self, name)!r})")

        if self.method in ("lora", "qlora"):
            if self.lora_r < 1:
                bad("lora_r", f"must be at least 1 (got {self.lora_r})")
            if not self.lora_alpha > 0:
                bad("lora_alpha", f"must be positive (got {self.lora_alpha})")
            if not 0 <= self.lora_dropout < 1:
                bad("lora_dropout", f"must be in [0, 1) (got {self.lora_dropout})")
        if self.target_modules is not None:
            if not self.target_modules:
                bad("target_modules", "must name at least one module, or be left out for the default")
            elif self.method in PROMPT_METHODS + ("full",):
                bad("target_modules", f"does not apply to method {self.method!r}")
        if self.method in PROMPT_METHODS and self.num_virtual_tokens < 1:
            bad("num_virtual_tokens", f"must be at least 1 (got {self.num_virtual_tokens})")

        if self.max_steps is not None and self.max_steps < 1:
            bad("max_steps", f"must be at least 1 (got {self.max_steps})")
        if self.max_steps is None and self.epochs < 1:
            bad("epochs", f"must be at least 1 (got {self.epochs})")
        for name in ("batch_size", "grad_accum", "log_every", "keep_checkpoints", "max_seq_len"):
            if getattr(self, name) < 1:
                bad(name, f"must be at least 1 (got {getattr(self, name)})")
        if not (math.isfinite(self.lr) and self.lr > 0):
            bad("lr", f"must be a positive number (got {self.lr})")
        if not self.weight_decay >= 0:
            bad("weight_decay", f"must not be negative (got {self.weight_decay})")
        if self.warmup_steps < 0:
            bad("warmup_steps", f"must not be negative (got {self.warmup_steps})")
        if not 0 <= self.warmup_ratio < 1:
            bad("warmup_ratio", f"must be in [0, 1) (got {self.warmup_ratio})")
        if self.warmup_steps and self.warmup_ratio:
            bad("warmup_ratio", "give warmup_steps or warmup_ratio, not both")
        if self.max_steps is not None and self.max_steps >= 1 and self.warmup_steps >= self.max_steps > 0:
            bad("warmup_steps", f"{self.warmup_steps} warm-up steps leave nothing of {self.max_steps} steps")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            bad("max_grad_norm", f"must be positive, or None for no clipping (got {self.max_grad_norm})")
        if not 0 <= self.label_smoothing < 1:
            bad("label_smoothing", f"must be in [0, 1) (got {self.label_smoothing})")
        if self.swa_start is not None and not 0 < self.swa_start < 1:
            bad("swa_start", f"must be a fraction in (0, 1) (got {self.swa_start})")
        if self.swa_lr is not None:
            if self.swa_start is None:
                bad("swa_lr", "needs swa_start")
            elif not self.swa_lr > 0:
                bad("swa_lr", f"must be positive (got {self.swa_lr})")
        if self.fgm_epsilon is not None and not self.fgm_epsilon > 0:
            bad("fgm_epsilon", f"must be positive, or None to turn FGM off (got {self.fgm_epsilon})")

        for name in ("eval_every", "early_stopping_patience", "checkpoint_every"):
            if getattr(self, name) < 0:
                bad(name, f"must not be negative (got {getattr(self, name)})")
        if not self.early_stopping_min_delta >= 0:
            bad("early_stopping_min_delta", f"must not be negative (got {self.early_stopping_min_delta})")
        if not self.validation_file:
            if self.eval_every:
                bad("eval_every", "needs validation_file")
            if self.early_stopping_patience:
                bad("early_stopping_patience", "needs validation_file")

        if self.merge_weights and self.method in PROMPT_METHODS:
            bad("merge_weights", f"{self.method} tuning learns virtual tokens, which cannot be merged")
        if self.labels:
            if self.task != "classification":
                bad("labels", "only classification has labels")
            elif len(set(self.labels)) != len(self.labels):
                bad("labels", "must be distinct")
            elif len(self.labels) < 2:
                bad("labels", "a classifier needs at least 2 labels")
        if self.task == "classification" and self.method == "qlora" and self.merge_weights:
            bad("merge_weights", "merging a 4-bit classifier is not supported; merge a LoRA run instead")
        return p

    def validate(self) -> TrainConfig:
        """Raise ConfigError naming every problem; return self when valid."""
        if problems := self.problems():
            raise ConfigError(problems)
        return self

    def check_total_steps(self, total_steps: int) -> int:
        """Warm-up steps for a run of ``total_steps``; ConfigError when warm-up would fill the whole run."""
        warmup = self.warmup_steps or int(self.warmup_ratio * total_steps)
        if total_steps > 1 and warmup >= total_steps:
            raise ConfigError(
                {
                    "warmup_steps": [
                        f"{warmup} warm-up steps leave nothing of the {total_steps} training steps"
                    ]
                }
            )
        return warmup

    # -- JSON -------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from JSON-like values; unknown keys, missing required keys and wrong types are all reported."""
        problems: dict[str, list[str]] = {}
        known = {f.name: f for f in fields(cls)}
        for key in data:
            if key not in known:
                problems.setdefault(key, []).append("is not a known setting")
        values: dict[str, Any] = {}
        for name, f in known.items():
            if name not in data:
                if f.default is MISSING and f.default_factory is MISSING:
                    problems.setdefault(name, []).append("is required")
                continue
            value, error = _coerce(data[name], f.type)
            if error:
                problems.setdefault(name, []).append(error)
            else:
                values[name] = value
        if problems:
            raise ConfigError(problems)
        return cls(**values)


def _coerce(value: Any, annotation: str) -> tuple[Any, str | None]:
    """Check one JSON value against a field's annotation (given as a string under `from __future__`)."""
    optional = annotation.endswith("| None")
    base = annotation.removesuffix("| None").strip()
    if value is None:
        return (None, None) if optional else (None, "must not be null")
    if base == "bool":
        return (value, None) if isinstance(value, bool) else (None, f"must be true or false (got {value!r})")
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            return None, f"must be a whole number (got {value!r})"
        return int(value), None
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"must be a number (got {value!r})"
        return float(value), None
    if base == "str":
        return (value, None) if isinstance(value, str) else (None, f"must be a string (got {value!r})")
    if base == "list[str]":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None, f"must be a list of strings (got {value!r})"
        return list(value), None
    raise TypeError(f"no coercion for {annotation}")


def check_against_model(config: TrainConfig, model) -> None:
    """Problems only the loaded (not yet adapted) model can reveal; raises ConfigError listing all of them."""
    p: dict[str, list[str]] = {}
    names = [name for name, _ in model.named_modules()]
    if config.method in ("lora", "qlora", "ia3") and config.target_modules:
        for target in config.target_modules:
            if target == "all-linear":
                continue
            if not any(name == target or name.endswith("." + target) for name in names):
                leaves = sorted(
                    {n.rsplit(".", 1)[-1] for n in names if n and not n.rsplit(".", 1)[-1].isdigit()}
                )
                p.setdefault("target_modules", []).append(
                    f"{target!r} matches no module of this model (it has: {', '.join(leaves)})"
                )
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions and config.max_seq_len > positions:
        p.setdefault("max_seq_len", []).append(
            f"{config.max_seq_len} exceeds the model's {positions} positions"
        )
    if (
        config.method in PROMPT_METHODS
        and positions
        and config.max_seq_len + config.num_virtual_tokens > positions
    ):
        p.setdefault("num_virtual_tokens", []).append(
            f"max_seq_len + {config.num_virtual_tokens} virtual tokens exceeds the model's {positions} positions"
        )
    if config.fgm_epsilon and model.get_input_embeddings() is None:
        p.setdefault("fgm_epsilon", []).append("this model has no input embedding to perturb")
    if p:
        raise ConfigError(p)
