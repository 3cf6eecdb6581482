"""``compress(config, report)``: one compression run from the source folder to <output_dir>/model.

Stages, each reported (``report(step=0, progress=..., message=...)``; a "stop" answer between stages or during
training ends the run as "cancelled", writing no model):

1. load the source (the teacher) in float32 (bfloat16 on CUDA, as the generation engine loads it);
2. compress: quantise (workers.compress.quantize), mask (prune: magnitude or 2:4), cut (structure: heads or MLP
   channels), or build the student (structure.make_student, or a smaller registered base);
3. train, when asked: the recovery fine-tune after pruning (masks keep pruned weights at zero; with
   ``recovery_teacher`` a frozen copy of the unpruned source teaches it) or distillation
   (workers.compress.finetune);
4. save: a Hugging Face folder, or, for quantisation and ``then_int8``, the quantised folder that
   ``load_model`` reloads. result.json beside it.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch

from workers.compress.config import PRUNE, QUANTIZE, STRUCTURED, CompressConfig, CompressError
from workers.compress.result import CompressResult
from workers.train.report import no_report

TEXT_FIELDS = ("text", "instruction", "input", "output")


def _device(config: CompressConfig) -> torch.device:
    """INT8 dynamic runs on the CPU; otherwise the config's device (a CUDA asked for but absent is
    check_runtime's error)."""
    from workers.compress.quantize import resolve_device

    return torch.device("cpu" if config.method == "int8_dynamic" else resolve_device(config))


def calibration_texts(config: CompressConfig, limit: int = 64) -> list[str]:
    """Up to ``limit`` texts from the training file (the data the model serves), else the fixed probe texts."""
    from workers.compress.probes import PROBE_TEXTS

    texts: list[str] = []
    if config.train_file and Path(config.train_file).is_file():
        with open(config.train_file, encoding="utf-8") as f:
            for line in f:
                if len(texts) >= limit:
                    break
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                text = _row_text(row) if isinstance(row, dict) else ""
                if text:
                    texts.append(text)
    return texts or list(PROBE_TEXTS)


def _row_text(row: dict) -> str:
    if isinstance(row.get("messages"), list):
        return "\n".join(str(m.get("content", "")) for m in row["messages"] if isinstance(m, dict))
    return "\n".join(str(row[k]) for k in TEXT_FIELDS if row.get(k))


def _stage(report, progress: float, message: str) -> bool:
    """Progress through the stages before and after training (training reports its own); True means stop."""
    return report(step=0, progress=progress, message=message) == "stop"


def compress(config: CompressConfig, report=no_report) -> CompressResult:
    from workers.compress.load import load_model
    from workers.compress.measure import count_parameters
    from workers.compress.quantize import check_runtime
    from workers.generate import folder_size_bytes

    config.validate()
    device = _device(config)
    check_runtime(config, device)
    started = time.monotonic()

    def stage(progress: float, message: str) -> bool:
        return _stage(report, progress, message)

    out = Path(config.output_dir)
    model_dir = out / "model"
    model, tokenizer = load_model(config.model_path, config.task, device=str(device))
    result = CompressResult(status="succeeded", method=config.method, model_path=str(model_dir), format="hf",
                            parameters_before=count_parameters(model),
                            size_before=folder_size_bytes(config.model_path))  # fmt: skip
    if stage(0.05, f"loaded the source ({result.parameters_before:,} parameters)"):
        return _cancelled(result, out)
    teacher = _recovery_teacher(config, model)  # copied before pruning cuts the model
    model, masks = _apply(config, model, tokenizer, result)
    if config.trains:
        model = None if stage(0.1, "training") else _train_stage(config, model, tokenizer, report, masks, result,
                                                                   teacher)  # fmt: skip
        if model is None:
            return _cancelled(result, out)
    if masks is not None:
        from workers.compress.prune import masked_sparsity

        result.sparsity_reached = masked_sparsity(model, masks)
    if stage(0.9, "saving"):
        return _cancelled(result, out)
    _save(config, model, tokenizer, model_dir, result)
    result.parameters_after = count_parameters(model)
    result.size_after = folder_size_bytes(model_dir)
    result.seconds = round(time.monotonic() - started, 3)
    result.write(out)
    stage(1.0, "saved")
    return result


def _apply(config: CompressConfig, model, tokenizer, result: CompressResult):
    """The method itself; returns (model, masks or None). Quantisation happens at saving time."""
    masks = None
    if config.method in PRUNE:
        result.sparsity_requested = config.sparsity
    if config.method in ("prune_magnitude", "prune_2_4"):
        from workers.compress import prune

        if config.method == "prune_magnitude":
            masks = prune.magnitude_masks(model, config.sparsity)
        else:
            masks = prune.semi_structured_masks(model)
        prune.apply_masks(model, masks)
    elif config.method in STRUCTURED:
        from workers.compress import structure

        calibration = structure.calibration_batches(tokenizer, calibration_texts(config), max_len=128)
        cut = structure.prune_heads if config.method == "prune_heads" else structure.prune_mlp
        details = cut(model, config.sparsity, calibration=calibration)
        result.details.update(details)
        result.sparsity_reached = details.get("sparsity_reached")
    elif config.method == "distill":
        result.details["_student"] = _student(config, model, tokenizer, result)
    return model, masks


def _recovery_teacher(config: CompressConfig, model):
    """A frozen copy of the unpruned source, when it is to teach the recovery (``recovery_teacher``; validate()
    allows it only for pruning with recovery steps)."""
    if not config.recovery_teacher:
        return None
    teacher = copy.deepcopy(model).eval()
    teacher.requires_grad_(False)
    return teacher


def _student(config: CompressConfig, teacher, tokenizer, result: CompressResult):
    from workers.compress import structure

    if config.student_path:
        student = _load_student(config, teacher)
        result.details["student"] = {"path": config.student_path}
    else:
        calibration = structure.calibration_batches(tokenizer, calibration_texts(config), max_len=128)
        shape = {"layers": config.student_layers, "hidden_size": config.student_hidden_size,
                 "intermediate_size": config.student_intermediate_size, "heads": config.student_heads}  # fmt: skip
        student = structure.make_student(teacher, calibration=calibration, **shape)
        result.details["student"] = {k: v for k, v in shape.items() if v is not None}
    result.details["student"]["parameters"] = structure.parameter_count(student)
    return student.to(next(teacher.parameters()).device)


def _load_student(config: CompressConfig, teacher):
    """A smaller registered base as the student; a classifier gets a fresh head for the teacher's labels."""
    from workers.compress.load import load_model

    if config.task != "classification":
        student, _ = load_model(config.student_path, "causal_lm", device="cpu")
        return student
    from transformers import AutoModelForSequenceClassification

    labels = teacher.config.id2label
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            config.student_path, num_labels=len(labels), id2label=labels,
            label2id={name: i for i, name in labels.items()}, ignore_mismatched_sizes=True,
            trust_remote_code=False, use_safetensors=True, dtype=torch.float32,
        )  # fmt: skip
    except (OSError, ValueError) as e:
        raise CompressError(f"cannot load the student {config.student_path}: {e}") from None


def _train_stage(
    config: CompressConfig, model, tokenizer, report, masks, result: CompressResult, teacher=None
):
    """Recovery (the pruned model trains, taught by ``teacher`` when one is given) or distillation (the student
    learns from ``model``); the trained model, or None when the report answered "stop". Training's progress fills
    0.1-0.9 of the run's."""
    if config.method == "distill":
        teacher, student = model, result.details.pop("_student")
    else:
        student = model

    def scaled(step=None, **metrics):
        if metrics.get("progress") is not None:
            metrics["progress"] = 0.1 + 0.8 * metrics["progress"]
        return report(step=step, **metrics)

    device = next(student.parameters()).device
    outcome = _train(config, student, tokenizer, scaled, teacher, masks, device)
    result.train_losses, result.val_loss = outcome.losses, outcome.val_loss
    return None if outcome.status == "cancelled" else student


def _train(config, student, tokenizer, report, teacher, masks, device):
    from workers.compress.finetune import train_student

    student.requires_grad_(True)  # the loaders freeze what they load for inference
    if teacher is not None:
        teacher.requires_grad_(False)
    return train_student(student, tokenizer, config, report, teacher=teacher, masks=masks, device=device)


def _save(config: CompressConfig, model, tokenizer, model_dir: Path, result: CompressResult) -> None:
    if config.quantized_output:
        from workers.compress.quantize import quantize_model, save_quantized

        model = model.to("cpu") if config.method != "int4_weight_only" else model
        method = config.method if config.method in QUANTIZE else "int8_dynamic"
        details = quantize_model(model, config, method=method)
        save_quantized(model, tokenizer, model_dir, config, details, config.model_path)
        result.details["quantization"] = details
        result.format = "quantized"
        return
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)


def _cancelled(result: CompressResult, out: Path) -> CompressResult:
    result.status = "cancelled"
    result.details.pop("_student", None)
    result.write(out)
    return result
