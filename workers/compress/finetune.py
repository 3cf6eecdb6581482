"""The recovery and distillation loop: a short training run of a (pruned or shrunk) student on a dataset version.

    outcome = train_student(model, tokenizer, config, report)                      # recovery after pruning
    outcome = train_student(student, tokenizer, config, report, teacher=teacher)   # distillation
    outcome.status, outcome.losses, outcome.val_loss                               # "succeeded" | "cancelled"

Why a loop of its own rather than ``workers.train.train``: that engine loads a model from a folder, wraps it
in a method (LoRA, full ...), checkpoints and writes outputs; here the model is already in memory (pruned,
shrunk, masked), there is a second model to run (the teacher) and the caller saves the result. Everything
else is the training engine's, not a copy: ``read_records`` / ``tokenize`` (so chat, instruction and
classification rows become the same examples, with the same shifted, -100-masked answer targets),
``StepPlan`` (seeded, length-grouped order of examples, cycled epoch after epoch), ``collate`` (right-padded
batches, the "padded" layout), ``LogitSelector`` (the output layer only sees answer positions), the AdamW
set-up and learning-rate schedule (``make_optimizer``, ``lr_lambda``) and ``evaluate`` (validation loss).

The loss of one step, mean over its targets (answer tokens of a causal LM, examples of a classifier):

- no teacher (recovery on the labels): cross-entropy;
- a teacher (distillation, Hinton et al.; or a recovery taught by the unpruned source, ``recovery_teacher``):
  ``alpha * T² * KL(softmax(teacher/T) ‖ softmax(student/T)) + (1 - alpha) * CE``, per answer token for
  causal LMs (so the vocabularies must be the same size) and over the class logits for classifiers (so the
  label counts must match). The teacher runs in eval mode under no_grad; it runs even at alpha = 0, so that
  setting gives exactly the recovery run's losses (a test holds it).

Optimisation: AdamW (weight decay 0.01 on matrices, 0 when ``masks`` are given), linear warm-up over the first
5% of the steps then linear decay to 0, gradients clipped to norm 1.0, one micro-batch of ``batch_size`` per
step. ``masks`` ({Linear module name: bool tensor shaped like its weight, True = keep}, as
workers.compress.prune makes them) keep pruned weights at exactly zero: ``prune.mask_gradients`` hooks multiply
each masked weight's gradient by its mask (AdamW's moments of a pruned weight then stay 0, so does its
update), and ``prune.apply_masks`` runs before the first step and after every optimizer step, a guarantee
that holds whatever the optimizer does (a masked_fill per masked weight per step: negligible).

Reports: ``report(step=s, train_loss=..., progress=s/steps, total_steps=steps, lr=...)`` every 10 steps and
at the last step (train_loss: the mean step loss since the previous report); "stop" ends the run at once
with status "cancelled". The last report of a run with a validation file also holds ``val_loss``, the
validation cross-entropy after the last step. The model is left in eval mode either way.

Measured (this repository's 2-core x86 VM, CPU, float32, shared with other jobs: load average 4-7 on the 2 cores
during the runs, so read them as lower bounds; steps/s between step 10 and the last step, batch 16):

- tiny causal LM (hidden 64, 2 layers, vocab ~768), chat rows, 1 thread: recovery 11-12 steps/s; distilling
  it into a 1-layer copy 11.5-12.5 steps/s (the teacher's forward costs what the dropped layer saves).
- tiny BERT classifier (hidden 64, 2 layers), 1 thread: recovery 18-21 steps/s; into a 1-layer copy 17.5-18.
  Both tiny models are bound by Python and per-op overhead, not arithmetic.
- all-MiniLM-L6-v2 (6 layers, hidden 384, vocab 30522, random 3-label head), 64 tokens per example, 2
  threads: distilling into a 3-layer copy (layers 0, 2, 5) 0.15-0.22 steps/s (4.5-6.5 s per step of 1,024
  tokens); for comparison CE recovery of the 6-layer model 0.18-0.19 steps/s and of the 3-layer one
  0.36-0.38: the teacher's no-grad forward adds about 1.8 s a step, two thirds of the 3-layer student's own
  forward + backward. A profile of one 6-layer step: forward 1.4-2.6 s, backward 2.7 s, fused AdamW
  0.13-0.16 s, so the loop itself (collation, masks, reporting) is noise. No GPU was lent to this task; CUDA
  is supported (``device``) but not measured.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from workers.compress import prune
from workers.compress.config import CompressConfig, CompressError, ConfigError
from workers.train import config as train_config
from workers.train.data import IGNORE, Batch, StepPlan, collate, read_records, tokenize
from workers.train.ddp import Dist
from workers.train.steps import LogitSelector, evaluate, lr_lambda, make_optimizer

REPORT_EVERY = 10
WEIGHT_DECAY = 0.01
WARMUP_SHARE = 0.05
MAX_GRAD_NORM = 1.0
OOM_HINT = "out of memory: try a smaller batch_size or a shorter max_seq_len"


@dataclass
class TrainOutcome:
    status: str
    """"succeeded", or "cancelled" when the report callback answered "stop"."""
    losses: list[list[float]] = field(default_factory=list)
    """[[step, mean train loss since the previous report], ...], one pair per report."""
    val_loss: float | None = None
    """Cross-entropy on config.validation_file after the last step (None without one, or when cancelled)."""
    steps: int = 0
    """Optimizer steps taken."""
    tokens: int = 0
    """Real (non-padding) input tokens trained on."""


def train_student(
    model, tokenizer, config: CompressConfig, report, *, teacher=None, masks=None, device=None
) -> TrainOutcome:
    """Train ``model`` for config.steps steps on config.train_file (see the module docstring).

    Raises ConfigError (bad rows, every one named by its line; labels that do not fit the model) or
    CompressError (a teacher that cannot teach this student, unknown mask names, out of memory).
    """
    if not isinstance(config.steps, int) or config.steps < 1:
        raise ConfigError({"steps": [f"must be at least 1 to train (got {config.steps!r})"]})
    classification = config.task == "classification"
    if teacher is not None:
        _check_teacher(model, teacher, classification)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    if teacher is not None:
        teacher.to(device).eval()
    labels = _labels(model, config) if classification else None
    train_data, val_data = _examples(tokenizer, config, labels)
    try:
        return _train(model, tokenizer, config, report, teacher, masks, device, train_data, val_data)
    except torch.cuda.OutOfMemoryError as exc:
        raise CompressError(OOM_HINT) from exc
    except RuntimeError as exc:
        if any(m in str(exc).lower() for m in ("out of memory", "can't allocate memory")):
            raise CompressError(OOM_HINT) from exc
        raise
    finally:
        model.eval()


def _train(model, tokenizer, config, report, teacher, masks, device, train_data, val_data) -> TrainOutcome:
    classification = config.task == "classification"
    pad_id = _pad_id(tokenizer)
    plan = StepPlan(
        train_data.lengths,
        batch_size=config.batch_size,
        grad_accum=1,
        world=1,
        seed=config.seed,
        grouped=True,
    )
    torch.manual_seed(config.seed)  # dropout
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    settings = SimpleNamespace(lr=config.learning_rate, weight_decay=0.0 if masks else WEIGHT_DECAY)
    optimizer = make_optimizer(params, settings, device)
    warmup = int(config.steps * WARMUP_SHARE)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda("linear", warmup, config.steps))
    outcome = TrainOutcome(status="succeeded")
    loss_sum = weight = 0.0
    epoch = in_epoch = 0
    selectors, hooks = [], []
    try:
        if not classification:  # the output layer sees the answer positions only
            selectors = [LogitSelector(m) for m in (model, teacher) if m is not None]
        hooks = _mask_gradients(model, masks or {})
        model.train()
        for step in range(1, config.steps + 1):
            (index,) = plan.batches(epoch, in_epoch)
            in_epoch += 1
            if in_epoch >= plan.steps_per_epoch:
                epoch, in_epoch = epoch + 1, 0
            batch = collate(train_data, index, pad_id, "padded").to(device)
            loss = _loss(model, teacher, batch, selectors, config)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in params], MAX_GRAD_NORM)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            prune.apply_masks(model, masks or {})
            outcome.steps, outcome.tokens = step, outcome.tokens + batch.tokens
            loss_sum, weight = loss_sum + float(loss.detach()) * batch.n_targets, weight + batch.n_targets
            if step % REPORT_EVERY and step != config.steps:
                continue
            train_loss, loss_sum, weight = loss_sum / max(weight, 1.0), 0.0, 0.0
            outcome.losses.append([step, train_loss])
            metrics = {"train_loss": train_loss, "progress": step / config.steps, "total_steps": config.steps,
                       "lr": optimizer.param_groups[0]["lr"]}  # fmt: skip
            if step == config.steps and val_data is not None:
                outcome.val_loss = metrics["val_loss"] = _validation_loss(
                    model, val_data, pad_id, config, device, selectors
                )
            if report(step=step, **metrics) == "stop":
                outcome.status = "cancelled"
                return outcome
        return outcome
    finally:
        for handle in [*hooks, *selectors]:
            handle.remove()


# -- the loss --------------------------------------------------------------------------------------------


def _logits(model, batch: Batch, selector) -> torch.Tensor:
    """Class logits [examples, labels], or the logits of the answer positions only [targets, vocab]."""
    kwargs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
    if batch.classes is not None:
        return model(**kwargs).logits.float()
    keep = batch.targets != IGNORE
    with selector.select(keep):
        return model(**kwargs, use_cache=False).logits.float()


def _loss(model, teacher, batch: Batch, selectors, config) -> torch.Tensor:
    """Mean over the step's targets: CE, or alpha * T² * KL(teacher ‖ student at T) + (1 - alpha) * CE."""
    student_sel, teacher_sel = (selectors + [None, None])[:2]
    logits = _logits(model, batch, student_sel)
    truth = batch.classes if batch.classes is not None else batch.targets[batch.targets != IGNORE]
    ce = F.cross_entropy(logits, truth)
    if teacher is None:
        return ce
    with torch.no_grad():
        teacher_logits = _logits(teacher, batch, teacher_sel)
    t = float(config.temperature)
    kl = F.kl_div(
        F.log_softmax(logits / t, dim=-1),
        F.log_softmax(teacher_logits / t, dim=-1),
        log_target=True,
        reduction="batchmean",
    )
    return config.alpha * t * t * kl + (1.0 - config.alpha) * ce


@torch.no_grad()
def _validation_loss(model, data, pad_id: int, config, device, selectors) -> float:
    model.eval()
    loss, _accuracy = evaluate(
        model, data, pad_id=pad_id, layout="padded", batch_size=config.batch_size, device=device,
        dist=Dist(), virtual=0, selector=selectors[0] if selectors else None, autocast=contextlib.nullcontext,
    )  # fmt: skip
    return float(loss)


# -- masks -----------------------------------------------------------------------------------------------


def _mask_gradients(model, masks: dict) -> list:
    """prune.mask_gradients' hooks, after checking that every mask fits a Linear weight of this model."""
    problems = []
    for name, mask in masks.items():
        try:
            weight = model.get_submodule(name).weight
        except AttributeError:
            problems.append(f"{name} is not a layer with a weight in this model")
            continue
        if tuple(mask.shape) != tuple(weight.shape):
            problems.append(f"the mask of {name} is {tuple(mask.shape)}, its weight {tuple(weight.shape)}")
    if problems:
        raise CompressError("; ".join(problems[:10]))
    prune.apply_masks(model, masks)
    return prune.mask_gradients(model, masks)


# -- checks and data -------------------------------------------------------------------------------------


def _check_teacher(model, teacher, classification: bool) -> None:
    if classification:
        mine, theirs = int(model.config.num_labels), int(teacher.config.num_labels)
        if mine != theirs:
            raise CompressError(
                f"the student has {mine} labels and the teacher {theirs}: distil between classifiers of the "
                "same label set"
            )
        return
    mine, theirs = _vocab(model), _vocab(teacher)
    if mine != theirs:
        raise CompressError(
            f"the student's vocabulary ({mine}) differs from the teacher's ({theirs}): "
            "distil between models sharing a tokenizer"
        )


def _vocab(model) -> int:
    head = model.get_output_embeddings()
    return int(head.weight.shape[0]) if head is not None else int(model.config.vocab_size)


def _pad_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def _labels(model, config: CompressConfig) -> list[str]:
    """config.labels, or the model's id2label in id order; their count must be the classifier head's."""
    id2label = getattr(model.config, "id2label", None) or {}
    labels = list(config.labels) if config.labels else [str(id2label[i]) for i in sorted(id2label)]
    heads = int(model.config.num_labels)
    if len(labels) != heads:
        raise ConfigError({"labels": [f"{len(labels)} labels given; the model classifies into {heads}"]})
    return labels


def _examples(tokenizer, config: CompressConfig, labels):
    """Both files read (every bad line of either named at once), checked against the labels, tokenised."""
    data_task = config.data_task or ("classification" if config.task == "classification" else "chat")
    problems: dict[str, list[str]] = {}
    found = {}
    for name in ("train_file", "validation_file"):
        path = getattr(config, name)
        if not path:
            continue
        try:
            found[name] = read_records(path, data_task, name)
        except train_config.ConfigError as exc:
            problems |= exc.problems
            continue
        if labels is not None and (bad := _unknown_labels(path, found[name], labels)):
            problems[name] = bad
    if "train_file" not in found and "train_file" not in problems:
        problems["train_file"] = ["a dataset version is needed to train on (recovery or distillation)"]
    if problems:
        raise ConfigError(problems)
    try:
        out = [
            tokenize(found[name], tokenizer, data_task, config.max_seq_len, labels) if name in found else None
            for name in ("train_file", "validation_file")
        ]
    except train_config.ConfigError as exc:
        raise ConfigError(exc.problems) from None
    except train_config.TrainError as exc:
        raise CompressError(str(exc)) from None
    return out[0], out[1]


def _unknown_labels(path, records: list[dict], labels: list[str], limit: int = 20) -> list[str]:
    """ "line N: ..." for every row whose label is not one of ``labels`` (records are the file's non-blank lines)."""
    text = Path(path).read_text(encoding="utf-8")
    numbers = [n for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    known = set(labels)
    bad = [
        f"line {n}: label {r['label']!r} is not one of {', '.join(labels)}"
        for n, r in zip(numbers, records, strict=True)
        if str(r["label"]) not in known
    ]
    return bad[:limit] + ([f"... and {len(bad) - limit} more bad lines"] if len(bad) > limit else [])
