"""The parts of one optimizer step: loss, optimizer and schedule, FGM, SWA and validation.

Loss: the output layer sees only the positions that have a target (``LogitSelector``), so the vocabulary
projection and the float32 logits cost nothing for prompt tokens, padding or other masked positions. Token
losses are summed and divided by the step's target count over every micro-batch and process, which is the
mean a single large batch would give.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import SWALR, AveragedModel

from workers.train.config import TrainError
from workers.train.data import IGNORE, Batch, Examples, collate

# -- loss ------------------------------------------------------------------------------------------------


class LogitSelector:
    """A pre-hook on the output layer that keeps only the hidden states of selected positions."""

    def __init__(self, model):
        self.mask: torch.Tensor | None = None
        self.handle = model.get_output_embeddings().register_forward_pre_hook(self._hook)

    def _hook(self, _module, args):
        if self.mask is not None:
            return (args[0][self.mask],)
        return None

    @contextlib.contextmanager
    def select(self, mask: torch.Tensor):
        self.mask = mask
        try:
            yield
        finally:
            self.mask = None

    def remove(self) -> None:
        self.handle.remove()


class PooledHead:
    """Classification by prompt tuning: the model gets embeddings, cannot see padding and pools the last position.

    A forward hook on the classification head keeps its per-position output; the engine pools each example's
    last real position itself (after the virtual tokens), as the model does for an unpadded example.
    """

    def __init__(self, head: torch.nn.Module, virtual: int):
        self.virtual, self.output = virtual, None
        self.handle = head.register_forward_hook(self._hook)

    @classmethod
    def attach(cls, model, virtual: int) -> PooledHead | None:
        if not virtual:
            return None
        base = model.get_base_model()
        head = next((getattr(base, n) for n in ("score", "classifier") if hasattr(base, n)), None)
        if head is None:
            raise TrainError(f"prompt tuning found no classification head on {type(base).__name__}")
        return cls(head, virtual)

    def _hook(self, _module, _args, output):
        self.output = output

    def pool(self, attention_mask: torch.Tensor) -> torch.Tensor:
        per_position, self.output = self.output, None
        last = self.virtual + attention_mask.sum(1) - 1
        return per_position[torch.arange(per_position.shape[0], device=last.device), last]

    def remove(self) -> None:
        self.handle.remove()


def class_logits(model, batch: Batch, pooled: PooledHead | None) -> torch.Tensor:
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
    return pooled.pool(batch.attention_mask) if pooled else logits


def token_losses(model, batch: Batch, *, virtual: int, selector, smoothing: float = 0.0):
    """Loss of every target (causal: per target token, in row order; classification: per example).

    ``selector``: the LogitSelector of a causal model, the PooledHead of a prompt-tuned classifier, or None.
    """
    if batch.classes is not None:
        logits = class_logits(model, batch, selector).float()
        return F.cross_entropy(logits, batch.classes, reduction="none", label_smoothing=smoothing)
    real = batch.targets != IGNORE
    keep = real if not virtual else torch.cat([real.new_zeros(real.shape[0], virtual), real], dim=1)
    kwargs = {"input_ids": batch.input_ids, "use_cache": False}
    if batch.attention_mask is not None:
        kwargs["attention_mask"] = batch.attention_mask
    if batch.position_ids is not None:
        kwargs["position_ids"] = batch.position_ids
    with selector.select(keep) if selector else contextlib.nullcontext():
        logits = model(**kwargs).logits
    if selector is None:
        logits = logits[keep]
    return F.cross_entropy(logits.float(), batch.targets[real], reduction="none", label_smoothing=smoothing)


# -- optimizer and schedule ------------------------------------------------------------------------------


def make_optimizer(named_params, config, device: torch.device) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only; fused kernels where this torch has them, else foreach."""
    decay = [p for name, p in named_params if p.ndim >= 2 and "norm" not in name.lower()]
    other = [p for name, p in named_params if not (p.ndim >= 2 and "norm" not in name.lower())]
    groups = [
        g
        for g in (
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": other, "weight_decay": 0.0},
        )
        if g["params"]
    ]
    dtypes_ok = all(p.dtype in (torch.float32, torch.float16, torch.bfloat16) for _, p in named_params)
    if dtypes_ok and device.type in ("cuda", "cpu"):
        try:
            return torch.optim.AdamW(groups, lr=config.lr, fused=True)
        except (RuntimeError, TypeError):
            pass
    return torch.optim.AdamW(groups, lr=config.lr, foreach=True)


def lr_lambda(kind: str, warmup: int, total: int):
    """Hugging Face's schedules: linear warm-up from 0, then cosine / linear decay to 0, or constant."""

    def f(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        if kind == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        if kind == "linear":
            return max(0.0, 1.0 - progress)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    return f


# -- FGM -------------------------------------------------------------------------------------------------


class Fgm:
    """Fast gradient method on the input-embedding weights (Miyato et al.; the common NLP recipe).

    After the clean backward pass, ``attack`` adds epsilon * g / ||g|| to the embedding matrix, where g is this
    micro-batch's gradient of it (a frozen embedding gets a gradient for this alone), the caller runs the
    adversarial forward / backward, and ``restore`` puts the exact weights back.
    """

    def __init__(self, model, epsilon: float):
        self.weight = model.get_input_embeddings().weight
        self.epsilon = epsilon
        self.frozen = not self.weight.requires_grad
        self.backup: torch.Tensor | None = None
        self.before: torch.Tensor | None = None

    def watch(self) -> None:
        """Call before the clean forward: make the embedding's gradient of this micro-batch observable."""
        if self.frozen:
            self.weight.requires_grad_(True)
            self.weight.grad = None
        else:
            self.before = None if self.weight.grad is None else self.weight.grad.detach().clone()

    def attack(self) -> bool:
        grad = self.weight.grad
        if grad is None:
            return False
        g = grad if self.before is None else grad - self.before
        if self.frozen:
            self.weight.grad = None
            self.weight.requires_grad_(False)
        norm = torch.linalg.vector_norm(g.float())
        if not torch.isfinite(norm) or norm == 0:
            return False
        self.backup = self.weight.detach().clone()
        with torch.no_grad():
            self.weight.add_((self.epsilon / norm) * g.to(self.weight.dtype))
        return True

    def restore(self) -> None:
        if self.backup is not None:
            with torch.no_grad():
                self.weight.copy_(self.backup)
            self.backup = None
        self.before = None


# -- SWA -------------------------------------------------------------------------------------------------


class Swa:
    """Stochastic weight averaging of the trainable weights from ``start_step`` on, with SWALR's schedule."""

    def __init__(self, params: list[torch.nn.Parameter], start_step: int, swa_lr: float, total: int):
        self.params = torch.nn.ParameterList(params)
        self.average = AveragedModel(self.params)
        self.start_step, self.swa_lr = start_step, swa_lr
        self.anneal = max(1, (total - start_step) // 10)
        self.scheduler: SWALR | None = None

    def active(self, step: int) -> bool:
        return step >= self.start_step

    def begin(self, optimizer) -> None:
        if self.scheduler is None:
            self.scheduler = SWALR(
                optimizer, swa_lr=self.swa_lr, anneal_epochs=self.anneal, anneal_strategy="cos"
            )

    def update(self) -> None:
        self.average.update_parameters(self.params)
        self.scheduler.step()

    def state(self) -> dict:
        return {
            "average": dict(self.average.state_dict()),
            "scheduler": self.scheduler and self.scheduler.state_dict(),
        }

    def load(self, state: dict, optimizer) -> None:
        self.average.load_state_dict(state["average"])
        if state["scheduler"] is not None:
            self.begin(optimizer)
            self.scheduler.load_state_dict(state["scheduler"])

    @torch.no_grad()
    def copy_to_model(self) -> None:
        for p, avg in zip(self.params, self.average.module, strict=True):
            p.copy_(avg)


# -- validation ------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model, data: Examples, *, pad_id, layout, batch_size, device, dist, virtual, selector, autocast):
    """Validation loss (mean over target tokens, or examples) and accuracy for classification, all processes."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(data)), key=lambda i: -int(data.offsets[i + 1] - data.offsets[i]))
    mine = order[dist.rank :: dist.world]
    loss_sum = count = correct = 0.0
    for start in range(0, len(mine), batch_size):
        batch = collate(data, mine[start : start + batch_size], pad_id, layout).to(device)
        with autocast():
            if batch.classes is not None:
                logits = class_logits(model, batch, selector).float()
                losses = F.cross_entropy(logits, batch.classes, reduction="none")
                correct += float((logits.argmax(-1) == batch.classes).sum())
            else:
                losses = token_losses(model, batch, virtual=virtual, selector=selector)
        loss_sum += float(losses.float().sum())
        count += losses.numel()
    model.train(was_training)
    loss_sum, count, correct = dist.sum([loss_sum, count, correct])
    accuracy = correct / count if data.classes is not None and count else None
    return loss_sum / max(count, 1), accuracy
