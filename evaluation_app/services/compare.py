"""Comparison reports: a candidate run against a baseline run on the very same examples.

A report is created ``waiting``; once both runs have succeeded it is computed (at once when they already have, else
by the run hook ``reports_advance`` when the second one ends). Examples pair by content key; two runs whose key sets
differ are refused with the reason, never half-compared. The statistics are in ``report_stats``.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from evaluation_app.models import (
    ComparisonItem,
    ComparisonReport,
    EvalResult,
    EvalRun,
    Outcome,
    Pack,
    ReportStatus,
    Trigger,
)
from evaluation_app.services.report_stats import case_outcome_of, report_summary
from llmops.jobs import JobStatus

TIE = 1e-9
ENDED_BADLY = (JobStatus.FAILED, JobStatus.CANCELLED)


def comparison_create(
    *,
    user,
    baseline: EvalRun,
    candidate: EvalRun,
    name: str = "",
    forgetting_threshold: float | None = None,
    trigger: str = Trigger.MANUAL,
    source_job=None,
) -> ComparisonReport:
    problems = _comparable(baseline, candidate)
    threshold = settings.EVAL_FORGETTING_THRESHOLD if forgetting_threshold is None else forgetting_threshold
    if not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        problems.setdefault("forgetting_threshold", []).append("must be a number between 0 and 1")
    if problems:
        raise ValidationError(problems)
    both_done = baseline.status == candidate.status == JobStatus.SUCCEEDED
    if both_done and (reason := key_mismatch(baseline, candidate)):
        raise ValidationError({"candidate": [reason]})
    report = ComparisonReport.objects.create(
        name=name, baseline=baseline, candidate=candidate, forgetting_threshold=float(threshold),
        trigger=trigger, source_job=source_job, created_by=user,
    )  # fmt: skip
    return comparison_compute(report_id=report.pk) if both_done else report


def _comparable(baseline: EvalRun, candidate: EvalRun) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if baseline.pk == candidate.pk:
        problems["candidate"] = ["pick two different runs: a run compared with itself says nothing"]
    for field, run in (("baseline", baseline), ("candidate", candidate)):
        if run.status in ENDED_BADLY:
            problems.setdefault(field, []).append(f"{run} {run.status}; it has no results to compare")
    same_set = (baseline.dataset_version_id, baseline.split, baseline.product, baseline.limit) == (
        candidate.dataset_version_id, candidate.split, candidate.product, candidate.limit,
    )  # fmt: skip
    if not same_set:
        problems.setdefault("candidate", []).append(
            f"the runs score different example sets: {baseline.source_label} vs {candidate.source_label}"
            + (
                ""
                if baseline.limit == candidate.limit
                else f" (limits {baseline.limit} vs {candidate.limit})"
            )
        )
    return problems


def key_mismatch(baseline: EvalRun, candidate: EvalRun) -> str:
    """Why the two runs' task examples do not pair one to one ("" when they do)."""
    a = set(baseline.results.filter(pack=Pack.TASK).values_list("key", flat=True))
    b = set(candidate.results.filter(pack=Pack.TASK).values_list("key", flat=True))
    if a == b:
        return ""
    return (
        f"the runs score different example sets: {len(a - b)} example(s) only in the baseline, "
        f"{len(b - a)} only in the candidate (the examples changed between the runs, e.g. an edited case)"
    )


def reports_advance(*, run_id: int) -> list[int]:
    """A run ended: compute (or fail) every waiting report that uses it."""
    waiting = ComparisonReport.objects.filter(status=ReportStatus.WAITING)
    ids = list(waiting.filter(baseline_id=run_id).values_list("pk", flat=True))
    ids += list(waiting.filter(candidate_id=run_id).values_list("pk", flat=True))
    for report_id in ids:
        comparison_compute(report_id=report_id)
    return ids


@transaction.atomic
def comparison_compute(*, report_id: int) -> ComparisonReport:
    report = (
        ComparisonReport.objects.select_for_update().select_related("baseline", "candidate").get(pk=report_id)
    )
    baseline, candidate = report.baseline, report.candidate
    for run in (baseline, candidate):
        if run.status in ENDED_BADLY:
            return _close(report, ReportStatus.FAILED, f"{run} {run.status}: {run.error[:300]}".strip(": "))
    if not baseline.status == candidate.status == JobStatus.SUCCEEDED:
        return report
    if reason := key_mismatch(baseline, candidate):
        return _close(report, ReportStatus.REFUSED, reason)
    pairs = {pack: _pairs(baseline, candidate, pack) for pack in Pack.values}
    report.summary = report_summary(report, pairs)
    report.items.all().delete()
    ComparisonItem.objects.bulk_create(
        [_item(report, pack, b, c) for pack, rows in pairs.items() for b, c in rows], batch_size=1000
    )
    return _close(report, ReportStatus.READY, "")


def _close(report: ComparisonReport, status: str, reason: str) -> ComparisonReport:
    report.status, report.reason, report.computed_at = status, reason, timezone.now()
    report.save(update_fields=["status", "reason", "computed_at", "summary"])
    return report


def _pairs(baseline: EvalRun, candidate: EvalRun, pack: str) -> list[tuple[EvalResult, EvalResult]]:
    """(baseline result, candidate result) for every key both runs scored in ``pack``, in the baseline's order."""
    theirs = {r.key: r for r in candidate.results.filter(pack=pack)}
    return [
        (r, theirs[r.key]) for r in baseline.results.filter(pack=pack).order_by("position") if r.key in theirs
    ]


def outcome_of(baseline: EvalResult, candidate: EvalResult) -> tuple[str, float]:
    delta = (candidate.score or 0.0) - (baseline.score or 0.0)
    return (Outcome.WIN if delta > TIE else Outcome.LOSS if delta < -TIE else Outcome.TIE), delta


def _item(report: ComparisonReport, pack: str, b: EvalResult, c: EvalResult) -> ComparisonItem:
    outcome, delta = outcome_of(b, c)
    return ComparisonItem(report=report, pack=pack, key=b.key, baseline=b, candidate=c, outcome=outcome,
                          case_outcome=case_outcome_of(b, c), delta=delta, category=b.category)  # fmt: skip
