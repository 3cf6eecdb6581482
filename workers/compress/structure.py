"""Structured pruning and students: tensors physically shrink, so size on disk and latency really drop.

    prune_heads(model, 0.5, calibration)     # half the heads (Llama: key/value groups) of each layer
    prune_mlp(model, 0.5, calibration)       # half the MLP channels of each layer
    student = make_student(teacher, layers=3, hidden_size=192, calibration=calibration)  # a smaller copy
    calibration = calibration_batches(tokenizer, texts)   # [{"input_ids", "attention_mask"}, ...]

Every function updates the config as it cuts (intermediate_size, num_attention_heads / num_key_value_heads
with head_dim pinned, hidden_size, num_hidden_layers), so ``save_pretrained`` -> ``from_pretrained`` rebuilds
the same shapes and gives the same outputs. One exception, BERT head pruning: BertSelfAttention derives the
head size from hidden_size / num_attention_heads, and transformers 5 dropped ``prune_heads`` and the
``pruned_heads`` config entry, so no BertConfig describes "6 heads of 32 in a 384-wide model". We keep the
config's head count, write the removed heads to ``config.pruned_heads`` ({"layer": [original head indices]}),
and ``from_pretrained(model_class, path)`` below re-cuts an empty model from that record before loading the
weights (a plain ``AutoModel*.from_pretrained`` refuses the folder with a size mismatch: loud, never wrong).

Uniform counts: every layer keeps the same number of heads / KV groups / channels (the config holds one
intermediate_size and one head count), but each layer picks its own. Rounding: kept = total - round(total ×
sparsity), as workers.compress.config._kept. Llama with grouped-query attention loses whole key/value groups
with their query heads, so the group structure (and the KV cache's shape) stays valid.

Importance (which heads, channels and residual channels stay): workers.compress.prune.importance, from
activations on calibration batches (Minitron) or, without them, from weight norms. Depth
(``make_student(layers=)``) keeps evenly spaced layers, first and last included.

Measured on all-MiniLM-L6-v2 with a random 3-label head (BertForSequenceClassification), CPU float32:
  teacher 22,714,371 parameters, 11,720,448 of them word embeddings (30522 × 384)
  prune_mlp 0.5 -> 19,170,819 (-15.6%); prune_heads 0.5 -> 20,941,443 (-7.8%)
  Depth alone cannot halve MiniLM: the embeddings ((30522 + 512 + 2) × H ≈ 11.9M at H = 384) are already
  52%. Each layer holds ≈ 4H² (attention) + 2·H·I (MLP), the pooler H², so width has to go:
    make_student(hidden_size=192)            -> 10,440,195 (46.0%; 6 heads of 32, embeddings 5.96M)
    make_student(hidden_size=192, layers=3)  ->  8,218,563 (36.2%)
    make_student(hidden_size=256, layers=3)  -> 11,169,539 (49.2%; 8 heads)
  latency, batch 8 × 32 tokens, 1 thread, 60 interleaved runs on a busy 2-core machine (load ≈ 5; the ratio
  matters, not the milliseconds): teacher p50 162 ms; prune_mlp 0.5 -> 112 ms (1.45× faster);
  prune_heads 0.5 -> 141 ms (1.15×). bench/ measures this properly.

Plain Python + torch: never imports django.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from torch import nn

from workers.compress.config import CompressError, _kept
from workers.compress.prune import architecture, blocks, head_dim, importance, layer_parts

RECORD = "pruned_heads"


def parameter_count(model) -> int:
    """Parameters of the model, tied tensors counted once."""
    return sum(p.numel() for p in model.parameters())


def calibration_batches(tokenizer, texts, max_len: int = 128, batch_size: int = 8) -> list[dict]:
    """Padded batches {"input_ids", "attention_mask"} of ``texts`` for importance estimation."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    texts = [str(t) for t in texts]
    batches = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i : i + batch_size], padding=True, truncation=True, max_length=max_len,
                        return_tensors="pt")  # fmt: skip
        batches.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    return batches


# ---- the parts of a layer, and cutting them


def _narrow(linear: nn.Linear, rows=None, cols=None) -> None:
    w = linear.weight.data
    w = w[rows] if rows is not None else w
    w = w[:, cols] if cols is not None else w
    linear.weight = nn.Parameter(w.clone(), requires_grad=linear.weight.requires_grad)
    if linear.bias is not None and rows is not None:
        linear.bias = nn.Parameter(linear.bias.data[rows].clone(), requires_grad=linear.bias.requires_grad)
    linear.out_features, linear.in_features = w.shape


def _narrow_vector(module: nn.Module, idx) -> None:
    """A LayerNorm / RMSNorm (weight, maybe bias) or an Embedding (columns) cut to channels ``idx``."""
    for name in ("weight", "bias"):
        p = getattr(module, name, None)
        if isinstance(p, nn.Parameter):
            data = p.data[:, idx] if isinstance(module, nn.Embedding) else p.data[idx]
            setattr(module, name, nn.Parameter(data.clone(), requires_grad=p.requires_grad))
    if isinstance(module, nn.LayerNorm):
        module.normalized_shape = (len(idx),)
    if isinstance(module, nn.Embedding):
        module.embedding_dim = len(idx)


def _rows(units, size: int) -> torch.Tensor:
    """Row indices of whole units (heads) of ``size`` rows each."""
    units = torch.as_tensor(units, dtype=torch.long).reshape(-1, 1)
    return (units * size + torch.arange(size)).flatten()


def _keep_groups(parts: dict, keep: torch.Tensor, head_dim: int) -> None:
    """Keep key/value groups ``keep`` (BERT: heads) with their query heads; o loses the matching columns."""
    groups = parts["k"].out_features // head_dim
    rep = parts["q"].out_features // head_dim // groups
    heads = (keep.reshape(-1, 1) * rep + torch.arange(rep)).flatten()
    for name in ("k", "v"):
        _narrow(parts[name], rows=_rows(keep, head_dim))
    _narrow(parts["q"], rows=_rows(heads, head_dim))
    _narrow(parts["o"], cols=_rows(heads, head_dim))


def _top(scores: torch.Tensor, k: int) -> torch.Tensor:
    return scores.float().topk(k).indices.sort().values.cpu()


# ---- structured pruning


def _check_sparsity(sparsity: float) -> None:
    if not isinstance(sparsity, int | float) or not 0 < sparsity < 1:
        raise CompressError(f"sparsity must be strictly between 0 and 1 (got {sparsity!r})")


def _units(model) -> tuple[int, str]:
    """Key/value groups (Llama with GQA) or heads per layer, now."""
    k = layer_parts(blocks(model)[0], architecture(model))["k"]
    q = layer_parts(blocks(model)[0], architecture(model))["q"]
    grouped = q.out_features != k.out_features
    return k.out_features // head_dim(model), "key/value groups" if grouped else "attention heads"


def _cut_heads(model, kept: int, scores: list) -> dict[int, list[int]]:
    """Every layer keeps its ``kept`` best groups (BERT: heads); returns the units removed per layer."""
    arch, hd = architecture(model), head_dim(model)
    total, _ = _units(model)
    removed = {}
    for i, layer in enumerate(blocks(model)):
        p = layer_parts(layer, arch)
        keep = _top(scores[i].reshape(total, -1).sum(-1), kept)
        _keep_groups(p, keep, hd)
        removed[i] = sorted(set(range(total)) - set(keep.tolist()))
        if arch == "bert":
            layer.attention.self.num_attention_heads = kept
            layer.attention.self.all_head_size = kept * hd
    c = model.config
    if arch == "llama":
        rep = c.num_attention_heads // c.num_key_value_heads
        c.head_dim, c.num_key_value_heads, c.num_attention_heads = hd, kept, kept * rep
    else:
        _record_bert_heads(model, removed)
    return removed


def _record_bert_heads(model, removed: dict[int, list[int]]) -> None:
    """Merge the heads just removed (current numbering) into config.pruned_heads (original numbering)."""
    c = model.config
    record = {int(k): v for k, v in (getattr(c, RECORD, None) or {}).items()}
    for i, gone in removed.items():
        before = [h for h in range(c.num_attention_heads) if h not in record.get(i, [])]
        record[i] = sorted(set(record.get(i, [])) | {before[h] for h in gone})
    record = {str(i): heads for i, heads in sorted(record.items()) if heads}
    setattr(c, RECORD, record or None)


def _report(model, before: int, unit: str, total: int, kept: int, removed, calibration) -> dict:
    after = parameter_count(model)
    return {"unit": unit, "units_per_layer": total, "kept_per_layer": kept, "removed_per_layer": removed,
            "sparsity_reached": (total - kept) / total,
            "parameters_before": before, "parameters_after": after,
            "parameter_share_removed": (before - after) / before,
            "importance": "activation" if calibration else "weight_norm"}  # fmt: skip


def prune_heads(model, sparsity: float, calibration=None) -> dict:
    """Remove the least important heads (Llama with GQA: key/value groups with their query heads) of every
    layer, the same count in each; returns what was removed and the parameters before and after."""
    _check_sparsity(sparsity)
    total, unit = _units(model)
    kept = _kept(total, sparsity)
    if kept in (0, total):
        raise CompressError(f"removing {sparsity} of {total} {unit} per layer leaves {kept}: choose another")
    before, scores = parameter_count(model), importance(model, calibration)["heads"]
    removed = _cut_heads(model, kept, scores)
    return _report(model, before, unit, total, kept, removed, calibration)


def _cut_mlp(model, kept: int, scores: list) -> dict[int, list[int]]:
    arch, removed = architecture(model), {}
    for i, layer in enumerate(blocks(model)):
        p = layer_parts(layer, arch)
        keep = _top(scores[i], kept)
        for linear in p["mlp_in"]:
            _narrow(linear, rows=keep)
        _narrow(p["mlp_out"], cols=keep)
        if arch == "llama":
            layer.mlp.intermediate_size = kept
        removed[i] = len(scores[i]) - kept
    model.config.intermediate_size = kept
    return removed


def prune_mlp(model, sparsity: float, calibration=None) -> dict:
    """Remove the least important intermediate channels, the same count in every layer."""
    _check_sparsity(sparsity)
    total = model.config.intermediate_size
    kept = _kept(total, sparsity)
    if kept in (0, total):
        raise CompressError(f"removing {sparsity} of {total} MLP channels leaves {kept}: choose another")
    before, scores = parameter_count(model), importance(model, calibration)["mlp"]
    removed = _cut_mlp(model, kept, scores)
    return _report(model, before, "MLP channels", total, kept, removed, calibration)


# ---- students


def _keep_layers(model, keep: list[int]) -> None:
    arch, c = architecture(model), model.config
    kept = nn.ModuleList([blocks(model)[i] for i in keep])
    if arch == "llama":
        model.base_model.layers = kept
    else:
        model.base_model.encoder.layer = kept
    for j, layer in enumerate(kept):  # the KV cache is indexed by layer_idx
        (layer.self_attn if arch == "llama" else layer.attention.self).layer_idx = j
    c.num_hidden_layers = len(keep)
    if getattr(c, "layer_types", None):
        c.layer_types = [c.layer_types[i] for i in keep]
    record = getattr(c, RECORD, None)
    if record:
        setattr(c, RECORD, {str(j): record[str(i)] for j, i in enumerate(keep) if str(i) in record} or None)


def _cut_hidden(model, keep: torch.Tensor) -> None:
    """Keep residual channels ``keep``: embeddings, norms, every matrix's hidden axis, the output heads."""
    arch, base = architecture(model), model.base_model
    tied = (
        getattr(model, "lm_head", None) is not None
        and model.lm_head.weight is base.get_input_embeddings().weight
    )
    for layer in blocks(model):
        p = layer_parts(layer, arch)
        for linear in (p["q"], p["k"], p["v"], *p["mlp_in"]):
            _narrow(linear, cols=keep)
        for linear in (p["o"], p["mlp_out"]):
            _narrow(linear, rows=keep)
        for norm in p["norms"]:
            _narrow_vector(norm, keep)
    if arch == "llama":
        _narrow_vector(base.embed_tokens, keep)
        _narrow_vector(base.norm, keep)
    else:
        e = base.embeddings
        for module in (e.word_embeddings, e.position_embeddings, e.token_type_embeddings, e.LayerNorm):
            _narrow_vector(module, keep)
        if base.pooler is not None:
            _narrow(base.pooler.dense, rows=keep, cols=keep)
    for name in ("lm_head", "score", "classifier"):
        head = getattr(model, name, None)
        if isinstance(head, nn.Linear):
            if tied:
                head.weight, head.in_features = base.get_input_embeddings().weight, len(keep)
            else:
                _narrow(head, cols=keep)
    model.config.hidden_size = len(keep)


def _student_heads(model, hidden_size, heads) -> tuple[int | None, int | None]:
    """BERT's attention width is its hidden size: heads = hidden_size / head_dim (either may be given)."""
    if architecture(model) != "bert" or (hidden_size is None and heads is None):
        return hidden_size, heads
    hd = head_dim(model)
    if hidden_size is None:
        return heads * hd, heads
    if hidden_size % hd or (heads is not None and heads * hd != hidden_size):
        raise CompressError(
            f"a BERT student's heads are its hidden size / {hd}: hidden_size {hidden_size} needs "
            f"{hidden_size // hd if hidden_size % hd == 0 else 'a multiple of ' + str(hd)} heads"
        )
    return hidden_size, hidden_size // hd


def _check_student(model, layers, hidden_size, intermediate_size, heads) -> None:
    c, (units, unit) = model.config, _units(model)
    limits = {"layers": (layers, len(blocks(model))), "hidden_size": (hidden_size, c.hidden_size),
              "intermediate_size": (intermediate_size, c.intermediate_size),
              f"heads ({unit})": (heads, units)}  # fmt: skip
    bad = [f"{name} must be between 1 and {limit} (got {value})" for name, (value, limit) in limits.items()
           if value is not None and not (isinstance(value, int) and 1 <= value <= limit)]  # fmt: skip
    if bad:
        raise CompressError("; ".join(bad))


def make_student(
    teacher, *, layers=None, hidden_size=None, intermediate_size=None, heads=None, calibration=None
):
    """A new, smaller copy of ``teacher`` (left untouched): ``layers`` evenly spaced layers (first and last
    kept), ``hidden_size`` residual channels, ``intermediate_size`` MLP channels, ``heads`` heads (Llama with
    GQA: key/value groups; BERT: hidden_size / head_dim). Which units stay: see the module docstring."""
    hidden_size, heads = _student_heads(teacher, hidden_size, heads)
    _check_student(teacher, layers, hidden_size, intermediate_size, heads)
    wide = any(v is not None for v in (hidden_size, intermediate_size, heads))
    scores = importance(teacher, calibration) if wide else None
    student = copy.deepcopy(teacher)
    if layers is not None:
        total = len(blocks(student))
        keep = sorted({round(i * (total - 1) / max(layers - 1, 1)) for i in range(layers)})
        _keep_layers(student, keep)
        if scores:
            scores = {"heads": [scores["heads"][i] for i in keep], "mlp": [scores["mlp"][i] for i in keep],
                      "hidden": scores["hidden"]}  # fmt: skip
    if heads is not None and heads != _units(student)[0]:
        _cut_heads(student, heads, scores["heads"])
    if intermediate_size is not None and intermediate_size != student.config.intermediate_size:
        _cut_mlp(student, intermediate_size, scores["mlp"])
    if hidden_size is not None and hidden_size != student.config.hidden_size:
        _cut_hidden(student, _top(scores["hidden"], hidden_size))
        if architecture(student) == "bert":  # attention width == hidden size again: no head record needed
            student.config.num_attention_heads = heads
            setattr(student.config, RECORD, None)
    return student


# ---- reloading


def from_config(model_class, config):
    """An untrained model of ``config``'s architecture, cut to the heads a head-pruned BERT config records
    (config.pruned_heads), so a saved state dict of the pruned model loads strictly."""
    record = getattr(config, RECORD, None)
    build = getattr(model_class, "from_config", None) or model_class._from_config
    model = build(config)
    if not record:
        return model
    if config.model_type != "bert":
        raise CompressError(f"pruned_heads in config.json is read for BERT only, not {config.model_type}")
    hd, layers = head_dim(model), blocks(model)
    for key, gone in record.items():
        keep = torch.tensor([h for h in range(config.num_attention_heads) if h not in gone])
        _keep_groups(layer_parts(layers[int(key)], "bert"), keep, hd)
        layers[int(key)].attention.self.num_attention_heads = len(keep)
        layers[int(key)].attention.self.all_head_size = len(keep) * hd
    return model


def from_pretrained(model_class, path, **kwargs):
    """``model_class.from_pretrained(path, **kwargs)``, except for a head-pruned BERT folder
    (config.pruned_heads): the architecture is built from config.json, cut to the recorded heads, and the
    safetensors loaded into it."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    kwargs.setdefault("trust_remote_code", False)
    config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    if not getattr(config, RECORD, None):
        return model_class.from_pretrained(path, **kwargs)
    model = from_config(model_class, config)
    folder = Path(path)
    index = folder / "model.safetensors.index.json"
    files = (
        sorted(set(json.loads(index.read_text())["weight_map"].values()))
        if index.exists()
        else ["model.safetensors"]
    )
    state = {}
    for name in files:
        state.update(load_file(folder / name))
    model.load_state_dict(state, strict=True)
    if kwargs.get("dtype") is not None:
        model.to(kwargs["dtype"])
    return model.eval()
