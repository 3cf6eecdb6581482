"""``train(config, report, resume=False) -> TrainResult``: one fine-tuning run, top to bottom.

setup (cheap checks → data → model → method → layout → optimizer → resume) → loop (step → evaluate →
report → checkpoint) → cleanup (choose weights → outputs → result.json). No Trainer: every line that runs is
here or in the modules it names.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from workers.train import checkpoint, ddp
from workers.train.config import ConfigError, TrainConfig, TrainError, check_against_model
from workers.train.data import StepPlan, collate, read_records, steps_for, tokenize
from workers.train.methods import (
    apply_method,
    check_model_dir,
    check_runtime,
    load_model,
    load_tokenizer,
    packing_is_exact,
    resolve_precision,
    supports_packing,
    trainable_parameters,
    uses_varlen_attention,
    virtual_tokens,
)
from workers.train.outputs import (
    RESULT_FILE,
    TrainResult,
    load_best,
    load_trainable_state,
    save_best,
    trainable_state,
    write_model_outputs,
)
from workers.train.report import Meter, Report, gpu_util, memory_mb, no_report
from workers.train.steps import (
    Fgm,
    LogitSelector,
    PooledHead,
    Swa,
    evaluate,
    lr_lambda,
    make_optimizer,
    token_losses,
)

OOM_HINT = (
    "out of memory: try a smaller batch_size (raise grad_accum to keep the same global batch), a shorter "
    "max_seq_len, gradient_checkpointing, or LoRA / QLoRA instead of full fine-tuning"
)


# CUDA / MPS say "out of memory"; the CPU allocator says "DefaultCPUAllocator: can't allocate memory".
OOM_MARKERS = ("out of memory", "can't allocate memory")


def _is_oom(exc: BaseException) -> bool:
    return any(marker in str(exc).lower() for marker in OOM_MARKERS)


@dataclass
class TrainState:
    """The loop's own state: JSON in every checkpoint."""

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    tokens_seen: int = 0
    best_val_loss: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    stopped_early: bool = False
    last_val_loss: float | None = None
    last_val_accuracy: float | None = None
    best_val_accuracy: float | None = None
    last_train_loss: float | None = None
    train_losses: list = field(default_factory=list)
    val_losses: list = field(default_factory=list)


def train(config: TrainConfig, report: Report | None = None, *, resume: bool = False) -> TrainResult:
    """Fine-tune ``config.base_model_path`` as ``config`` says; see workers.train for the whole contract.

    Raises ConfigError (the user's settings or data, every problem at once) or TrainError (missing model, out
    of memory, ...). ``report(step=..., **metrics)`` answering "stop" saves a checkpoint and returns a result
    with status "cancelled"; ``resume=True`` goes on from the newest complete checkpoint in output_dir.
    """
    config.validate()
    check_model_dir(config.base_model_path)
    dist, device = ddp.setup()
    try:
        return _train(config, no_report if report is None else report, resume, dist, device)
    except torch.cuda.OutOfMemoryError as exc:
        raise TrainError(OOM_HINT) from exc
    except RuntimeError as exc:
        if _is_oom(exc) and not isinstance(exc, TrainError):
            raise TrainError(OOM_HINT) from exc
        raise
    finally:
        dist.close()


def _train(config: TrainConfig, report: Report, resume: bool, dist: ddp.Dist, device: torch.device):
    # ---- setup: everything cheap that can refuse the run comes first ------------------------------------
    check_runtime(config, device)
    out = Path(config.output_dir)
    records, val_records = _read_data(config)
    labels = _labels(config, records, val_records)
    tokenizer = load_tokenizer(config.base_model_path)
    train_data = tokenize(records, tokenizer, config.task, config.max_seq_len, labels)
    val_data = (
        tokenize(val_records, tokenizer, config.task, config.max_seq_len, labels) if val_records else None
    )
    del records, val_records
    steps_per_epoch = StepPlan(
        train_data.lengths,
        batch_size=config.batch_size,
        grad_accum=config.grad_accum,
        world=dist.world,
        seed=config.seed,
        grouped=False,
    ).steps_per_epoch
    total_steps = steps_for(config, steps_per_epoch, len(train_data), dist.world)
    warmup = config.check_total_steps(total_steps)

    _seed_everything(config.seed)
    compute_dtype = resolve_precision(config, device)
    model = load_model(config, tokenizer, device, compute_dtype, labels)
    check_against_model(config, model)
    model = apply_method(model, config)
    model.train()
    params = trainable_parameters(model)
    virtual = virtual_tokens(model, config)
    layout = "padded"
    if supports_packing(config):
        layout = (
            "varlen"
            if uses_varlen_attention(model)
            else ("packed" if packing_is_exact(model, device) else "padded")
        )
    selector = LogitSelector(model) if config.task != "classification" else PooledHead.attach(model, virtual)

    plan = StepPlan(
        train_data.lengths,
        batch_size=config.batch_size,
        grad_accum=config.grad_accum,
        world=dist.world,
        seed=config.seed,
        grouped=layout == "padded",
    )
    optimizer = make_optimizer(params, config, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config.scheduler, warmup, total_steps))
    scaler = torch.amp.GradScaler(device.type) if compute_dtype == torch.float16 else None
    swa = None
    if config.swa_start is not None:
        swa = Swa(
            [p for _, p in params],
            int(config.swa_start * total_steps),
            config.swa_lr or config.lr,
            total_steps,
        )
    fgm = Fgm(model, config.fgm_epsilon) if config.fgm_epsilon else None
    torch.manual_seed(config.seed + dist.rank)  # dropout differs per process; initialisation did not

    state = TrainState()
    ckpt_root = out / "checkpoints"
    found = checkpoint.latest(ckpt_root) if resume else None
    if not found and dist.main:  # a fresh run: an earlier run's files in this folder must not mix with ours
        for stale in (ckpt_root, out / "best"):
            shutil.rmtree(stale, ignore_errors=True)
        (out / RESULT_FILE).unlink(missing_ok=True)
    if found:
        snap = checkpoint.load(found)
        _check_resumable(snap, train_data, dist, total_steps, found)
        load_trainable_state(model, snap["model"])
        if swa and snap["swa"] is not None:
            swa.load(snap["swa"], optimizer)
        optimizer.load_state_dict(snap["optimizer"])
        scheduler.load_state_dict(snap["scheduler"])
        if scaler and snap["scaler"]:
            scaler.load_state_dict(snap["scaler"])
        state = TrainState(**snap["trainer"])
        checkpoint.set_rng_state(snap["rng"][dist.rank])
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / ddp.STOP_FILE).unlink(missing_ok=True)

    forward = model
    if dist.world > 1:
        forward = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    ddp_model = forward if dist.world > 1 else None
    if config.compile:
        forward = torch.compile(forward, dynamic=True)

    def autocast():
        enabled = compute_dtype != torch.float32
        return torch.autocast(device.type, dtype=compute_dtype, enabled=enabled)

    def no_sync(skip: bool):
        return ddp_model.no_sync() if ddp_model is not None and skip else contextlib.nullcontext()

    def losses_of(batch):
        with autocast():
            return token_losses(
                forward, batch, virtual=virtual, selector=selector, smoothing=config.label_smoothing
            )

    def run_eval():
        return evaluate(
            forward, val_data, pad_id=tokenizer.pad_token_id, layout=layout, batch_size=config.batch_size,
            device=device, dist=dist, virtual=virtual, selector=selector, autocast=autocast,
        )  # fmt: skip

    def snapshot() -> dict:
        rng = dist.gather(checkpoint.rng_state())
        return {
            "model": trainable_state(model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler else None,
            "swa": swa.state() if swa else None,
            "rng": rng,
            "trainer": asdict(state),
            "world": dist.world,
            "data": train_data.fingerprint(),
            "total_steps": total_steps,
        }

    def save_checkpoint() -> Path:
        snap = snapshot()  # every process takes part (RNG states are gathered)
        path = checkpoint.save(ckpt_root, state.step, snap, config.keep_checkpoints) if dist.main else None
        dist.barrier()
        return path or ckpt_root / f"{checkpoint.PREFIX}{state.step:08d}"

    # ---- loop --------------------------------------------------------------------------------------------
    meter = Meter(state.step)
    while state.step < total_steps and not state.stopped_early:
        started = time.perf_counter()
        batches = [
            collate(train_data, idx, tokenizer.pad_token_id, layout)
            for idx in plan.batches(state.epoch, state.step_in_epoch, dist.rank)
        ]
        n_targets, tokens = dist.sum([sum(b.n_targets for b in batches), sum(b.tokens for b in batches)])
        scale = dist.world / max(n_targets, 1.0)  # DDP averages over processes: this makes it a global mean
        loss_sum = torch.zeros((), device=device)
        for i, batch in enumerate(batches):
            batch = batch.to(device)
            last = i == len(batches) - 1
            if fgm:
                fgm.watch()
            with no_sync(not (last and not fgm)):
                loss = losses_of(batch).sum()
                _backward(loss * scale, scaler)
            loss_sum += loss.detach().float()
            if fgm and fgm.attack():
                with no_sync(not last):
                    _backward(losses_of(batch).sum() * scale, scaler)
                fgm.restore()
        if scaler:
            scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for _, p in params], config.max_grad_norm or float("inf")
        )
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        if swa and swa.active(state.step):
            swa.begin(optimizer)
            swa.update()
        else:
            scheduler.step()
        state.step_in_epoch += 1
        if state.step_in_epoch >= plan.steps_per_epoch:
            state.epoch, state.step_in_epoch = state.epoch + 1, 0
        state.tokens_seen += int(tokens)
        (step_loss,) = dist.sum([float(loss_sum)])
        meter.add(step_loss / max(n_targets, 1.0), n_targets, int(tokens), time.perf_counter() - started)
        done = state.step >= total_steps

        evaluated = val_data is not None and (
            done or (config.eval_every and state.step % config.eval_every == 0)
        )
        if evaluated:
            state.last_val_loss, state.last_val_accuracy = run_eval()
            state.val_losses.append([state.step, state.last_val_loss])
            improved = (
                state.best_val_loss is None
                or state.last_val_loss < state.best_val_loss - config.early_stopping_min_delta
            )
            if improved:
                state.best_val_loss, state.best_step, state.bad_evals = state.last_val_loss, state.step, 0
                state.best_val_accuracy = state.last_val_accuracy
                if dist.main:
                    save_best(out, model, state.step, state.last_val_loss)
            else:
                state.bad_evals += 1
                patience = config.early_stopping_patience
                state.stopped_early = bool(patience and state.bad_evals >= patience)

        stop = False
        if state.step % config.log_every == 0 or evaluated or done or state.stopped_early:
            metrics = meter.flush(state.step, total_steps)
            state.last_train_loss = metrics["train_loss"]
            state.train_losses.append([state.step, metrics["train_loss"]])
            if dist.main:
                metrics |= {
                    "lr": optimizer.param_groups[0]["lr"],
                    "grad_norm": float(grad_norm),
                    "tokens_seen": state.tokens_seen,
                    "memory_mb": memory_mb(device),
                    "epoch": state.epoch + state.step_in_epoch / plan.steps_per_epoch,
                    "progress": state.step / total_steps,
                    "total_steps": total_steps,
                }
                if (util := gpu_util(device)) is not None:
                    metrics["gpu_util"] = util
                if evaluated:
                    metrics["val_loss"] = state.last_val_loss
                    if state.last_val_accuracy is not None:
                        metrics["val_accuracy"] = state.last_val_accuracy
                stop = report(step=state.step, **metrics) == "stop"
            stop = dist.agree(stop)
        if stop:
            path = save_checkpoint()
            return _finish(
                config,
                state,
                "cancelled",
                total_steps,
                layout,
                train_data,
                val_data,
                labels,
                checkpoint=path,
                main=dist.main,
                steps_per_epoch=plan.steps_per_epoch,
            )
        if config.checkpoint_every and state.step % config.checkpoint_every == 0 and not done:
            save_checkpoint()

    # ---- cleanup: choose the weights, write the outputs ---------------------------------------------------
    weights = "swa" if swa else ("best" if val_data is not None and state.best_step is not None else "last")
    if swa:
        swa.copy_to_model()
        if val_data is not None:
            state.last_val_loss, state.last_val_accuracy = run_eval()
    elif weights == "best" and dist.main and state.best_step != state.step:
        load_best(out, model)
        state.last_val_loss, state.last_val_accuracy = state.best_val_loss, state.best_val_accuracy
    if selector:
        selector.remove()
    adapter_path = model_path = None
    if dist.main:
        adapter_path, model_path = write_model_outputs(model, tokenizer, config, out, device)
    latest = checkpoint.latest(ckpt_root)
    return _finish(
        config, state, "succeeded", total_steps, layout, train_data, val_data, labels,
        checkpoint=latest, main=dist.main, steps_per_epoch=plan.steps_per_epoch, weights=weights, adapter_path=adapter_path, model_path=model_path,
    )  # fmt: skip


def _backward(loss: torch.Tensor, scaler) -> None:
    (scaler.scale(loss) if scaler else loss).backward()


def _finish(
    config,
    state,
    status,
    total_steps,
    layout,
    train_data,
    val_data,
    labels,
    *,
    checkpoint,
    main,
    steps_per_epoch,
    weights="last",
    adapter_path=None,
    model_path=None,
):
    out = Path(config.output_dir)
    result = TrainResult(
        status=status,
        final_step=state.step,
        total_steps=total_steps,
        epochs_done=state.epoch + state.step_in_epoch / max(1, steps_per_epoch),
        tokens_seen=state.tokens_seen,
        train_loss=state.last_train_loss,
        val_loss=state.last_val_loss,
        val_accuracy=state.last_val_accuracy,
        best_step=state.best_step,
        best_val_loss=state.best_val_loss,
        stopped_early=state.stopped_early,
        weights=weights,
        layout=layout,
        train_losses=state.train_losses,
        val_losses=state.val_losses,
        examples={
            "train": len(train_data),
            "validation": len(val_data) if val_data else 0,
            "dropped": train_data.dropped,
        },
        labels=labels or [],
        output_dir=str(out),
        adapter_path=adapter_path,
        model_path=model_path,
        checkpoint_path=str(checkpoint) if checkpoint else None,
        result_path=str(out / RESULT_FILE),
    )
    if main:
        result.write()
    return result


def _read_data(config: TrainConfig) -> tuple[list[dict], list[dict] | None]:
    """Both files checked before either is refused, so every bad line is named at once."""
    problems: dict[str, list[str]] = {}
    found: dict[str, list[dict] | None] = {"train_file": None, "validation_file": None}
    for name in found:
        if path := getattr(config, name):
            try:
                found[name] = read_records(path, config.task, name)
            except ConfigError as exc:
                problems |= exc.problems
    if problems:
        raise ConfigError(problems)
    return found["train_file"], found["validation_file"]


def _labels(config: TrainConfig, records, val_records) -> list[str] | None:
    if config.task != "classification":
        return None
    labels = list(config.labels) or sorted({str(r["label"]) for r in records})
    known, problems = set(labels), {}
    for name, rows in (("train_file", records), ("validation_file", val_records or [])):
        unknown = sorted({str(r["label"]) for r in rows} - known)
        if unknown:
            problems[name] = [f"labels not in the label list: {', '.join(unknown[:20])}"]
    if len(labels) < 2:
        problems.setdefault("labels", []).append(f"a classifier needs at least 2 labels (found {labels})")
    if problems:
        raise ConfigError(problems)
    return labels


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _check_resumable(snap: dict, train_data, dist, total_steps: int, path: Path) -> None:
    if snap["world"] != dist.world:
        raise TrainError(f"{path} was saved by {snap['world']} processes; resume it with the same number")
    if snap["data"] != train_data.fingerprint():
        raise TrainError(f"{path} was saved on different training data; start a new run instead of resuming")
    if snap["total_steps"] != total_steps:
        raise TrainError(f"{path} planned {snap['total_steps']} steps, this configuration {total_steps}")
