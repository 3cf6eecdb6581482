"""Registry reads shared by the promotion pages, the API and the services.

- ``gate_report``/``gate_facts``: what the gate is evaluated on. The report is the newest computed comparison whose
  candidate run scored the version and whose baseline run scored the family's current production version; a family
  with no production version yet is compared with the version's base, else with any other version of the family.
- ``previous_production``: where a rollback goes. Walking the production timeline newest first, the first version
  that held production, is not the current one and was not itself rolled back away from (so two rollbacks in a row
  go two steps back instead of ping-ponging).
- ``drift``: new error cases per version per day (ErrorCase.model_version holds a version's ``openai_id``).
"""

from datetime import timedelta

from django.db.models import BooleanField, Count, ExpressionWrapper, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from evaluation_app.models import ComparisonReport, EvalRun, ReportStatus
from registry_app.gate import GateFacts
from registry_app.models import (
    Alias,
    AliasChange,
    GatePolicy,
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
    RequestStatus,
)

DRIFT_DAYS = 30


def production_of(model: RegisteredModel) -> ModelVersion | None:
    return model.versions.filter(alias=Alias.PRODUCTION).first()


def gate_items(model: RegisteredModel) -> dict:
    policy = GatePolicy.objects.filter(model=model).first()
    return dict(policy.items) if policy and isinstance(policy.items, dict) else {}


def _baselines(version: ModelVersion) -> list[int]:
    production = production_of(version.model)
    if production is not None and production.pk != version.pk:
        return [production.pk]
    others = list(
        version.model.versions.exclude(pk=version.pk).order_by("-number").values_list("pk", flat=True)
    )
    if version.base_id in others:
        others.remove(version.base_id)
        others.insert(0, version.base_id)
    return others


def gate_report(version: ModelVersion) -> ComparisonReport | None:
    reports = ComparisonReport.objects.select_related(
        "baseline__model_version__model", "candidate__model_version__model"
    ).filter(candidate__model_version=version, status=ReportStatus.READY, computed_at__isnull=False)
    for baseline in _baselines(version):
        report = reports.filter(baseline__model_version_id=baseline).order_by("-computed_at", "-id").first()
        if report is not None:
            return report
    return None


def _latency(version: ModelVersion, report: ComparisonReport | None) -> tuple[float | None, str]:
    if report is not None:
        value = ((report.candidate.metrics or {}).get("efficiency") or {}).get("latency_p95_ms")
        if isinstance(value, int | float):
            return float(value), f"efficiency suite of evaluation #{report.candidate_id}"
    from training_app.models import VersionBenchmark

    bench = VersionBenchmark.objects.filter(version=version, p95_b1_ms__isnull=False).first()
    if bench is not None:
        return bench.p95_b1_ms, f"benchmark on {bench.hostname or bench.device}, batch 1"
    return None, ""


def gate_facts(version: ModelVersion) -> tuple[GateFacts, ComparisonReport | None]:
    report = gate_report(version)
    latency, source = _latency(version, report)
    facts = GateFacts(size_bytes=version.size_bytes or None, latency_p95_ms=latency, latency_source=source,
                      version_created_at=version.created_at)  # fmt: skip
    if report is not None:
        facts.summary = report.summary if isinstance(report.summary, dict) else {}
        facts.report_id = report.pk
        facts.baseline_label = str(report.baseline.model_version)
        facts.candidate_finished_at = report.candidate.finished_at
        facts.baseline_finished_at = report.baseline.finished_at
        facts.report_computed_at = report.computed_at
    return facts, report


def promotions():
    """Every request, pending first, then newest first."""
    return PromotionRequest.objects.select_related(
        "version__model", "requested_by", "decided_by", "report"
    ).order_by(ExpressionWrapper(Q(status=RequestStatus.PENDING), output_field=BooleanField()).desc(),
               "-requested_at", "-id")  # fmt: skip


def production_history(model: RegisteredModel):
    return AliasChange.objects.filter(model=model).select_related("version", "previous", "actor", "request")


def previous_production(model: RegisteredModel) -> ModelVersion | None:
    current = production_of(model)
    changes = list(
        AliasChange.objects.filter(model=model, alias=Alias.PRODUCTION).select_related("version", "previous")
    )
    rolled_back = {c.previous_id for c in changes if c.reason == "rollback" and c.previous_id}
    seen = set()
    for change in changes:  # newest first
        for candidate in (change.version, change.previous):
            if candidate is None or candidate.pk in seen:
                continue
            seen.add(candidate.pk)
            if (current is None or candidate.pk != current.pk) and candidate.pk not in rolled_back:
                return candidate
    return None


def family_evaluations(model: RegisteredModel) -> tuple[list[EvalRun], list[ComparisonReport]]:
    runs = EvalRun.objects.filter(model_version__model=model).select_related("model_version").order_by("-pk")
    reports = ComparisonReport.objects.filter(
        Q(candidate__model_version__model=model) | Q(baseline__model_version__model=model)
    ).select_related("candidate__model_version", "baseline__model_version")
    return list(runs[:100]), list(reports.order_by("-created_at", "-id")[:100])


def drift(model: RegisteredModel, versions: list[ModelVersion], days: int = DRIFT_DAYS) -> dict:
    """{"days": [date, ...], "rows": [{"version", "counts": [...], "total"}]} for versions with any case."""
    from datasets_app.models import ErrorCase

    today = timezone.localdate()
    dates = [today - timedelta(days=days - 1 - i) for i in range(days)]
    ids = {v.openai_id: v for v in versions}
    counts = (
        ErrorCase.objects.filter(model_version__in=list(ids), created_at__date__gte=dates[0])
        .annotate(day=TruncDate("created_at"))
        .values("model_version", "day")
        .annotate(n=Count("id"))
    )
    per = {}
    for row in counts:
        per.setdefault(row["model_version"], {})[row["day"]] = row["n"]
    rows = []
    for openai_id, by_day in per.items():
        series = [by_day.get(d, 0) for d in dates]
        rows.append({"version": ids[openai_id], "counts": series, "total": sum(series), "peak": max(series)})
    rows.sort(key=lambda r: -r["version"].number)
    return {"days": dates, "rows": rows}


def lineage_tree(versions: list[ModelVersion]) -> list[dict]:
    """The family's versions as a depth-first tree (base → fine-tunes and compressions), each row with its depth,
    dataset version and the job that made it (what the model card draws as a nested tree)."""
    from datasets_app.models import DatasetVersion

    by_pk = {v.pk: v for v in versions}
    children: dict[int | None, list[ModelVersion]] = {}
    for v in versions:
        children.setdefault(v.base_id if v.base_id in by_pk else None, []).append(v)
    dataset_ids = {v.lineage.get("dataset_version") for v in versions if isinstance(v.lineage, dict)}
    datasets = DatasetVersion.objects.select_related("dataset").in_bulk(
        [i for i in dataset_ids if isinstance(i, int)]
    )
    rows, stack = [], [(v, 0) for v in reversed(children.get(None, []))]
    while stack:
        version, depth = stack.pop()
        lineage = version.lineage if isinstance(version.lineage, dict) else {}
        job = lineage.get("job") if isinstance(lineage.get("job"), int) else None
        rows.append({"version": version, "depth": depth, "indent": depth * 1.5,
                     "dataset_version": datasets.get(lineage.get("dataset_version")), "job": job,
                     "job_kind": {"fine_tune": "fine-tune", "compression": "compression"}.get(version.source)})  # fmt: skip
        stack.extend((child, depth + 1) for child in reversed(children.get(version.pk, [])))
    return rows
