"""Reads behind the compression pages and API: the jobs with their source/result benchmarks, the ratios between
them, the quality of both sides from the job's comparison report, and a family's benchmarked versions side by side.

Why the ratios are computed here from the two VersionBenchmark rows instead of read from ``result["benchmark"]``
only: the rows are what the table shows, so the ratio printed beside them always agrees with them, and a job
benchmarked by an older worker (no ``benchmark`` block) still gets its ratios. The engine's block is used when a
row is missing.

Quality is the evaluation app's primary metric of a run: accuracy for a classifier, ``mean_score`` (0..1) for a
generator (accuracy when a run has no mean score). "Predictions unchanged" pairs the two runs' task results by
their example ``key`` (as the comparison report does) and counts identical predictions.
"""

from collections import Counter

from django.db.models import Prefetch

from evaluation_app.models import EvalResult, EvalRun, Pack
from llmops.jobs import JobStatus
from registry_app.models import ModelTask, ModelVersion, RegisteredModel, VersionSource
from training_app.models import CompressionJob, VersionBenchmark
from workers.compress.config import LABELS, METHODS

# the practice's short names for a family table: "original", "INT8", "pruned + INT8", "distilled"
SHORT = {
    "int8_dynamic": "INT8",
    "int8_weight_only": "INT8 weight-only",
    "int4_weight_only": "INT4",
    "prune_magnitude": "pruned",
    "prune_2_4": "pruned 2:4",
    "prune_heads": "heads pruned",
    "prune_mlp": "MLP pruned",
    "distill": "distilled",
}


def method_label(method: str) -> str:
    return LABELS.get(method, method)


def version_label(version: ModelVersion) -> str:
    """ "original" for base and fine-tuned versions; a compression's method, "+ INT8" when then_int8 was on."""
    if version.source != VersionSource.COMPRESSION:
        return "original"
    lineage = version.lineage or {}
    method = lineage.get("method") or ""
    label = SHORT.get(method, method or "compressed")
    if (lineage.get("config") or {}).get("then_int8"):
        label += " + INT8"
    return label


def compression_jobs():
    latest = VersionBenchmark.objects.order_by("-created_at", "-id")
    return CompressionJob.objects.select_related(
        "source__model", "result_version__model", "dataset_version__dataset", "student__model",
        "eval_dataset_version__dataset", "comparison__baseline", "comparison__candidate", "created_by",
    ).prefetch_related(Prefetch("benchmarks", queryset=latest))  # fmt: skip


def job_benchmarks(job: CompressionJob) -> dict[str, VersionBenchmark | None]:
    """The latest benchmark of each side of the job: {"source": …, "compressed": …}."""
    found: dict[str, VersionBenchmark | None] = {"source": None, "compressed": None}
    for bench in job.benchmarks.all():  # newest first (prefetched or the model's ordering)
        if bench.role in found and found[bench.role] is None:
            found[bench.role] = bench
    return found


def _ratio(a, b) -> float | None:
    return a / b if isinstance(a, int | float) and isinstance(b, int | float) and b else None


def job_ratios(job: CompressionJob, benches: dict | None = None) -> dict:
    """size_ratio (result / source, < 1 is smaller) and speed-ups (source p50 / result p50, > 1 is faster)."""
    benches = benches if benches is not None else job_benchmarks(job)
    src, out = benches["source"], benches["compressed"]
    engine = (job.result or {}).get("benchmark") or {}
    speed = engine.get("speedup") or {}
    if src and out:
        return {"size_ratio": _ratio(out.size_bytes, src.size_bytes),
                "parameter_ratio": _ratio(out.parameters, src.parameters),
                "memory_ratio": _ratio(out.peak_memory_bytes, src.peak_memory_bytes),
                "speedup_b1": _ratio(src.p50_b1_ms, out.p50_b1_ms), "speedup_b8": _ratio(src.p50_b8_ms, out.p50_b8_ms),
                "throughput_ratio": _ratio(out.throughput, src.throughput)}  # fmt: skip
    return {"size_ratio": engine.get("size_ratio"), "parameter_ratio": engine.get("parameter_ratio"),
            "memory_ratio": engine.get("memory_ratio"), "speedup_b1": speed.get("1"), "speedup_b8": speed.get("8"),
            "throughput_ratio": engine.get("throughput_ratio")}  # fmt: skip


def primary_quality(run: EvalRun | None) -> float | None:
    """The run's primary score (accuracy for a classifier, mean_score for a generator), None until it has one."""
    if run is None or run.status != JobStatus.SUCCEEDED:
        return None
    task = (run.metrics or {}).get("task") or {}
    names = (
        ("accuracy",)
        if run.model_version.model.task == ModelTask.CLASSIFICATION
        else ("mean_score", "accuracy")
    )
    for name in names:
        if isinstance(task.get(name), int | float):
            return float(task[name])
    return None


def unchanged_share(baseline: EvalRun, candidate: EvalRun) -> tuple[float | None, int]:
    """Share of the examples both runs answered whose prediction is identical, and how many were paired."""
    rows = EvalResult.objects.filter(run__in=[baseline, candidate], pack=Pack.TASK).values_list(
        "run_id", "key", "prediction"
    )
    sides: dict[int, dict[str, str]] = {baseline.pk: {}, candidate.pk: {}}
    for run_id, key, prediction in rows:
        sides[run_id][key] = prediction
    keys = sides[baseline.pk].keys() & sides[candidate.pk].keys()
    if not keys:
        return None, 0
    same = sum(1 for k in keys if sides[baseline.pk][k] == sides[candidate.pk][k])
    return same / len(keys), len(keys)


def job_quality(job: CompressionJob) -> dict:
    """Quality of source and result from the job's comparison report; Nones while it has none."""
    report = job.comparison
    out = {"report": report, "baseline_run": None, "candidate_run": None, "metric": None, "baseline": None,
           "candidate": None, "delta": None, "unchanged": None, "paired": 0, "pending": False}  # fmt: skip
    if report is None:
        out["pending"] = bool(job.eval_dataset_version_id and job.status == JobStatus.SUCCEEDED)
        return out
    base, cand = report.baseline, report.candidate
    out.update(baseline_run=base, candidate_run=cand, baseline=primary_quality(base),
               candidate=primary_quality(cand))  # fmt: skip
    out["metric"] = "accuracy" if job.source.model.task == ModelTask.CLASSIFICATION else "mean score"
    out["pending"] = not (base.is_terminal and cand.is_terminal)
    if out["baseline"] is not None and out["candidate"] is not None:
        out["delta"] = out["candidate"] - out["baseline"]
    if base.status == JobStatus.SUCCEEDED and cand.status == JobStatus.SUCCEEDED:
        out["unchanged"], out["paired"] = unchanged_share(base, cand)
    return out


def benchmark_rows(job: CompressionJob) -> dict:
    """The result page's table: a row per side (benchmark + quality) and the ratios between them."""
    benches = job_benchmarks(job)
    quality = job_quality(job)
    rows = [
        {"role": "source", "label": "source", "version": job.source, "bench": benches["source"],
         "quality": quality["baseline"], "run": quality["baseline_run"]},
        {"role": "compressed", "label": method_label(job.method), "version": job.result_version,
         "bench": benches["compressed"], "quality": quality["candidate"], "run": quality["candidate_run"]},
    ]  # fmt: skip
    return {"rows": rows, "ratios": job_ratios(job, benches), "quality": quality,
            "benchmarked": bool(benches["source"] or benches["compressed"])}  # fmt: skip


# ---- a family's benchmarked versions


def family_dataset_versions(model: RegisteredModel) -> list[tuple[int, str, int]]:
    """(dataset version id, label, jobs using it) of the evaluation sets of the family's compressions, most used
    first; then any other dataset version a benchmarked version of the family was scored on."""
    jobs = CompressionJob.objects.filter(source__model=model, eval_dataset_version__isnull=False)
    used = Counter(jobs.values_list("eval_dataset_version_id", flat=True))
    runs = EvalRun.objects.filter(model_version__model=model, status=JobStatus.SUCCEEDED)
    ids = list(used) + [
        i for i in runs.values_list("dataset_version_id", flat=True).distinct() if i not in used
    ]
    from datasets_app.models import DatasetVersion

    names = {v.pk: str(v) for v in DatasetVersion.objects.filter(pk__in=ids).select_related("dataset")}
    found = [(i, names[i], used.get(i, 0)) for i in ids if i in names]
    return sorted(found, key=lambda t: (-t[2], t[0]))


def _quality_on(versions: list[ModelVersion], dataset_version_id: int | None) -> dict[int, float]:
    """{version id: primary quality of its latest succeeded run on the dataset version}."""
    if dataset_version_id is None:
        return {}
    runs = (EvalRun.objects.filter(model_version__in=versions, dataset_version_id=dataset_version_id,
                                   status=JobStatus.SUCCEEDED)
            .select_related("model_version__model").order_by("-finished_at", "-id"))  # fmt: skip
    quality: dict[int, float] = {}
    for run in runs:
        value = primary_quality(run)
        if value is not None and run.model_version_id not in quality:
            quality[run.model_version_id] = value
    return quality


def family_rows(model: RegisteredModel, dataset_version_id: int | None) -> list[dict]:
    """Every version of the family that has a benchmark: its latest one, its quality and the loss vs its source."""
    latest = VersionBenchmark.objects.order_by("-created_at", "-id")
    versions = list(
        model.versions.filter(benchmarks__isnull=False).distinct().select_related("model", "base")
        .prefetch_related(Prefetch("benchmarks", queryset=latest)).order_by("number")
    )  # fmt: skip
    quality = _quality_on(versions + [v.base for v in versions if v.base_id], dataset_version_id)
    rows = []
    for version in versions:
        bench = version.benchmarks.all()[0]
        mine, theirs = quality.get(version.pk), quality.get(version.base_id) if version.base_id else None
        loss = (
            theirs - mine
            if version.source == VersionSource.COMPRESSION and None not in (mine, theirs)
            else None
        )
        rows.append({"version": version, "label": version_label(version), "bench": bench, "quality": mine,
                     "loss": loss, "job": (version.lineage or {}).get("compression_job")})  # fmt: skip
    return rows


def new_method_links() -> list[tuple[str, str]]:
    return [(m, LABELS[m]) for m in METHODS]
