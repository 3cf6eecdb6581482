"""The one loader for every compression result: ``load_model(path, task)`` -> (model, tokenizer), eval mode.

- A folder holding ``quantization.json`` (written by workers.compress.quantize.save_quantized) is rebuilt:
  the architecture from config.json with no weights, the plain tensors from model.safetensors, and the
  quantised modules restored from their int8 / int4 tensors and scales, so outputs are bit-identical to the
  quantised model before saving.
- Any other folder (pruned, distilled, a plain Hugging Face folder or a PEFT adapter over ``base_dir``) is
  delegated to workers.classify.load_classifier (task "classification") or workers.generate.load_causal
  (task "causal_lm"); their errors come back as CompressError with the same message.

Plain Python + torch: never imports django.
"""

from __future__ import annotations

from pathlib import Path

from workers.compress.config import TASKS, CompressError

QUANT_FILE = "quantization.json"


def load_model(path, task: str, *, base_dir=None, device: str | None = None):
    """(model, tokenizer) of a compression result (or any model folder) for ``task``; CompressError naming the
    path when the folder will not load."""
    if task not in TASKS:
        raise CompressError(f"task must be one of {', '.join(TASKS)} (got {task!r})")
    folder = Path(path)
    if not folder.is_dir():
        raise CompressError(f"model folder {folder} does not exist or is not a folder")
    if (folder / QUANT_FILE).exists():
        from workers.compress.quantize import load_quantized

        return load_quantized(folder, task, device=device)
    return _delegate(folder, task, base_dir=base_dir, device=device)


def _delegate(folder: Path, task: str, *, base_dir, device):
    base = str(base_dir) if base_dir is not None else None
    if task == "classification":
        from workers.classify import ClassifyError, load_classifier

        try:
            return load_classifier(str(folder), base_dir=base, device=device)
        except ClassifyError as exc:
            raise CompressError(str(exc)) from None
    from workers.generate import GenerateError, load_causal

    try:
        return load_causal(str(folder), base_dir=base, device=device)
    except GenerateError as exc:
        raise CompressError(str(exc)) from None
