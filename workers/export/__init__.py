"""Exports of a model version for other serving stacks: a merged Hugging Face folder, ONNX for classifiers and a
Triton Inference Server model repository (Python backend).

    export_merged("runs/7/adapter", "out/merged", task="causal_lm", fmt="peft_adapter", base_dir="models/x")
    export_onnx("models/intents", "out/onnx", task="classification", fmt="hf")
    export_triton("models/intents", "out/triton", task="classification", fmt="hf", model_name="intents-v3")

Design:

- Plain functions taking folders and returning an ``ExportResult``; they never touch the database (the portal's
  registry_app.services.exports runs them in a job and records the folder's sha256). Each writes into a sibling
  ``<out>.partial`` folder and renames it into place at the end, so a failed export leaves no half folder behind.
- Formats are the registry's: ``hf`` (a full folder, copied as is, hard-linked where the file system allows),
  ``peft_adapter`` (merged into its base with peft's ``merge_and_unload`` and saved as safetensors with the
  tokenizer; a classifier keeps its label names in config.json) and ``quantized`` (refused: int8/int4 weights
  cannot be turned back into an HF folder; export the version it was compressed from).
- Loading goes through the engine's own loaders (workers.generate.load_causal, workers.classify.load_classifier):
  safetensors only, ``trust_remote_code=False``, float32 on the CPU.
- ONNX: see workers.export.onnx. Triton: see workers.export.triton.

Plain Python + torch: never imports django.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

KINDS = ("merged_hf", "onnx", "triton")
TASKS = ("causal_lm", "classification")
FORMATS = ("hf", "peft_adapter", "quantized")


class ExportError(RuntimeError):
    """The version cannot be exported this way; the message says why and what to do instead."""


@dataclass
class ExportResult:
    kind: str  # merged_hf | onnx | triton
    path: Path  # the folder written
    files: list[str] = field(default_factory=list)  # relative paths, sorted
    notes: dict = field(default_factory=dict)  # e.g. {"merged": True, "labels": [...], "opset": 18}

    def summary(self) -> str:
        return f"{self.kind} export in {self.path} ({len(self.files)} files)"


_LAZY = {"export_merged": "workers.export.merged", "export_onnx": "workers.export.onnx",
         "export_triton": "workers.export.triton"}  # fmt: skip


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(name)
