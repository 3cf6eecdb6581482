"""Run a fine-tune on the gpu worker: the engine trains, metrics go to MetricPoint in batches, progress and cancel go
through the job's Reporter, and a finished run's adapter or model is registered as a new ModelVersion. A study's
trial asks the median pruner after each validation (a pruned trial ends cancelled, marked pruned, registering
nothing) and, once ended, lets its study submit the next trials."""

import logging
import math
import time
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

from llmops.jobs import JobCancelled, JobFailed, Reporter, RunOutcome, job_run
from registry_app.models import VersionFormat, VersionSource
from registry_app.services import derived_version_register
from training_app.models import FineTuneJob, MetricPoint
from training_app.services.study import study_should_prune, study_trial_finished

log = logging.getLogger(__name__)


def fine_tune_run(*, job_id: int, task_id: str, hostname: str | None) -> RunOutcome:
    outcome = job_run(model=FineTuneJob, job_id=job_id, task_id=task_id, hostname=hostname, work=_fine_tune)
    try:  # the job's end is recorded; a study it belongs to submits its next trials or ends
        study_trial_finished(job_id=job_id)
    except Exception:
        log.exception("the study of fine-tune %s could not advance", job_id)
    if outcome.status == "succeeded":
        try:  # scored against its base on the dataset's test split; the report computes when both runs end
            from evaluation_app.services.auto import fine_tune_evaluate

            fine_tune_evaluate(job_id=job_id)
        except Exception:
            log.exception("fine-tune %s could not be queued for evaluation", job_id)
    return outcome


class MetricBatcher:
    """Buffers metric points and writes them with one bulk_create every ``size`` points or ``seconds``."""

    def __init__(self, job_id: int, size: int | None = None, seconds: float | None = None):
        self.job_id, self.buffer = job_id, []
        self.size = size or settings.TRAINING_METRIC_BATCH_SIZE
        self.seconds = settings.TRAINING_METRIC_FLUSH_SECONDS if seconds is None else seconds
        self.last_flush = time.monotonic()

    def add(self, step: int | None, metrics: dict) -> None:
        for name, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                continue
            self.buffer.append(
                MetricPoint(job_id=self.job_id, step=step or 0, name=name[:32], value=float(value))
            )
        if len(self.buffer) >= self.size or time.monotonic() - self.last_flush >= self.seconds:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            MetricPoint.objects.bulk_create(self.buffer, batch_size=1000)
            self.buffer = []
        self.last_flush = time.monotonic()


def _fine_tune(job: FineTuneJob, report: Reporter) -> str:
    from workers.train import ConfigError, TrainConfig, TrainError, launch, train

    job = FineTuneJob.objects.select_related("base__model", "dataset_version").get(pk=job.pk)
    config = TrainConfig.from_dict(job.config)
    batcher = MetricBatcher(job.pk)
    report.on_metrics = batcher.add
    pruned: list[int] = []

    def engine_report(step: int | None = None, **metrics) -> str | None:
        total = metrics.get("total_steps")
        message = f"step {step}/{total}" if total else f"step {step}"
        if metrics.get("train_loss") is not None:
            message += f", loss {metrics['train_loss']:.4f}"
        progress = metrics.pop("progress", None)
        answer = report(step=step, progress=progress, message=message, **metrics)
        if answer is None and _should_prune(job, batcher, step, total, metrics):
            pruned.append(step)
            report.message = f"pruned at step {step}: validation loss above the median of the other trials"
            return "stop"
        return answer

    resume = job.attempts > 1 and (Path(config.output_dir) / "checkpoints").is_dir()
    try:
        if job.gpus > 1:
            result = launch(config, n_procs=job.gpus, report=engine_report, resume=resume)
        else:
            result = train(config, engine_report, resume=resume)
    except (ConfigError, TrainError) as e:
        raise JobFailed(str(e)) from e
    finally:
        batcher.flush()
    summary = {k: v for k, v in result.to_dict().items() if k not in ("train_losses", "val_losses")}
    FineTuneJob.objects.filter(pk=job.pk).update(
        tokens_seen=result.tokens_seen, best_step=result.best_step, result=summary,
        best_checkpoint=str(Path(config.output_dir) / "best") if result.best_step is not None else "",
    )  # fmt: skip
    if result.status == "cancelled" and pruned:
        FineTuneJob.objects.filter(pk=job.pk).update(pruned=True, progress_message=report.message)
        raise JobCancelled("pruned by the study's median pruner")
    if result.status == "cancelled":
        raise JobCancelled("the engine stopped at a checkpoint")
    version = _register(job, result)
    FineTuneJob.objects.filter(pk=job.pk).update(result_version=version)
    loss = f", train loss {result.train_loss:.4f}" if result.train_loss is not None else ""
    return f"{result.final_step} steps{loss}; registered {version}"


def _should_prune(job: FineTuneJob, batcher: MetricBatcher, step, total, metrics: dict) -> bool:
    """A study's trial asks the median pruner after each validation but the last (which ends the run anyway)."""
    if not (job.study_id and "val_loss" in metrics and step and total and step < total):
        return False
    batcher.flush()  # the pruner reads this trial's validation losses from the database
    return study_should_prune(job_id=job.pk)


def _register(job: FineTuneJob, result):
    if result.adapter_path:
        path, fmt = result.adapter_path, VersionFormat.PEFT_ADAPTER
    elif result.model_path:
        path, fmt = result.model_path, VersionFormat.HF
    else:
        raise JobFailed("the run finished without an adapter or a model folder")
    lineage = {"dataset_version": job.dataset_version_id, "job": job.pk, "config": job.config,
               "merged_model": result.model_path if result.adapter_path else None}  # fmt: skip
    try:
        return derived_version_register(user=job.created_by, base=job.base, path=path,
                                        source=VersionSource.FINE_TUNE, fmt=fmt, lineage=lineage)  # fmt: skip
    except ValidationError as e:
        raise JobFailed(f"the output could not be registered: {'; '.join(e.messages)}") from e
