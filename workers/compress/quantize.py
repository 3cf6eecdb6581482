"""Quantisation: INT8 dynamic (CPU serving), INT8 / INT4 weight-only (GPU serving), and the folder it saves.

    details = quantize_model(model, config)                  # in place; what was quantised, the kernel, what not
    save_quantized(model, tokenizer, out_dir, config, details, source_dir)
    model, tokenizer = workers.compress.load.load_model(out_dir, task)   # bit-identical outputs

What is quantised and why:

- Every ``nn.Linear`` of the transformer. INT8 dynamic uses PyTorch's ``torch.ao`` dynamic Linear with
  per-output-channel symmetric int8 weights (activations quantised per batch at run time, fbgemm / x86 kernels;
  ``activation_scales="token"`` scales each token's row first, workers.compress.pertoken, for accuracy);
  torchao's Int8DynamicActivationInt8WeightConfig was measured 30x slower than fp32 on this CPU, so it is not
  used. INT8 weight-only is torchao ``Int8WeightOnlyConfig`` (per-row int8, bf16/fp32 activations: a GPU
  serving format; valid but slower than fp32 on CPU). INT4 weight-only is torchao ``Int4WeightOnlyConfig``
  with the tinygemm ``tile_packed_to_4d`` layout (CUDA, bfloat16, groups of ``group_size``); torchao 0.18's
  CPU INT4 path needs the ``mslk`` package (``has_int4_cpu_kernel``), so INT4 on CPU is refused with that
  reason by ``check_runtime``. bitsandbytes (``backend="bitsandbytes"``: Linear8bitLt / NF4 Linear4bit) runs on
  CUDA only and is not installed here: that path is kept small and is untested on this machine.
- Left in float, with the reason in ``details["left_in_float"]``: the classification head (``classifier`` /
  ``score``: a few thousand weights, the most sensitive to rounding), an output projection tied to the input
  embeddings (stored once, as the embeddings' int8 rows), and for INT4 a Linear whose input width is not a
  multiple of the group size.
- Embeddings: on MiniLM the word embeddings are 11.7M of 22.7M parameters, so quantising only the Linears leaves
  the folder at ~57% of fp32. Every ``nn.Embedding`` is therefore rounded to per-row symmetric int8 (scale =
  max|row| / 127) and stored as int8 + one float32 scale per row; in memory the model keeps the dequantised
  float rows (so saliency, resizing and tying keep working), which is exactly what the reloaded model rebuilds.
  A tied output projection (the tiny Llama's ``lm_head``) shares those rows, so it is per-output-channel int8
  too. Per-row int8 moves each embedding value by at most max|row| / 254.

Folder: config.json (the model's, so a pruned model's shapes are right), tokenizer files, ``model.safetensors``
(plain float tensors under their usual names; ``<linear>.weight_int8`` / ``.weight_scale`` /
``.weight_zero_point`` for dynamic Linears; ``<linear>.weight.<part>`` for torchao tensors, e.g. ``qdata``,
``scale``, ``scale_and_zero``; ``<embedding>.weight_int8`` / ``.weight_scale``) and ``quantization.json``
(format_version 1, method, modules with their kind and torchao class + attributes). Nothing pickled, nothing
executable: the loader rebuilds torchao tensors only for an allow-listed set of classes.

Measured on all-MiniLM-L6-v2 with a random 3-label head (BertForSequenceClassification), CPU, 32-token texts,
INT8 dynamic vs fp32 (median of repeated forwards):
folder 91.6 MB -> 24.0 MB (0.262 of fp32, 74% smaller; without the int8 embeddings it would be ~0.57);
latency fp32 -> int8 per forward, 1 thread: batch 1 81 -> 57 ms (1.42x), batch 8 278 -> 195 ms (1.42x); 2 threads:
batch 1 1.29x, batch 8 1.52x (the 2-core machine was shared, load ~6, so read the ratios, not the times; fp32 and
int8 forwards were interleaved so both saw the same load). Reloaded logits equal the saved model's (torch.equal);
class probabilities moved by at most 0.0014 against fp32 on 64 texts (the random head's probabilities sit near
1/3 each, so argmax agreement, 80% there, says little; on the tiny test models it is 20/20).
Plain Python + torch: never imports django.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import warnings
from pathlib import Path

import torch
from torch import nn

from workers.compress.config import QUANTIZE, CompressConfig, CompressError, check_hardware

FORMAT_VERSION = 1
QUANT_FILE = "quantization.json"
WEIGHTS_FILE = "model.safetensors"
HEAD_NAMES = ("classifier", "score")
TORCHAO_CLASSES = ("Int8Tensor", "Int4TilePackedTo4dTensor", "Int4Tensor")
TOKENIZER_EXTRA = ("generation_config.json",)


# ---- can it run here?


@functools.cache
def _int4_cpu_problem() -> str | None:
    """Why torchao's INT4 weight-only cannot run on this CPU (None when it can): try it on one small Linear."""
    try:
        with _quiet():
            from torchao.quantization import Int4WeightOnlyConfig, quantize_

            probe = nn.Sequential(nn.Linear(128, 16))
            quantize_(probe, Int4WeightOnlyConfig(group_size=128))
            probe(torch.zeros(1, 128))
    except Exception as exc:  # noqa: BLE001 (any failure means: no kernel)
        return f"{type(exc).__name__}: {exc}"
    return None


def has_int4_cpu_kernel() -> bool:
    """Whether torchao's INT4 weight-only runs on this machine's CPU (torchao 0.18 needs ``mslk``)."""
    return _int4_cpu_problem() is None


def _has_bitsandbytes() -> bool:
    import importlib.util

    return importlib.util.find_spec("bitsandbytes") is not None


def resolve_device(config: CompressConfig, device: str | None = None) -> str:
    if device:
        return str(torch.device(device).type)
    if config.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return config.device


def check_runtime(config: CompressConfig, device: str | None = None) -> None:
    """CompressError naming the reason when ``config`` cannot run on ``device`` here: cuda asked but absent,
    INT4 without a kernel, bitsandbytes missing or off CUDA. INT8 dynamic (also ``then_int8`` after pruning
    or distillation on a GPU) always quantises on the CPU."""
    device = resolve_device(config, device)
    if (config.device == "cuda" or device == "cuda") and not torch.cuda.is_available():
        raise CompressError("device: cuda was asked for, but this machine has no CUDA GPU")
    if config.method not in QUANTIZE and not config.then_int8:
        return
    method = _method(config)
    device = "cpu" if method == "int8_dynamic" else device
    probe = CompressConfig(**{**config.to_dict(), "method": method, "then_int8": False, "device": device})
    int4_cpu = method == "int4_weight_only" and device == "cpu" and has_int4_cpu_kernel()
    problems = check_hardware(
        probe, cuda=device == "cuda", int4_cpu_kernel=int4_cpu, bitsandbytes=_has_bitsandbytes()
    )
    if method == "int4_weight_only" and device == "cpu" and not int4_cpu:
        reason = f" (torchao's CPU INT4 kernel failed: {_int4_cpu_problem()})"
        problems = [p + reason if p.startswith("method: INT4") else p for p in problems]
    if problems:
        raise CompressError("; ".join(problems))


def _method(config: CompressConfig, method: str | None = None) -> str:
    """The quantisation to apply: the method itself, or INT8 dynamic after pruning / distillation."""
    method = method or (config.method if config.method in QUANTIZE else "int8_dynamic")
    if method not in QUANTIZE:
        raise CompressError(f"method must be one of {', '.join(QUANTIZE)} (got {method!r})")
    return method


def int8_after(config: CompressConfig) -> CompressConfig:
    """The config of the INT8 dynamic step after pruning or distillation (``then_int8``)."""
    return CompressConfig(**{**config.to_dict(), "method": "int8_dynamic", "then_int8": False})


# ---- quantising in place


def quantize_model(model: nn.Module, config: CompressConfig, method: str | None = None) -> dict:
    """Quantise a loaded float HF model in place; details of what was done (JSON-ready)."""
    method = _method(config, method)
    device = "cpu" if method == "int8_dynamic" else resolve_device(config)
    check_runtime(CompressConfig(**{**config.to_dict(), "method": method, "then_int8": False}), device)
    model.eval().requires_grad_(False)
    if method == "int4_weight_only" and config.backend == "torchao":
        model.to(torch.bfloat16)  # tinygemm INT4 kernels take bfloat16 activations
    model.to(device)
    tied = _tied_output(model)
    bnb = config.backend == "bitsandbytes" and method != "int8_dynamic"
    embeddings = [] if bnb else _quantize_embeddings(model)
    linears, left = _choose_linears(model, method, config.group_size, tied)
    details = {"method": method, "backend": "torch.ao" if method == "int8_dynamic" else config.backend,
               "device": device, "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
               "modules": linears, "quantized_linear": len(linears), "embeddings_int8": embeddings,
               "left_in_float": left, "tied_output": tied}  # fmt: skip
    if method == "int8_dynamic":
        _dynamic_int8(model, linears, config.activation_scales)
        details["kernel"] = (
            f"torch.ao dynamic int8, per-channel weights, engine {torch.backends.quantized.engine}"
        )
        details["activation_scales"] = config.activation_scales
        details["engine"] = torch.backends.quantized.engine
    elif bnb:
        _bitsandbytes(model, linears, method)
        details["kernel"] = "bitsandbytes " + (
            "Linear8bitLt" if method == "int8_weight_only" else "Linear4bit nf4"
        )
    else:
        details["kernel"] = _torchao(model, linears, method, config.group_size)
    if method == "int4_weight_only":
        details["group_size"] = config.group_size
    return details


def _tied_output(model: nn.Module) -> str | None:
    """The name of an output Linear sharing its weight with the input embeddings, if any."""
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if out is None or emb is None or out.weight is not emb.weight:
        return None
    return next(name for name, module in model.named_modules() if module is out)


def _choose_linears(model: nn.Module, method: str, group_size: int, tied: str | None):
    chosen, left = [], {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        if name.split(".")[0] in HEAD_NAMES:
            left[name] = "classification head: a few thousand weights, the most sensitive to rounding"
        elif name == tied:
            left[name] = "tied to the input embeddings: stored once, as their per-row int8"
        elif method == "int4_weight_only" and module.in_features % group_size:
            left[name] = f"input width {module.in_features} is not a multiple of the group size {group_size}"
        else:
            chosen.append(name)
    return chosen, left


def embedding_rows_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row symmetric int8 of an embedding matrix: (int8 rows, float32 scale per row)."""
    w = weight.detach().float()
    scale = (w.abs().amax(dim=1) / 127).clamp(min=1e-12)
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


def dequantize_rows(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The float rows the model uses, identical before saving and after reloading."""
    return (q.float() * scale.float()[:, None]).to(dtype)


def _quantize_embeddings(model: nn.Module) -> list[str]:
    names = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding):
            q, scale = embedding_rows_int8(module.weight)
            module.weight.data.copy_(dequantize_rows(q, scale, module.weight.dtype))
            module.register_buffer("weight_int8", q.to(module.weight.device), persistent=False)
            module.register_buffer("weight_scale", scale.to(module.weight.device), persistent=False)
            names.append(name)
    return names


@contextlib.contextmanager
def _quiet():
    """torch.ao's deprecation warnings and torchao's import noise stay here, not in every job log."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _dynamic_int8(model: nn.Module, names: list[str], scales: str) -> None:
    from torch.ao.quantization import per_channel_dynamic_qconfig

    from workers.compress.pertoken import dynamic_linear_class

    kind = dynamic_linear_class(scales)
    with _quiet():
        for name in names:
            module = model.get_submodule(name)
            module.qconfig = per_channel_dynamic_qconfig
            model.set_submodule(name, kind.from_float(module))


def _torchao(model: nn.Module, names: list[str], method: str, group_size: int) -> str:
    with _quiet():
        from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig, quantize_

        if method == "int8_weight_only":
            config, kernel = Int8WeightOnlyConfig(), "torchao Int8WeightOnlyConfig (per-row int8)"
        elif next(model.parameters()).is_cuda:
            config = Int4WeightOnlyConfig(group_size=group_size, int4_packing_format="tile_packed_to_4d")
            kernel = f"torchao Int4WeightOnlyConfig tinygemm (tile_packed_to_4d, groups of {group_size})"
        else:
            config = Int4WeightOnlyConfig(group_size=group_size)
            kernel = f"torchao Int4WeightOnlyConfig (plain, groups of {group_size})"
        wanted = set(names)
        quantize_(model, config, filter_fn=lambda module, fqn: fqn in wanted)
    return kernel


def _bitsandbytes(model: nn.Module, names: list[str], method: str) -> None:
    """CUDA only (check_runtime refuses elsewhere); untested on the CPU machine this was written on."""
    import bitsandbytes as bnb

    for name in names:
        old = model.get_submodule(name)
        if method == "int8_weight_only":
            new = bnb.nn.Linear8bitLt(old.in_features, old.out_features, old.bias is not None,
                                      has_fp16_weights=False, threshold=6.0)  # fmt: skip
            new.weight = bnb.nn.Int8Params(old.weight.data.cpu(), requires_grad=False, has_fp16_weights=False)
        else:
            new = bnb.nn.Linear4bit(old.in_features, old.out_features, old.bias is not None,
                                    compute_dtype=torch.bfloat16, quant_type="nf4")  # fmt: skip
            new.weight = bnb.nn.Params4bit(old.weight.data.cpu(), requires_grad=False, quant_type="nf4")
        if old.bias is not None:
            new.bias = nn.Parameter(old.bias.data.cpu(), requires_grad=False)
        model.set_submodule(name, new.cuda())  # moving to CUDA is what quantises


# ---- saving


def _is_torchao(weight) -> bool:
    return type(weight).__name__ in TORCHAO_CLASSES and hasattr(weight, "__tensor_flatten__")


def encode_attr(value):
    """A torchao tensor attribute as JSON: dtypes and sizes tagged, plain values as they are."""
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.Size):
        return {"size": list(value)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, int) for v in value):
        return list(value)
    raise CompressError(f"cannot save a torchao attribute of type {type(value).__name__} ({value!r})")


def _quantized_parts(model: nn.Module):
    """(tensors, modules, skipped state-dict keys) of the quantised modules, under the folder's key names."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    tensors, modules, skip = {}, {}, set()
    for name, module in model.named_modules():
        if isinstance(module, DynamicLinear):
            qweight, bias = module._weight_bias()
            tensors[f"{name}.weight_int8"] = qweight.int_repr()
            tensors[f"{name}.weight_scale"] = qweight.q_per_channel_scales()
            tensors[f"{name}.weight_zero_point"] = qweight.q_per_channel_zero_points()
            if bias is not None:
                tensors[f"{name}.bias"] = bias
            modules[name] = {"kind": "int8_dynamic", "in_features": module.in_features,
                             "out_features": module.out_features, "bias": bias is not None,
                             "activation_scales": getattr(module, "activation_scales", "tensor")}  # fmt: skip
            skip.add(name + ".")
        elif isinstance(module, nn.Linear) and _is_torchao(module.weight):
            weight = module.weight
            parts, attrs = weight.__tensor_flatten__()
            for part in parts:
                tensors[f"{name}.weight.{part}"] = getattr(weight, part)
            modules[name] = {"kind": "torchao", "class": type(weight).__name__, "parts": list(parts),
                             "attrs": {k: encode_attr(v) for k, v in attrs.items()},
                             "shape": list(weight.shape), "stride": list(weight.stride())}  # fmt: skip
            skip.add(f"{name}.weight")
        elif isinstance(module, nn.Embedding) and hasattr(module, "weight_int8"):
            tensors[f"{name}.weight_int8"] = module.weight_int8
            tensors[f"{name}.weight_scale"] = module.weight_scale
            modules[name] = {"kind": "embedding_int8_rows"}
            skip.add(f"{name}.weight")
    return tensors, modules, skip


def _plain_tensors(model: nn.Module, skip: set[str], tied: str | None) -> dict[str, torch.Tensor]:
    """Every other state-dict tensor once (a tensor shared with one already kept is re-tied on load)."""
    kept, seen = {}, set()
    if tied:
        skip = skip | {f"{tied}.weight"}
    for key, value in model.state_dict().items():
        if (
            not isinstance(value, torch.Tensor)
            or key in skip
            or any(key.startswith(p) for p in skip if p[-1] == ".")
        ):
            continue
        pointer = (value.data_ptr(), value.dtype, tuple(value.shape))
        if pointer in seen:
            continue
        seen.add(pointer)
        kept[key] = value
    return kept


def save_quantized(model, tokenizer, out_dir, config: CompressConfig, details: dict, source_dir) -> None:
    """Write the quantised model as config.json + tokenizer + model.safetensors + quantization.json."""
    from safetensors.torch import save_file

    out, source = Path(out_dir), Path(source_dir)
    out.mkdir(parents=True, exist_ok=True)
    if details.get("backend") == "bitsandbytes":
        _save_bitsandbytes(model, out, details)
    else:
        tensors, modules, skip = _quantized_parts(model)
        tensors.update(_plain_tensors(model, skip, details.get("tied_output")))
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        save_file(tensors, str(out / WEIGHTS_FILE), metadata={"format": "pt", "quantization": QUANT_FILE})
        model.config.save_pretrained(out)
        details = {**details, "modules": modules}
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    for name in TOKENIZER_EXTRA:
        if (source / name).is_file() and not (out / name).exists():
            shutil.copyfile(source / name, out / name)
    manifest = {"format_version": FORMAT_VERSION, "task": config.task, "source": str(source), **details}
    (out / QUANT_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def _save_bitsandbytes(model, out: Path, details: dict) -> None:
    """bitsandbytes' own serialisation (int8 + SCB, or NF4 + its quant state), reloaded by transformers from
    config.json's quantization_config. CUDA only; untested here."""
    from safetensors.torch import save_file
    from transformers import BitsAndBytesConfig

    four = details["method"] == "int4_weight_only"
    bnb_config = BitsAndBytesConfig(load_in_4bit=four, load_in_8bit=not four, bnb_4bit_quant_type="nf4")
    state = {
        k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)
    }
    save_file(state, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    model.config.quantization_config = bnb_config
    model.config.save_pretrained(out)
