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

import json
from pathlib import Path

import torch
from torch import nn

from workers.compress.config import ACTIVATION_SCALES, QUANTIZE, TASKS, CompressError
from workers.compress.quantize import (  # the writer's format constants: the two cannot drift
    FORMAT_VERSION,
    QUANT_FILE,
    TORCHAO_CLASSES,
    WEIGHTS_FILE,
)


def load_model(path, task: str, *, base_dir=None, device: str | None = None):
    """(model, tokenizer) of a compression result (or any model folder) for ``task``; CompressError naming the
    path when the folder will not load."""
    if task not in TASKS:
        raise CompressError(f"task must be one of {', '.join(TASKS)} (got {task!r})")
    folder = Path(path)
    if not folder.is_dir():
        raise CompressError(f"model folder {folder} does not exist or is not a folder")
    if (folder / QUANT_FILE).exists():
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


# ---- quantised folders (workers.compress.quantize.save_quantized writes them; its docstring has the format)


def read_manifest(folder: Path) -> dict:
    """quantization.json, checked: CompressError naming the file when it is unreadable or of another version."""
    path = folder / QUANT_FILE
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CompressError(f"{path} cannot be read: {exc}") from None
    if not isinstance(manifest, dict):
        raise CompressError(f"{path} does not hold a JSON object")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CompressError(
            f"{path} has format_version {manifest.get('format_version')!r}; this loader reads {FORMAT_VERSION}"
        )
    if manifest.get("method") not in QUANTIZE or not isinstance(manifest.get("modules"), dict):
        raise CompressError(f"{path} names no quantisation method and modules (method, modules)")
    for name in ("config.json", WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise CompressError(f"quantised model folder {folder} has no {name}")
    return manifest


def load_quantized(folder, task: str, *, device: str | None = None):
    """Rebuild a quantised folder: (model, tokenizer), outputs identical to the model that was saved."""
    from safetensors.torch import load_file

    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("backend") == "bitsandbytes":
        return _load_bitsandbytes(folder, task)
    device = _device(folder, manifest, device)
    dtype = getattr(torch, str(manifest.get("dtype", "float32")), None)
    if not isinstance(dtype, torch.dtype):
        raise CompressError(f"{folder / QUANT_FILE}: unknown dtype {manifest.get('dtype')!r}")
    model = _skeleton(folder, task, dtype)
    try:
        tensors = load_file(str(folder / WEIGHTS_FILE))
    except Exception as exc:  # noqa: BLE001 (safetensors raises its own error types)
        raise CompressError(f"{folder / WEIGHTS_FILE} cannot be read: {exc}") from None
    try:
        _restore(model, manifest, tensors, device)
    except (KeyError, RuntimeError, ValueError, AttributeError) as exc:
        raise CompressError(f"{folder / WEIGHTS_FILE} does not match {folder / QUANT_FILE}: {exc}") from None
    return model.eval().requires_grad_(False), _tokenizer(folder, model)


def _device(folder: Path, manifest: dict, device: str | None) -> str:
    cuda = torch.cuda.is_available()
    if manifest["method"] == "int8_dynamic":
        if device and torch.device(device).type != "cpu":
            raise CompressError(f"{folder} holds INT8 dynamic weights, which run on CPU only")
        return "cpu"
    device = torch.device(device).type if device else ("cuda" if cuda else "cpu")
    if device == "cuda" and not cuda:
        raise CompressError(f"{folder}: cuda was asked for, but this machine has no CUDA GPU")
    packed = any(m.get("class") == "Int4TilePackedTo4dTensor" for m in manifest["modules"].values())
    if packed and device != "cuda":
        raise CompressError(
            f"{folder} holds INT4 weights packed for CUDA's tinygemm kernel; no CUDA GPU here"
        )
    return device


def _skeleton(folder: Path, task: str, dtype: torch.dtype):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise CompressError(f"{folder / 'config.json'} cannot be read: {exc}") from None
    auto = AutoModelForSequenceClassification if task == "classification" else AutoModelForCausalLM
    try:
        from accelerate import init_empty_weights

        from workers.compress.structure import from_config

        with init_empty_weights(
            include_buffers=False
        ):  # parameters on "meta": no float copy of the int8 layers
            return from_config(auto, config).to(dtype)
    except ValueError as exc:
        raise CompressError(f"{folder / 'config.json'} does not describe a {task} model: {exc}") from None


def _restore(model: nn.Module, manifest: dict, tensors: dict, device: str) -> None:
    modules, used = manifest["modules"], set()

    def take(key: str) -> torch.Tensor:
        used.add(key)
        return tensors[key]

    for name, meta in modules.items():
        if meta.get("kind") == "embedding_int8_rows":
            emb = model.get_submodule(name)
            q, scale = take(f"{name}.weight_int8"), take(f"{name}.weight_scale")
            emb.weight = nn.Parameter(
                (q.float() * scale.float()[:, None]).to(emb.weight.dtype), requires_grad=False
            )
    plain = {k: v for k, v in tensors.items() if not _quantized_key(k, modules)}
    result = model.load_state_dict(plain, strict=False, assign=True)
    expected = {f"{name}.{part}" for name in modules for part in ("weight", "bias")}
    if manifest.get("tied_output"):
        expected.add(f"{manifest['tied_output']}.weight")
    missing = [k for k in result.missing_keys if k not in expected]
    if result.unexpected_keys or missing:
        raise ValueError(f"unexpected {result.unexpected_keys[:5]}, missing {missing[:5]}")
    if manifest.get("tied_output"):
        model.tie_weights()
    for name, meta in modules.items():
        if meta.get("kind") == "int8_dynamic":
            _restore_dynamic(model, name, meta, take)
        elif meta.get("kind") == "torchao":
            _restore_torchao(model, name, meta, take, device)
        elif meta.get("kind") != "embedding_int8_rows":
            raise ValueError(f"module {name} has unknown kind {meta.get('kind')!r}")
    empty = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if empty:
        raise ValueError(f"no weights for {empty[:5]}")
    model.to(device)
    unused = set(tensors) - used - set(plain)
    if unused:
        raise ValueError(f"tensors of no module: {sorted(unused)[:5]}")


def _quantized_key(key: str, modules: dict) -> bool:
    name, _, rest = key.rpartition(".")
    if name in modules:
        return rest != "bias" or modules[name].get("kind") == "int8_dynamic"
    owner = key.split(".weight.")[0]
    return ".weight." in key and owner in modules


def _restore_dynamic(model: nn.Module, name: str, meta: dict, take) -> None:
    import warnings

    from workers.compress.pertoken import dynamic_linear_class

    scales = meta.get("activation_scales", "tensor")  # folders written before per-token scales have none
    if scales not in ACTIVATION_SCALES:
        raise ValueError(f"module {name} has unknown activation_scales {scales!r}")
    qweight = torch._make_per_channel_quantized_tensor(
        take(f"{name}.weight_int8"), take(f"{name}.weight_scale"), take(f"{name}.weight_zero_point"), 0
    )
    bias = take(f"{name}.bias") if meta.get("bias") else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = dynamic_linear_class(scales)(
            meta["in_features"], meta["out_features"], bias_=bias is not None, dtype=torch.qint8
        )
        module.set_weight_bias(qweight, bias)
    model.set_submodule(name, module)


def _decode_attr(value):
    if isinstance(value, dict) and "dtype" in value:
        return getattr(torch, value["dtype"])
    if isinstance(value, dict) and "size" in value:
        return torch.Size(value["size"])
    return value


def _restore_torchao(model: nn.Module, name: str, meta: dict, take, device: str) -> None:
    import warnings

    if meta.get("class") not in TORCHAO_CLASSES:
        raise ValueError(f"module {name}: {meta.get('class')!r} is not a torchao tensor this loader rebuilds")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torchao.quantization as tq

    cls = getattr(tq, meta["class"])
    parts = {part: take(f"{name}.weight.{part}").to(device) for part in meta["parts"]}
    attrs = {k: _decode_attr(v) for k, v in meta["attrs"].items()}
    weight = cls.__tensor_unflatten__(parts, attrs, torch.Size(meta["shape"]), tuple(meta["stride"]))
    model.get_submodule(name).weight = nn.Parameter(weight, requires_grad=False)


def _tokenizer(folder: Path, model):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise CompressError(f"{folder} has no usable tokenizer: {exc}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer


def _load_bitsandbytes(folder: Path, task: str):
    """transformers reloads bitsandbytes' own serialisation from config.json's quantization_config (CUDA only)."""
    import importlib.util

    if not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None:
        raise CompressError(f"{folder} holds bitsandbytes weights: they need a CUDA GPU and bitsandbytes")
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    auto = AutoModelForSequenceClassification if task == "classification" else AutoModelForCausalLM
    model = auto.from_pretrained(folder, device_map={"": 0}, trust_remote_code=False, use_safetensors=True)
    return model.eval().requires_grad_(False), _tokenizer(folder, model)
