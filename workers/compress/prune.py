"""Unstructured and 2:4 pruning as masks (the tensors keep their shape, pruned weights are exact zeros), and
the importance scores by which workers.compress.structure decides which heads and channels to cut.

    masks = magnitude_masks(model, 0.5)      # or semi_structured_masks(model): 2 of every 4 inputs kept
    apply_masks(model, masks)                # pruned weights become 0.0
    handles = mask_gradients(model, masks)   # recovery fine-tune: gradients of pruned weights are 0 too
    ...                                      # AdamW steps (zero-initialised state keeps zeros at exactly 0)
    for handle in handles: handle.remove()
    masked_sparsity(model, masks)            # 0.5, counted on the weights themselves
    importance(model, calibration)           # {"heads": [...], "mlp": [...], "hidden": ...}: higher = keep

What is pruned: only the ``nn.Linear`` layers inside the transformer blocks (``prunable_linears``).
Embeddings, the LM head, BERT's pooler and the classifier / score head stay dense: they are few parameters
next to the blocks (except the embeddings, whose rows are looked up, not multiplied, so zeros there buy no
speed) and the heads are where a wrong zero costs the most accuracy.

Magnitude pruning uses ONE global threshold over all prunable weights (not a per-layer quota): layers whose
weights are small overall lose more, which is what "global magnitude" in the literature means and what keeps
accuracy best at a given overall sparsity. Ties at the threshold are broken by position, so the share removed
is exactly round(total × sparsity) / total.

2:4 (semi-structured) keeps the 2 largest |w| of every 4 consecutive inputs of each output row: the pattern
NVIDIA's sparse tensor cores (Ampere and later) accelerate. On CPU the masks only zero weights; the size and
latency gains need torch's ``to_sparse_semi_structured`` on a GPU (or a sparse-aware export), so the
engine reports the sparsity reached and leaves the speed claim to the benchmark.

Why gradient hooks instead of ``torch.nn.utils.prune``: the latter reparametrises weights (weight_orig +
weight_mask buffers), which changes the state-dict keys; hooks leave the model a plain HF model that
``save_pretrained`` writes as is. With a zero gradient and AdamW's zero-initialised moments, the update of a
pruned weight is 0 and decoupled weight decay multiplies 0 by (1 - lr·wd): it stays exactly 0.

Importance (which units go). With ``calibration`` batches: activations, as Minitron (Sreenivas et al. 2024,
"LLM Pruning and Distillation in Practice"; Muralidharan et al. 2024): a head's score is the mean L2 norm of
its attention output (the input of o_proj / attention.output.dense) over real tokens, a KV group's the sum
over its query heads; an MLP channel's the mean |activation| entering down_proj / output.dense; a residual
channel's the mean |output| of every LayerNorm / RMSNorm summed. Activations see what the data actually
exercises (a channel with large weights that the data never excites is cheap to drop), and Minitron found them
better than weight magnitudes with ~1k samples. Without calibration: weight norms, the only thing there is — a
head's squared norms of its q/k/v rows and o columns; an MLP channel's product of its input-row and
output-column norms (the gain of that path); a residual channel's squared norms over every block matrix
reading or writing it and its embedding column.

Plain Python + torch: never imports django.
"""

from __future__ import annotations

import torch
from torch import nn

from workers.compress.config import CompressError

SUPPORTED = {
    "llama": ("LlamaForCausalLM", "LlamaForSequenceClassification", "LlamaModel"),
    "bert": ("BertForSequenceClassification", "BertModel"),
}


def architecture(model) -> str:
    """ "llama" or "bert"; CompressError naming the model type (and class) for anything else."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    name = type(model).__name__
    if model_type in SUPPORTED and name in SUPPORTED[model_type]:
        return model_type
    known = ", ".join(n for names in SUPPORTED.values() for n in names)
    raise CompressError(
        f"pruning and distillation support Llama-style and BERT models ({known}); "
        f"this model is of type {model_type!r} ({name})"
    )


def blocks(model) -> nn.ModuleList:
    """The transformer blocks (Llama decoder layers, BERT encoder layers) of a supported model."""
    base = model.base_model
    return base.layers if architecture(model) == "llama" else base.encoder.layer


def prunable_linears(model) -> dict[str, nn.Linear]:
    """The Linear layers inside the transformer blocks, by their full module name."""
    layers = blocks(model)
    prefix = next(name for name, module in model.named_modules() if module is layers)
    return {
        f"{prefix}.{name}": module for name, module in layers.named_modules() if isinstance(module, nn.Linear)
    }


def magnitude_masks(model, sparsity: float) -> dict[str, torch.Tensor]:
    """Bool masks (True = keep) removing the ``sparsity`` share of smallest |w| under one global threshold."""
    if not 0 <= sparsity < 1:
        raise CompressError(f"sparsity must be in [0, 1) (got {sparsity})")
    linears = prunable_linears(model)
    with torch.no_grad():
        scores = torch.cat([m.weight.detach().abs().flatten().float().cpu() for m in linears.values()])
        remove = int(round(scores.numel() * sparsity))
        keep = torch.ones_like(scores, dtype=torch.bool)
        if remove:
            threshold = scores.kthvalue(remove).values
            keep = scores > threshold
            excess = scores.numel() - int(keep.sum()) - remove  # weights tied at the threshold to keep
            if excess > 0:
                keep[(scores == threshold).nonzero().flatten()[:excess]] = True
    masks, start = {}, 0
    for name, module in linears.items():
        n = module.weight.numel()
        masks[name] = keep[start : start + n].view_as(module.weight).to(module.weight.device)
        start += n
    return masks


def semi_structured_masks(model) -> dict[str, torch.Tensor]:
    """2:4 masks: of every 4 consecutive inputs of each output row, the 2 largest |w| are kept."""
    linears = prunable_linears(model)
    narrow = [f"{name} ({m.in_features})" for name, m in linears.items() if m.in_features % 4]
    if narrow:
        raise CompressError(
            "2:4 pruning needs every layer's input width divisible by 4; not divisible: " + ", ".join(narrow)
        )
    masks = {}
    with torch.no_grad():
        for name, module in linears.items():
            w = module.weight.detach().abs().reshape(module.out_features, -1, 4)
            top = w.topk(2, dim=-1).indices
            mask = torch.zeros_like(w, dtype=torch.bool).scatter_(-1, top, True)
            masks[name] = mask.reshape_as(module.weight)
    return masks


def _weight(model, name: str) -> nn.Parameter:
    return model.get_submodule(name).weight


def apply_masks(model, masks: dict[str, torch.Tensor]) -> None:
    """Set every masked-out weight to exactly 0 (in place)."""
    with torch.no_grad():
        for name, mask in masks.items():
            weight = _weight(model, name)
            weight.masked_fill_(~mask.to(weight.device), 0.0)


def mask_gradients(model, masks: dict[str, torch.Tensor]) -> list:
    """Hooks multiplying each masked weight's gradient by its mask; returns the handles (call .remove())."""
    handles = []
    for name, mask in masks.items():
        weight = _weight(model, name)
        keep = mask.to(device=weight.device, dtype=weight.dtype)
        handles.append(weight.register_hook(lambda grad, keep=keep: grad * keep))
    return handles


def masked_sparsity(model, masks: dict[str, torch.Tensor]) -> float:
    """Share of exact zeros among the weights that ``masks`` cover, counted on the weights themselves."""
    zeros = total = 0
    for name in masks:
        weight = _weight(model, name)
        zeros += int((weight == 0).sum())
        total += weight.numel()
    return zeros / total if total else 0.0


# ---- the parts of a layer, and how much each unit matters (for workers.compress.structure)


def layer_parts(layer, arch: str) -> dict:
    if arch == "llama":
        a, m = layer.self_attn, layer.mlp
        return {"q": a.q_proj, "k": a.k_proj, "v": a.v_proj, "o": a.o_proj,
                "mlp_in": [m.gate_proj, m.up_proj], "mlp_out": m.down_proj,
                "norms": [layer.input_layernorm, layer.post_attention_layernorm]}  # fmt: skip
    a = layer.attention
    return {"q": a.self.query, "k": a.self.key, "v": a.self.value, "o": a.output.dense,
            "mlp_in": [layer.intermediate.dense], "mlp_out": layer.output.dense,
            "norms": [a.output.LayerNorm, layer.output.LayerNorm]}  # fmt: skip


def head_dim(model) -> int:
    c = model.config
    return getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads


def importance(model, calibration=None) -> dict:
    """Scores, higher = keep: {"heads": [per query head, per layer], "mlp": [per channel, per layer],
    "hidden": per residual channel}; from activations on ``calibration`` batches, else from weight norms."""
    if calibration:
        return _activation_importance(model, calibration)
    arch, scores = architecture(model), {"heads": [], "mlp": [], "hidden": 0}
    hd = head_dim(model)
    with torch.no_grad():
        for layer in blocks(model):
            p = layer_parts(layer, arch)
            qo = p["q"].weight.view(-1, hd, p["q"].in_features).pow(2).sum((1, 2))
            qo = qo + p["o"].weight.view(p["o"].out_features, -1, hd).pow(2).sum((0, 2))
            kv = sum(p[n].weight.view(-1, hd, p[n].in_features).pow(2).sum((1, 2)) for n in "kv")
            rep = len(qo) // len(kv)
            scores["heads"].append(qo + kv.repeat_interleave(rep) / rep)
            gain = p["mlp_out"].weight.norm(dim=0)
            for linear in p["mlp_in"]:
                gain = gain * linear.weight.norm(dim=1)
            scores["mlp"].append(gain)
            reads = sum(p[n].weight.pow(2).sum(0) for n in "qkv") + sum(
                x.weight.pow(2).sum(0) for x in p["mlp_in"]
            )
            scores["hidden"] = scores["hidden"] + reads + p["o"].weight.pow(2).sum(1)
            scores["hidden"] = scores["hidden"] + p["mlp_out"].weight.pow(2).sum(1)
        scores["hidden"] = scores["hidden"] + model.get_input_embeddings().weight.pow(2).sum(0)
    return scores


def _final_norms(model, arch: str) -> list:
    base = model.base_model
    return [base.norm] if arch == "llama" else [base.embeddings.LayerNorm]


def _activation_importance(model, calibration) -> dict:
    arch, hd = architecture(model), head_dim(model)
    layers = blocks(model)
    sums = {"heads": [0.0] * len(layers), "mlp": [0.0] * len(layers), "hidden": 0.0}
    state = {"mask": None, "tokens": 0}

    def add(key, i, values):  # values [B, T, C] -> masked sum over tokens
        total = (values.float() * state["mask"][..., None]).sum((0, 1))
        if i is None:
            sums[key] = sums[key] + total
        else:
            sums[key][i] = sums[key][i] + total

    handles = []
    for i, layer in enumerate(layers):
        p = layer_parts(layer, arch)
        handles.append(p["o"].register_forward_pre_hook(
            lambda m, a, i=i: add("heads", i, a[0].unflatten(-1, (-1, hd)).norm(dim=-1))))  # fmt: skip
        handles.append(p["mlp_out"].register_forward_pre_hook(lambda m, a, i=i: add("mlp", i, a[0].abs())))
        for norm in p["norms"]:
            handles.append(norm.register_forward_hook(lambda m, a, out: add("hidden", None, out.abs())))
    for norm in _final_norms(model, arch):
        handles.append(norm.register_forward_hook(lambda m, a, out: add("hidden", None, out.abs())))
    device, training = next(model.parameters()).device, model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in calibration:
                batch = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}
                state["mask"] = batch["attention_mask"].float()
                state["tokens"] += int(batch["attention_mask"].sum())
                model(**batch)
    finally:
        for handle in handles:
            handle.remove()
        model.train(training)
    n = max(state["tokens"], 1)
    return {
        "heads": [s / n for s in sums["heads"]],
        "mlp": [s / n for s in sums["mlp"]],
        "hidden": sums["hidden"] / n,
    }
