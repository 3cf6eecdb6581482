"""What a compression run is asked to do: one dataclass, validated all at once, plus the checks the web process
runs before queuing (hardware and the model's shapes).

    config = CompressConfig(method="prune_mlp", model_path="models/minilm-ft", output_dir="runs/c1",
                            task="classification", sparsity=0.5, steps=200, train_file="train.jsonl")
    config.validate()                                     # ConfigError({"sparsity": [...]}) listing every problem
    check_hardware(config, cuda=False)                    # ["int4 weight-only needs ..."] or []
    check_shapes(config, json.load(open("models/minilm-ft/config.json")))  # {"method": [...]} or {}

Plain Python, no torch: the web process imports this module (``workers.compress`` loads its torch modules
lazily), so it must import nothing beyond the standard library.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

from workers.train.config import ConfigError  # one error type for every engine configuration (torch-free)

QUANTIZE = ("int8_dynamic", "int8_weight_only", "int4_weight_only")
PRUNE = ("prune_magnitude", "prune_2_4", "prune_heads", "prune_mlp")
STRUCTURED = ("prune_heads", "prune_mlp")
METHODS = (*QUANTIZE, *PRUNE, "distill")
TASKS = ("causal_lm", "classification")
DEVICES = ("auto", "cpu", "cuda")
BACKENDS = ("torchao", "bitsandbytes")
GROUP_SIZES = (32, 64, 128, 256)
ACTIVATION_SCALES = ("tensor", "token")
STUDENT_SHAPE = ("student_layers", "student_hidden_size", "student_intermediate_size", "student_heads")

LABELS = {
    "int8_dynamic": "INT8 dynamic (CPU)",
    "int8_weight_only": "INT8 weight-only",
    "int4_weight_only": "INT4 weight-only",
    "prune_magnitude": "magnitude pruning (unstructured)",
    "prune_2_4": "2:4 semi-structured pruning",
    "prune_heads": "attention-head pruning",
    "prune_mlp": "MLP-channel pruning",
    "distill": "distillation",
}


class CompressError(RuntimeError):
    """The run could not go on (unreadable model, missing kernel at run time); the message says what to do."""


@dataclass
class CompressConfig:
    """Everything one compression run needs. Plain values only, so it round-trips through JSON."""

    method: str
    """One of METHODS: int8_dynamic (CPU serving), int8_weight_only / int4_weight_only (GPU serving),
    prune_magnitude (global, unstructured), prune_2_4 (2 of every 4 weights), prune_heads / prune_mlp
    (structured: tensors physically shrink), distill (teacher = model_path into a student)."""
    model_path: str
    """The source model (the teacher for distillation): a Hugging Face folder, safetensors only."""
    output_dir: str
    """Where the run writes; the compressed model goes to <output_dir>/model, the result to result.json."""
    task: str = "causal_lm"
    """"causal_lm" or "classification" (a *ForSequenceClassification head)."""
    device: str = "auto"
    """Where to compress and recover: "cpu", "cuda", or "auto" (cuda when available)."""
    backend: str = "torchao"
    """Weight-only quantisation library: "torchao" or "bitsandbytes" (CUDA only, when installed)."""
    group_size: int = 128
    """INT4 weight-only: weights per quantisation group (32, 64, 128 or 256)."""
    sparsity: float = 0.5
    """Pruning: the share of weights (magnitude, 2:4), heads / KV groups (prune_heads) or MLP channels
    (prune_mlp) removed, in (0, 1). 2:4 is always 0.5."""
    then_int8: bool = False
    """After pruning or distillation, quantise the result with INT8 dynamic (CPU serving): "pruned + INT8"."""
    activation_scales: str = "tensor"
    """INT8 dynamic (the method or then_int8): one activation scale per batch ("tensor", fbgemm's kernel as it
    is: fastest) or per token ("token": keeps more predictions equal to the source's, ~15% slower; see
    workers.compress.pertoken)."""
    train_file: str | None = None
    """JSONL in the training engine's format for ``task`` ("chat" / "instruction" rows for causal LMs,
    {"text", "label"} for classifiers): recovery fine-tune after pruning, the distillation set."""
    validation_file: str | None = None
    """Optional JSONL in the same format; its loss is reported at the end."""
    data_task: str | None = None
    """The training engine's task of train_file ("chat", "instruction", "classification"); default from task."""
    labels: list[str] | None = None
    """Classification label names in id order (the model's id2label when None)."""
    steps: int = 0
    """Optimizer steps of the recovery fine-tune after pruning (0: none) or of distillation (≥ 1)."""
    learning_rate: float = 5e-5
    batch_size: int = 16
    max_seq_len: int = 256
    seed: int = 0
    alpha: float = 0.5
    """Distillation (and recovery_teacher): loss = alpha * T² * KL(teacher ‖ student at temperature T) +
    (1 - alpha) * cross-entropy."""
    temperature: float = 2.0
    recovery_teacher: bool = False
    """Pruning with recovery steps: the unpruned source teaches the pruned model while it recovers (the loss above,
    with alpha and temperature), instead of the labels alone. What Minitron and Sheared-LLaMA do after pruning: the
    source's soft predictions carry how it generalises, which a short run on the labels does not recover."""
    student_path: str | None = None
    """Distillation into a smaller registered base (same tokenizer as the teacher)."""
    student_layers: int | None = None
    """Distillation into a copy of the teacher keeping this many of its layers (evenly spaced, first and last
    kept) ..."""
    student_hidden_size: int | None = None
    """... optionally narrowed to this residual width (channels ranked by the teacher's activations) ..."""
    student_intermediate_size: int | None = None
    """... this MLP width ..."""
    student_heads: int | None = None
    """... and this many attention heads (key/value groups for grouped-query models)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompressConfig:
        """Unknown keys and missing required ones are ConfigError problems, like every other mistake."""
        if not isinstance(data, dict):
            raise ConfigError({"config": ["must be an object"]})
        known = {f.name: f for f in fields(cls)}
        problems = {key: ["is not a compression setting"] for key in data if key not in known}
        for name, f in known.items():
            if f.default is MISSING and name not in data:
                problems[name] = ["is required"]
        if problems:  # the known settings are checked too, so every problem is listed at once
            if not any(p == ["is required"] for p in problems.values()):
                try:
                    cls(**{k: v for k, v in data.items() if k in known}).validate()
                except ConfigError as e:
                    problems.update(e.problems)
            raise ConfigError(problems)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        problems: dict[str, list[str]] = {}
        for check in (_check_types, _check_method, _check_training, _check_student):
            for key, message in check(self):
                problems.setdefault(key, []).append(message)
        if problems:
            raise ConfigError(problems)

    @property
    def trains(self) -> bool:
        return self.method == "distill" or (self.method in PRUNE and self.steps > 0)

    @property
    def quantized_output(self) -> bool:
        return self.method in QUANTIZE or self.then_int8


_INTS = ("group_size", "steps", "batch_size", "max_seq_len", "seed")
_FLOATS = ("sparsity", "learning_rate", "alpha", "temperature")
_OPTIONAL_INTS = STUDENT_SHAPE
_STRINGS = ("method", "model_path", "output_dir", "task", "device", "backend", "activation_scales")


def _check_types(c: CompressConfig):
    for name in _INTS:
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, int):
            yield name, f"must be a whole number (got {value!r})"
    for name in _OPTIONAL_INTS:
        value = getattr(c, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            yield name, f"must be a whole number of at least 1 (got {value!r})"
    for name in _FLOATS:
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            yield name, f"must be a number (got {value!r})"
    for name in _STRINGS:
        if not isinstance(getattr(c, name), str) or not getattr(c, name).strip():
            yield name, "is required"
    for name in ("then_int8", "recovery_teacher"):
        if not isinstance(getattr(c, name), bool):
            yield name, f"must be true or false (got {getattr(c, name)!r})"
    if c.labels is not None and (
        not isinstance(c.labels, list) or not c.labels or not all(isinstance(x, str) for x in c.labels)
    ):
        yield "labels", "must be a non-empty list of label names"


def _number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _check_method(c: CompressConfig):
    if c.method not in METHODS:
        yield "method", f"must be one of {', '.join(METHODS)} (got {c.method!r})"
    if c.task not in TASKS:
        yield "task", f"must be one of {', '.join(TASKS)} (got {c.task!r})"
    if c.device not in DEVICES:
        yield "device", f"must be one of {', '.join(DEVICES)} (got {c.device!r})"
    if c.backend not in BACKENDS:
        yield "backend", f"must be one of {', '.join(BACKENDS)} (got {c.backend!r})"
    if c.method == "int4_weight_only" and c.group_size not in GROUP_SIZES:
        yield "group_size", f"must be one of {', '.join(map(str, GROUP_SIZES))} (got {c.group_size!r})"
    if c.method in PRUNE and _number(c.sparsity) and not 0 < c.sparsity < 1:
        yield "sparsity", f"must be strictly between 0 and 1 (got {c.sparsity})"
    if c.method == "prune_2_4" and _number(c.sparsity) and c.sparsity != 0.5:
        yield "sparsity", "2:4 pruning keeps 2 of every 4 weights: its sparsity is always 0.5"
    if c.then_int8 and c.method in QUANTIZE:
        yield "then_int8", "applies after pruning or distillation, not after quantisation"
    if c.activation_scales not in ACTIVATION_SCALES:
        yield (
            "activation_scales",
            f"must be one of {', '.join(ACTIVATION_SCALES)} (got {c.activation_scales!r})",
        )
    elif c.activation_scales != "tensor" and c.method != "int8_dynamic" and not c.then_int8:
        yield "activation_scales", "applies to INT8 dynamic quantisation (the method, or then INT8)"
    if c.method == "int8_dynamic" and c.device == "cuda":
        yield "device", "INT8 dynamic quantisation is for CPU serving; use int8_weight_only on a GPU"


def _check_training(c: CompressConfig):
    if c.method in QUANTIZE and isinstance(c.steps, int) and c.steps:
        yield "steps", "quantisation does not train; leave steps at 0"
    if c.method == "distill" and isinstance(c.steps, int) and c.steps < 1:
        yield "steps", "distillation needs at least 1 training step"
    if isinstance(c.steps, int) and c.steps < 0:
        yield "steps", f"must be 0 or more (got {c.steps})"
    if c.recovery_teacher is True and (c.method not in PRUNE or not isinstance(c.steps, int) or c.steps < 1):
        yield "recovery_teacher", "applies to pruning with recovery steps (steps ≥ 1)"
    if c.trains and not c.train_file:
        yield "train_file", "a dataset version is needed to train on (recovery or distillation)"
    if _number(c.learning_rate) and c.learning_rate <= 0:
        yield "learning_rate", f"must be above 0 (got {c.learning_rate})"
    for name in ("batch_size", "max_seq_len"):
        value = getattr(c, name)
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            yield name, f"must be at least 1 (got {value})"
    if _number(c.temperature) and c.temperature <= 0:
        yield "temperature", f"must be above 0 (got {c.temperature})"
    if _number(c.alpha) and not 0 <= c.alpha <= 1:
        yield "alpha", f"must be between 0 and 1 (got {c.alpha})"
    if c.data_task is not None and c.data_task not in ("chat", "instruction", "classification"):
        yield "data_task", f"must be chat, instruction or classification (got {c.data_task!r})"
    if c.data_task is not None and (c.data_task == "classification") != (c.task == "classification"):
        yield "data_task", f"{c.data_task} data cannot train a {c.task} model"


def _check_student(c: CompressConfig):
    shape = [name for name in STUDENT_SHAPE if getattr(c, name) is not None]
    if c.method != "distill":
        for name in ("student_path", *shape):
            if getattr(c, name):
                yield name, "applies to distillation only"
        return
    if c.student_path and shape:
        yield (
            "student_path",
            f"choose a registered student or a shrunk copy of the teacher ({shape[0]}), not both",
        )
    if not c.student_path and not shape:
        yield (
            "student_path",
            "choose a student: a smaller registered base, or a copy of the teacher made smaller",
        )


# ---- checks against the hardware and the model's config.json (torch-free; the web runs them before queuing)


def check_hardware(
    config: CompressConfig, *, cuda: bool, int4_cpu_kernel: bool = False, bitsandbytes: bool = False
) -> list[str]:
    """Why this machine cannot run the method, or []; ``cuda`` says where the job would run."""
    if config.device == "cuda" and not cuda:
        return ["device: cuda was asked for, but the workers that would run it have no CUDA GPU"]
    on_gpu = cuda and config.device != "cpu"
    problems = []
    if config.method == "int8_dynamic" and on_gpu and config.device == "cuda":
        problems.append("method: INT8 dynamic quantisation runs on CPU only")
    if config.method == "int4_weight_only" and not on_gpu and not int4_cpu_kernel:
        problems.append(
            "method: INT4 weight-only needs a CUDA GPU (torchao's INT4 kernels); this machine has no INT4 CPU kernel"
        )
    if config.method in ("int8_weight_only", "int4_weight_only") and config.backend == "bitsandbytes":
        if not on_gpu:
            problems.append("backend: bitsandbytes quantises on CUDA GPUs only")
        elif not bitsandbytes:
            problems.append("backend: bitsandbytes is not installed on the workers; use torchao")
    return problems


def model_shape(model_config: dict) -> dict[str, int]:
    """The widths that pruning and quantisation care about, from a Hugging Face config.json (Llama or BERT)."""
    hidden = int(model_config.get("hidden_size") or model_config.get("dim") or 0)
    heads = int(model_config.get("num_attention_heads") or 0)
    kv_heads = int(model_config.get("num_key_value_heads") or heads)
    head_dim = int(model_config.get("head_dim") or (hidden // heads if heads else 0))
    return {
        "hidden_size": hidden,
        "intermediate_size": int(model_config.get("intermediate_size") or 0),
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "layers": int(model_config.get("num_hidden_layers") or 0),
        "vocab_size": int(model_config.get("vocab_size") or 0),
    }


def _kept(total: int, sparsity: float) -> int:
    """Units kept when removing ``sparsity`` of ``total``; the engine uses the same rounding."""
    return total - int(round(total * sparsity))


def check_shapes(config: CompressConfig, model_config: dict) -> dict[str, list[str]]:
    """Problems of applying the method to a model with this config.json, keyed by field; {} when it fits."""
    s = model_shape(model_config)
    problems: dict[str, list[str]] = {}

    def add(key: str, message: str) -> None:
        problems.setdefault(key, []).append(message)

    if not s["hidden_size"] or not s["heads"]:
        add("model", "config.json has no hidden_size / num_attention_heads: not a Llama- or BERT-style model")
        return problems
    inputs = {"hidden_size": s["hidden_size"], "intermediate_size": s["intermediate_size"],
              "heads × head_dim": s["heads"] * s["head_dim"]}  # fmt: skip
    if config.method == "prune_2_4":
        for name, width in inputs.items():
            if width % 4:
                add(
                    "method", f"2:4 pruning needs every layer's input width divisible by 4; {name} is {width}"
                )
    if config.method == "int4_weight_only":
        for name, width in inputs.items():
            if width % config.group_size:
                add("group_size", f"{name} ({width}) is not a multiple of the group size {config.group_size}")
    if config.method == "prune_heads" and _number(config.sparsity) and 0 < config.sparsity < 1:
        grouped = s["kv_heads"] < s["heads"]
        total, unit = (s["kv_heads"], "key/value groups") if grouped else (s["heads"], "attention heads")
        kept = _kept(total, config.sparsity)
        if kept == total:
            add("sparsity", f"{config.sparsity} of {total} {unit} per layer removes none; ask for more")
        if kept < 1:
            add("sparsity", f"{config.sparsity} of {total} {unit} per layer would remove them all")
    if config.method == "prune_mlp" and _number(config.sparsity) and 0 < config.sparsity < 1:
        kept = _kept(s["intermediate_size"], config.sparsity)
        if kept in (0, s["intermediate_size"]):
            add("sparsity", f"{config.sparsity} of {s['intermediate_size']} MLP channels leaves {kept}")
    if config.method == "distill":
        _check_student_shape(config, s, add)
    return problems


def _check_student_shape(config: CompressConfig, s: dict[str, int], add) -> None:
    limits = {"student_layers": s["layers"], "student_hidden_size": s["hidden_size"],
              "student_intermediate_size": s["intermediate_size"],
              "student_heads": s["kv_heads"] if s["kv_heads"] < s["heads"] else s["heads"]}  # fmt: skip
    for name, limit in limits.items():
        value = getattr(config, name)
        if isinstance(value, int) and value > limit:
            add(name, f"must not exceed the teacher's {limit}")
    hidden, heads = config.student_hidden_size, config.student_heads
    bert_like = s["kv_heads"] == s["heads"] and s["head_dim"] * s["heads"] == s["hidden_size"]
    if bert_like and isinstance(hidden, int) and hidden < s["hidden_size"]:
        if hidden % s["head_dim"]:
            add("student_hidden_size", f"must be a multiple of the head size {s['head_dim']} for this model")
        elif heads is not None and heads * s["head_dim"] != hidden:
            add("student_heads", f"must be student_hidden_size / {s['head_dim']} = {hidden // s['head_dim']}")
