"""A merged Hugging Face folder: an adapter merged into its base, a full folder copied, a quantised one refused.

The result loads with plain ``AutoModelFor….from_pretrained(folder)`` (safetensors, tokenizer beside it, a
classifier's label names in config.json), so any stack that reads Hugging Face folders (vLLM, TGI, Triton's
Python backend, transformers itself) can serve it without peft or this project.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workers.export import FORMATS, TASKS, ExportError, ExportResult

QUANTISED_REFUSAL = (
    "is quantised: its int8/int4 weights cannot be merged back into a Hugging Face folder; "
    "export the version it was compressed from instead"
)


def check_arguments(task: str, fmt: str, base_dir: str | Path | None) -> None:
    problems = []
    if task not in TASKS:
        problems.append(f"task must be one of {', '.join(TASKS)} (got {task!r})")
    if fmt not in FORMATS:
        problems.append(f"format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    if fmt == "peft_adapter" and not base_dir:
        problems.append("a PEFT adapter needs its base model folder (base_dir)")
    if problems:
        raise ExportError("; ".join(problems))


@contextmanager
def staged(out_dir: str | Path) -> Iterator[Path]:
    """A fresh ``<out>.partial`` folder to write into, renamed to ``out`` only when the block ends without error."""
    out = Path(out_dir)
    if out.exists():
        raise ExportError(f"{out} already exists; exports never overwrite a folder")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    partial.rename(out)


def file_list(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # same file system: no bytes copied; the files of a version never change
    except OSError:
        shutil.copy2(src, dst)


def load_merged(model_dir: str | Path, *, task: str, fmt: str, base_dir: str | Path | None = None):
    """(model, tokenizer) in float32 on the CPU, an adapter merged into its base; ExportError when it cannot."""
    check_arguments(task, fmt, base_dir)
    folder = Path(model_dir)
    if fmt == "quantized" or (folder / "quantization.json").is_file():
        raise ExportError(f"{folder} {QUANTISED_REFUSAL}")
    base = str(base_dir) if base_dir else None
    if task == "classification":
        from workers.classify import ClassifyError, load_classifier

        try:
            return load_classifier(str(folder), base_dir=base, device="cpu")
        except ClassifyError as exc:
            raise ExportError(str(exc)) from None
    from workers.generate import GenerateError, load_causal

    try:
        return load_causal(str(folder), base_dir=base, device="cpu")
    except GenerateError as exc:
        raise ExportError(str(exc)) from None


def write_merged(
    model_dir: str | Path, target: Path, *, task: str, fmt: str, base_dir: str | Path | None = None
) -> dict:
    """Write the merged folder into the existing folder ``target``; returns notes for the result."""
    check_arguments(task, fmt, base_dir)
    folder = Path(model_dir)
    if fmt == "quantized" or (folder / "quantization.json").is_file():
        raise ExportError(f"{folder} {QUANTISED_REFUSAL}")
    if fmt == "hf":
        if not (folder / "config.json").is_file() or not any(folder.glob("*.safetensors")):
            raise ExportError(f"{folder} is not a Hugging Face folder (config.json and .safetensors weights)")
        shutil.copytree(folder, target, copy_function=_link_or_copy, dirs_exist_ok=True)
        return {"merged": False, "copied_from": str(folder)}
    model, tokenizer = load_merged(folder, task=task, fmt=fmt, base_dir=base_dir)
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    notes = {"merged": True, "adapter": str(folder), "base": str(base_dir)}
    if task == "classification":
        notes["labels"] = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
    return notes


def export_merged(
    model_dir: str | Path, out_dir: str | Path, *, task: str, fmt: str, base_dir: str | Path | None = None
) -> ExportResult:
    """A self-contained Hugging Face folder at ``out_dir`` (which must not exist yet)."""
    check_arguments(task, fmt, base_dir)
    with staged(out_dir) as partial:
        notes = write_merged(model_dir, partial, task=task, fmt=fmt, base_dir=base_dir)
    out = Path(out_dir)
    return ExportResult(kind="merged_hf", path=out, files=file_list(out), notes=notes)
