"""A Triton Inference Server model repository (Python backend) for one version::

    <repo>/<model_name>/config.pbtxt     backend "python", max_batch_size, TEXT in; LABEL + PROBS or GENERATED_TEXT out
    <repo>/<model_name>/1/model.py       the TritonPythonModel (workers/export/triton_model.py, copied)
    <repo>/<model_name>/1/model/         the merged Hugging Face folder (workers.export.merged)

Serve it with ``tritonserver --model-repository=<repo>`` in an image whose Python has torch and transformers
(e.g. nvcr.io's tritonserver "-py3" images plus ``pip install torch transformers``). Requests batch up to
``max_batch_size`` texts (dynamic batching is on); the instance runs on a GPU when Triton gives it one
(KIND_AUTO). Design notes on the batch handling are in triton_model.py.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from workers.export import ExportError, ExportResult
from workers.export.merged import check_arguments, file_list, staged, write_merged

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def model_name_for(family: str, number: int) -> str:
    """A Triton model name (also a folder name) for a version: ``support-bot-v3``; unsafe characters become _."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", family).strip("._-") or "model"
    return f"{name[:90]}-v{number}"


def config_pbtxt(*, model_name: str, task: str, max_batch_size: int, labels: int = 0,
                 max_new_tokens: int = 128) -> str:  # fmt: skip
    if task == "classification":
        outputs = (
            '  { name: "LABEL" data_type: TYPE_STRING dims: [ 1 ] },\n'
            f'  {{ name: "PROBS" data_type: TYPE_FP32 dims: [ {labels} ] }}\n'
        )
    else:
        outputs = '  { name: "GENERATED_TEXT" data_type: TYPE_STRING dims: [ 1 ] }\n'
    return (
        f'name: "{model_name}"\n'
        'backend: "python"\n'
        f"max_batch_size: {max_batch_size}\n"
        'input [\n  { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] }\n]\n'
        f"output [\n{outputs}]\n"
        "instance_group [ { count: 1 kind: KIND_AUTO } ]\n"
        "dynamic_batching { }\n"
        f'parameters: {{ key: "task" value: {{ string_value: "{task}" }} }}\n'
        f'parameters: {{ key: "max_new_tokens" value: {{ string_value: "{max_new_tokens}" }} }}\n'
    )


def export_triton(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    task: str,
    fmt: str,
    model_name: str,
    base_dir: str | Path | None = None,
    max_batch_size: int = 8,
    max_new_tokens: int = 128,
) -> ExportResult:
    """A model repository at ``out_dir`` (which must not exist yet) holding the one model ``model_name``."""
    check_arguments(task, fmt, base_dir)
    problems = []
    if not MODEL_NAME.match(model_name or ""):
        problems.append(
            f"model_name {model_name!r}: letters, digits, _ . - only, starting with a letter or digit"
        )
    if not 1 <= max_batch_size <= 1024:
        problems.append(f"max_batch_size must be between 1 and 1024 (got {max_batch_size})")
    if not 1 <= max_new_tokens <= 32768:
        problems.append(f"max_new_tokens must be between 1 and 32768 (got {max_new_tokens})")
    if problems:
        raise ExportError("; ".join(problems))
    with staged(out_dir) as partial:
        version_dir = partial / model_name / "1"
        (version_dir / "model").mkdir(parents=True)
        notes = write_merged(model_dir, version_dir / "model", task=task, fmt=fmt, base_dir=base_dir)
        shutil.copyfile(Path(__file__).with_name("triton_model.py"), version_dir / "model.py")
        labels = _label_count(version_dir / "model") if task == "classification" else 0
        (partial / model_name / "config.pbtxt").write_text(
            config_pbtxt(
                model_name=model_name,
                task=task,
                max_batch_size=max_batch_size,
                labels=labels,
                max_new_tokens=max_new_tokens,
            )  # fmt: skip
        )
    out = Path(out_dir)
    notes.update(model_name=model_name, max_batch_size=max_batch_size)
    return ExportResult(kind="triton", path=out, files=file_list(out), notes=notes)


def _label_count(folder: Path) -> int:
    import json

    config = json.loads((folder / "config.json").read_text())
    count = len(config.get("id2label") or {}) or int(config.get("num_labels") or 0)
    if count < 1:
        raise ExportError(f"{folder}/config.json names no labels (id2label); is it a classifier?")
    return count
