"""Run a compression on the gpu worker: the engine compresses, the result is registered as a new version of the
source's family (lineage: source, method, settings), then source and result are benchmarked side by side on this
worker (alternating fresh processes) and, when the job names an evaluation dataset version, both are scored on it
through the evaluation app, whose comparison report gives the quality delta."""

import logging
import socket

from django.conf import settings
from django.core.exceptions import ValidationError

from llmops.jobs import JobCancelled, JobFailed, JobStatus, Reporter, RunOutcome, job_run
from registry_app.models import ModelTask, VersionFormat, VersionSource
from registry_app.services import derived_version_register
from training_app.models import CompressionJob, VersionBenchmark

log = logging.getLogger(__name__)
COMPRESS_SHARE = 0.8  # of the job's progress bar; benchmarking takes the rest


def compression_run(*, job_id: int, task_id: str, hostname: str | None) -> RunOutcome:
    outcome = job_run(model=CompressionJob, job_id=job_id, task_id=task_id, hostname=hostname, work=_compress)
    if outcome.status == "succeeded":
        try:
            compression_evaluate(job_id=job_id)
        except Exception:
            log.exception("compression %s could not be queued for evaluation", job_id)
    return outcome


def _compress(job: CompressionJob, report: Reporter) -> str:
    from workers.compress import CompressConfig, CompressError, ConfigError, compress

    job = CompressionJob.objects.select_related("source__model").get(pk=job.pk)
    config = CompressConfig.from_dict(job.config)

    def engine_report(step: int | None = None, **metrics) -> str | None:
        progress = metrics.pop("progress", None)
        message = metrics.pop("message", None) or _message(step, metrics)
        return report(step=step, progress=None if progress is None else progress * COMPRESS_SHARE,
                      message=message)  # fmt: skip

    try:
        result = compress(config, engine_report)
    except (ConfigError, CompressError) as e:
        raise JobFailed(str(e)) from e
    CompressionJob.objects.filter(pk=job.pk).update(result=result.to_dict())
    if result.status == "cancelled":
        raise JobCancelled("the engine stopped between two steps")
    version = _register(job, result)
    CompressionJob.objects.filter(pk=job.pk).update(result_version=version)
    report(progress=COMPRESS_SHARE, message="benchmarking the result against its source")
    report.check()
    ratios = _benchmark(job, version, config)
    speed = (ratios.get("speedup") or {}).get("8")
    speed = f", {speed:.2f}x faster at batch 8" if speed else ""
    return f"registered {version}: {ratios.get('size_ratio', 0):.2f} of the source's size{speed}"


def _message(step: int | None, metrics: dict) -> str:
    total = metrics.get("total_steps")
    text = f"step {step}/{total}" if total else f"step {step}"
    if metrics.get("train_loss") is not None:
        text += f", loss {metrics['train_loss']:.4f}"
    return text


def _register(job: CompressionJob, result):
    fmt = VersionFormat.QUANTIZED if result.format == "quantized" else VersionFormat.HF
    lineage = {"method": job.method, "config": job.config, "job": job.pk, "compression_job": job.pk,
               "dataset_version": job.dataset_version_id, "student_version": job.student_id,
               "sparsity_reached": result.sparsity_reached}  # fmt: skip
    try:
        return derived_version_register(user=job.created_by, base=job.source, path=result.model_path,
                                        source=VersionSource.COMPRESSION, fmt=fmt, lineage=lineage)  # fmt: skip
    except ValidationError as e:
        raise JobFailed(f"the result could not be registered: {'; '.join(e.messages)}") from e


def _benchmark(job: CompressionJob, version, config) -> dict:
    from workers.compress.measure import benchmark_pair, compare
    from workers.compress.probes import PROBE_TEXTS

    task = job.source.model.task
    device = "cpu" if job.method == "int8_dynamic" or not settings.GPU_WORKERS_CUDA else "cuda"
    source, compressed = benchmark_pair(
        config.model_path, version.artifact_uri, task, device=device, texts=PROBE_TEXTS,
        rounds=settings.COMPRESSION_BENCH_ROUNDS, repeats=settings.COMPRESSION_BENCH_REPEATS,
        max_new_tokens=settings.COMPRESSION_BENCH_MAX_NEW_TOKENS,
    )  # fmt: skip
    for role, measured, measured_version in (
        ("source", source, job.source),
        ("compressed", compressed, version),
    ):
        benchmark_save(job=job, version=measured_version, role=role, measured=measured)
    ratios = compare(source, compressed)
    CompressionJob.objects.filter(pk=job.pk).update(result={**job_result(job.pk), "benchmark": ratios})
    return ratios


def job_result(job_id: int) -> dict:
    return CompressionJob.objects.values_list("result", flat=True).get(pk=job_id) or {}


def benchmark_save(*, job: CompressionJob | None, version, role: str, measured: dict) -> VersionBenchmark:
    latency = measured.get("latency") or {}
    return VersionBenchmark.objects.create(
        version=version, job=job, role=role, hostname=socket.gethostname(), device=measured.get("device", "cpu"),
        size_bytes=measured.get("size_bytes") or 0, parameters=measured.get("parameters") or 0,
        peak_memory_bytes=measured.get("peak_memory_bytes") or 0,
        p50_b1_ms=latency.get("1", {}).get("p50_ms"), p95_b1_ms=latency.get("1", {}).get("p95_ms"),
        p50_b8_ms=latency.get("8", {}).get("p50_ms"), p95_b8_ms=latency.get("8", {}).get("p95_ms"),
        throughput=measured.get("throughput"), measured=measured,
    )  # fmt: skip


def compression_evaluate(*, job_id: int):
    """Score the source and the result on the job's evaluation dataset version; compare them in a report."""
    from evaluation_app.models import Trigger
    from evaluation_app.services.auto import reusable_run
    from evaluation_app.services.compare import comparison_create
    from evaluation_app.services.submit import eval_run_submit

    job = CompressionJob.objects.select_related(
        "source__model", "result_version", "eval_dataset_version"
    ).get(pk=job_id)
    version = job.eval_dataset_version
    if version is None or job.result_version is None or job.status != JobStatus.SUCCEEDED:
        return None
    suites = ["task", "efficiency"]
    generation = {} if job.source.model.task == ModelTask.CLASSIFICATION else {
        "max_new_tokens": settings.EVAL_AUTO_MAX_NEW_TOKENS}  # fmt: skip
    common = {"dataset_version": version, "split": job.eval_split, "suites": suites, "trigger": Trigger.AUTO,
              "user": job.created_by, "generation": generation}  # fmt: skip
    try:
        baseline = reusable_run(job.source, version, job.eval_split, suites, generation) or eval_run_submit(
            model_version=job.source, name=f"{job.source} (source of compression #{job.pk})", **common
        )
        candidate = eval_run_submit(model_version=job.result_version, name=f"compression #{job.pk}", **common)
        report = comparison_create(
            user=job.created_by, baseline=baseline, candidate=candidate, trigger=Trigger.AUTO,
            name=f"compression #{job.pk}: {job.result_version} vs {job.source}",
        )  # fmt: skip
    except ValidationError as e:
        log.warning("compression %s could not be evaluated: %s", job_id, "; ".join(e.messages))
        return None
    CompressionJob.objects.filter(pk=job.pk).update(comparison=report)
    return report
