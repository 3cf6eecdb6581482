"""What a finished run leaves in ``output_dir``, all in Hugging Face format, safetensors only.

    adapter/        PEFT methods: adapter_model.safetensors + adapter_config.json + the tokenizer files
    model/          "full": the trained model; PEFT with merge_weights: the base with the adapter merged in
                    (model.safetensors + config.json + generation_config.json + the tokenizer files)
    best/           weights.safetensors + best.json: the trainable weights of the best validation step so far
    checkpoints/    resumable checkpoints (workers.train.checkpoint)
    result.json     TrainResult as JSON, written last (also for a cancelled run)

Which weights the outputs hold (``TrainResult.weights``): "swa" when SWA ran, else "best" when there was a
validation file, else "last".
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from workers.train.checkpoint import atomic_dir

RESULT_FILE = "result.json"


@dataclass
class TrainResult:
    """The outcome of ``train``; also written to ``<output_dir>/result.json``."""

    status: str  # "succeeded" or "cancelled"
    final_step: int
    total_steps: int
    epochs_done: float
    tokens_seen: int
    train_loss: float | None  # last reported training loss
    val_loss: float | None  # validation loss of the weights in the outputs
    val_accuracy: float | None  # classification only
    best_step: int | None
    best_val_loss: float | None
    stopped_early: bool
    weights: str  # "best", "last" or "swa": what adapter/ and model/ hold
    layout: str  # how batches were laid out: "packed", "varlen" or "padded" (workers.train.data)
    train_losses: list = field(default_factory=list)  # [[step, train_loss], ...] at every report
    val_losses: list = field(default_factory=list)  # [[step, val_loss], ...] at every evaluation
    examples: dict = field(default_factory=dict)  # {"train": n, "validation": n, "dropped": n}
    labels: list = field(default_factory=list)  # classification label names in id order
    output_dir: str = ""
    adapter_path: str | None = None
    model_path: str | None = None
    checkpoint_path: str | None = None  # newest checkpoint (a cancelled run resumes from it)
    result_path: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def read(cls, output_dir: str | Path) -> TrainResult:
        data = json.loads((Path(output_dir) / RESULT_FILE).read_text())
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def write(self) -> None:
        path = Path(self.result_path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {
        name: p.detach().to("cpu", copy=True).contiguous()
        for name, p in model.named_parameters()
        if p.requires_grad
    }


@torch.no_grad()
def load_trainable_state(model, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = [name for name in state if name not in params]
    if missing:
        raise KeyError(f"weights for unknown parameters: {missing[:5]}")
    for name, tensor in state.items():
        params[name].copy_(tensor)


def save_best(output_dir: Path, model, step: int, val_loss: float) -> None:
    with atomic_dir(output_dir / "best") as tmp:
        save_file(trainable_state(model), str(tmp / "weights.safetensors"))
        (tmp / "best.json").write_text(json.dumps({"step": step, "val_loss": val_loss}))


def load_best(output_dir: Path, model) -> None:
    load_trainable_state(model, load_file(str(output_dir / "best" / "weights.safetensors")))


def write_model_outputs(model, tokenizer, config, output_dir: Path, device) -> tuple[str | None, str | None]:
    """adapter/ and / or model/ for the trained ``model`` (unwrapped); returns their paths."""
    from workers.train.methods import merged_model

    adapter_path = model_path = None
    if config.method == "full":
        with atomic_dir(output_dir / "model") as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        return None, str(output_dir / "model")
    with atomic_dir(output_dir / "adapter") as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").unlink(missing_ok=True)  # peft's model-card stub
    adapter_path = str(output_dir / "adapter")
    if config.merge_weights:
        merged = merged_model(model, config, Path(adapter_path), device)
        with atomic_dir(output_dir / "model") as tmp:
            merged.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        model_path = str(output_dir / "model")
    return adapter_path, model_path
