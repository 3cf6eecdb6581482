"""ONNX for sequence classifiers: ``model.onnx`` (dynamic batch and sequence axes) with the tokenizer and labels.

Layout of the folder written::

    model.onnx        inputs input_ids, attention_mask (+ token_type_ids for BERT-style models), int64
                      [batch, sequence]; output logits, float32 [batch, labels]
    labels.json       {"labels": [...]}: the name of each logit, in order
    config.json       the model's Hugging Face config (id2label, pad_token_id, …)
    tokenizer files   as the tokenizer saves them

Design:

- Causal language models are refused: generation needs a decoding loop and a key/value cache that a single
  ONNX graph does not carry; export them as a merged folder or a Triton repository instead. Quantised versions are
  refused too (workers.export.merged). An adapter is merged into its base first.
- torch 2.13's ``torch.onnx.export`` defaults to the torch.export-based ("dynamo") exporter, which needs the
  ``onnx`` and ``onnxscript`` packages (both pure-Python wheels on PyPI, installed with the project; they work
  offline). We use it: the TorchScript exporter (``dynamo=False``) still runs but is deprecated since torch 2.9.
  Dynamic axes are given as ``dynamic_shapes`` with named dimensions; opset 18. Weights are stored inside
  model.onnx unless they pass 1.5 GB (protobuf's 2 GB limit), then in ``model.onnx.data`` beside it. Measured on
  the tests' tiny BERT (2 layers, hidden 64), CPU: about 5 s per export, most of it tracing, against 0.6 s for the
  deprecated exporter; onnxruntime's logits match torch's to 1e-8.
- The graph is traced through ``LogitsOnly`` (logits out, no key/value cache), so decoder-based classifiers
  export too: a tiny Llama with a ``score`` head gave logits within 1e-7 of torch's, right-padded batches
  included (checked by hand; the tests cover the BERT case to keep the suite short).
- The graph is checked with ``onnx.checker`` before the folder is put in place.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch

from workers.export import ExportError, ExportResult
from workers.export.merged import check_arguments, file_list, load_merged, staged

OPSET = 18
INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")
EXTERNAL_DATA_BYTES = 1_500_000_000
CAUSAL_REFUSAL = (
    "ONNX export is for classifiers only: a causal language model needs a decoding loop and a key/value cache; "
    "export it as a merged Hugging Face folder or a Triton repository instead"
)


def input_names(model, tokenizer) -> list[str]:
    """The inputs both the tokenizer produces and the model's forward accepts, in a fixed order."""
    accepted = set(inspect.signature(model.forward).parameters)
    produced = set(getattr(tokenizer, "model_input_names", None) or ("input_ids", "attention_mask"))
    return [
        name for name in INPUT_ORDER if name in accepted and (name in produced or name != "token_type_ids")
    ]


class LogitsOnly(torch.nn.Module):
    """The classifier without its cache or extra outputs: decoder-based classifiers (a Llama with a ``score``
    head) return a key/value cache that torch.export cannot put in a graph's outputs."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits


def _example(names: list[str], vocab: int) -> dict[str, torch.Tensor]:
    ids = torch.randint(3, max(4, min(vocab, 100)), (2, 8))
    inputs = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "token_type_ids": torch.zeros_like(ids),
    }
    return {name: inputs[name] for name in names}


def export_onnx(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    task: str,
    fmt: str,
    base_dir: str | Path | None = None,
    opset: int = OPSET,
) -> ExportResult:
    """An ONNX classifier folder at ``out_dir`` (which must not exist yet)."""
    check_arguments(task, fmt, base_dir)
    if task != "classification":
        raise ExportError(CAUSAL_REFUSAL)
    import onnx

    model, tokenizer = load_merged(model_dir, task=task, fmt=fmt, base_dir=base_dir)
    names = input_names(model, tokenizer)
    labels = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
    if hasattr(model.config, "use_cache"):
        model.config.use_cache = False
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    with staged(out_dir) as partial:
        target = partial / "model.onnx"
        with torch.no_grad():
            torch.onnx.export(
                LogitsOnly(model).eval(), (), str(target), kwargs=_example(names, len(tokenizer)), input_names=names,
                output_names=["logits"], dynamic_shapes={n: {0: "batch", 1: "sequence"} for n in names},
                opset_version=opset, dynamo=True, external_data=weight_bytes > EXTERNAL_DATA_BYTES,
                verbose=False,
            )  # fmt: skip
        try:
            onnx.checker.check_model(str(target))
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"the exported graph does not pass onnx.checker: {exc}") from None
        (partial / "labels.json").write_text(json.dumps({"labels": labels}, indent=2) + "\n")
        model.config.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
    out = Path(out_dir)
    notes = {"inputs": names, "outputs": ["logits"], "labels": labels, "opset": opset}
    return ExportResult(kind="onnx", path=out, files=file_list(out), notes=notes)
