"""Reads behind the evaluation pages and exports: a run's metrics as tables, the judge's agreement with people,
a report's per-example list under filters, and the regression matrix (approved cases × model versions).

Every metrics key is optional (the worker writes only the suites it ran), so each table is built from what is
there. The report's tag filter is matched in Python over the candidate's results (tags are a JSON list; SQLite,
the local `make run` database, has no JSON containment lookup), then applied as an id filter.
"""

from django.core.paginator import Paginator
from django.db.models import Case, Max, QuerySet, When

from evaluation_app.models import (
    CaseOutcome,
    ComparisonItem,
    ComparisonReport,
    EvalResult,
    EvalRun,
    Outcome,
    Pack,
)
from evaluation_app.services.examples import regression_cases
from llmops.jobs import JobStatus

RESULTS_PER_PAGE = 50
ITEMS_PER_PAGE = 100
PREVIEW_CHARS = 140
KEY_METRICS = ("accuracy", "macro_f1", "mean_score", "exact_match", "rougeL")
TASK_SCALARS = ("accuracy", "macro_f1", "micro_f1", "auc_roc_ovr", "exact_match", "bleu", "chrf", "rouge1",
                "rouge2", "rougeL", "perplexity", "mean_score", "n")  # fmt: skip
GOOD_JUDGE_SCORE = 4  # a correctness verdict of 4 or 5 (of 5) counts as "good" against the human label


def runs_for_list() -> QuerySet:
    return EvalRun.objects.select_related("model_version__model", "dataset_version__dataset").order_by("-pk")


def reports_for_list() -> QuerySet:
    return ComparisonReport.objects.select_related(
        "baseline__model_version__model", "candidate__model_version__model"
    )


def key_metric(run: EvalRun) -> tuple[str, float] | None:
    task = (run.metrics or {}).get("task") or {}
    for name in KEY_METRICS:
        if isinstance(task.get(name), int | float):
            return name, task[name]
    return None


def _scalars(block: dict, names=None) -> list[tuple[str, object]]:
    names = names or sorted(block)
    return [(n, block[n]) for n in names if isinstance(block.get(n), int | float | str) and n in block]


def run_sections(run: EvalRun) -> dict:
    """The run's metrics as rows the template loops over; a missing suite is an empty section."""
    metrics = run.metrics or {}
    task = metrics.get("task") or {}
    confusion = task.get("confusion") or {}
    per_label = task.get("per_label") or {}
    rules = metrics.get("rules") or {}
    judge = metrics.get("judge") or {}
    general = metrics.get("general") or {}
    judge_rows = [{"rubric": r, **v} for r, v in sorted(judge.items()) if isinstance(v, dict)]
    return {
        "task": _scalars(task, TASK_SCALARS),
        "confusion": {
            "labels": confusion.get("labels") or [],
            "rows": list(zip(confusion.get("labels") or [], confusion.get("matrix") or [], strict=False)),
        }
        if confusion
        else None,  # fmt: skip
        "per_label": [{"label": k, **v} for k, v in sorted(per_label.items()) if isinstance(v, dict)],
        "rules": rules.get("per_rule") or [],
        "rules_all": rules.get("all_pass_rate"),
        "judge": judge_rows,
        "judge_errors": metrics.get("judge_errors", sum(int(r.get("errors") or 0) for r in judge_rows)),
        "judge_cost": sum(float(r.get("cost") or 0) for r in judge_rows),
        "pairwise": _scalars(metrics.get("pairwise") or {}),
        "rag": _scalars(metrics.get("rag") or {}),
        "robustness": _scalars(metrics.get("robustness") or {}, ("clean", "noisy", "drop")),
        "efficiency": _scalars(metrics.get("efficiency") or {}),
        "general": _scalars(general, ("score", "n")),
        "general_by_category": sorted((general.get("by_category") or {}).items()),
    }


def _judged_good(result: EvalResult) -> bool | None:
    verdict = (result.judge or {}).get("correctness")
    score = verdict.get("score") if isinstance(verdict, dict) else None
    return None if not isinstance(score, int | float) else score >= GOOD_JUDGE_SCORE


def judge_agreement(run: EvalRun) -> dict | None:
    """Cohen's κ between the judge's correctness verdict (score ≥ 4 → good) and the people's good/bad labels."""
    judge_says, people_say = [], []
    for result in run.results.exclude(human_label="").only("judge", "human_label"):
        good = _judged_good(result)
        if good is not None:
            judge_says.append("good" if good else "bad")
            people_say.append(result.human_label)
    if not people_say:
        return None
    from workers.evaluate.stats import cohen_kappa

    agree = sum(a == b for a, b in zip(judge_says, people_say, strict=True))
    return {"n": len(people_say), "kappa": cohen_kappa(judge_says, people_say), "agree": agree}


def leaked_examples(run: EvalRun) -> list[dict]:
    return list((run.leakage or {}).get("examples") or [])


def result_page(run: EvalRun, number) -> object:
    results = run.results.only(
        "pk", "run_id", "pack", "position", "category", "prediction", "score", "correct", "leaked", "case_id"
    )
    return Paginator(results, RESULTS_PER_PAGE).get_page(number)


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def saliency_tokens(result: EvalResult) -> list[dict]:
    """Tokens with a background whose intensity is |score| / max |score| and whose colour is the sign."""
    pairs = [p for p in result.saliency or [] if isinstance(p, list | tuple) and len(p) == 2]
    top = max((abs(float(s)) for _, s in pairs if isinstance(s, int | float)), default=0.0) or 1.0
    tokens = []
    for token, score in pairs:
        score = float(score) if isinstance(score, int | float) else 0.0
        alpha = round(abs(score) / top, 3)
        colour = "220,38,38" if score < 0 else "22,163,74"
        tokens.append({"text": str(token), "score": score, "style": f"background: rgba({colour},{alpha})"})
    return tokens


# ---- comparison reports ---------------------------------------------------------------------------------------

FILTER_CHOICES = {"outcome": set(Outcome.values), "case_outcome": set(CaseOutcome.values)}


def item_filters(params) -> dict[str, str]:
    """The list's filters from a query string; unknown values are dropped (never a 500)."""
    filters = {}
    for key, allowed in FILTER_CHOICES.items():
        if params.get(key) in allowed:
            filters[key] = params[key]
    for key in ("category", "tag", "pack"):
        if params.get(key):
            filters[key] = str(params[key])[:100]
    return filters


def report_items(report: ComparisonReport, filters: dict[str, str]) -> QuerySet:
    task_first = Case(When(pack=Pack.TASK, then=0), default=1)
    items = report.items.select_related("baseline", "candidate").order_by(
        task_first, "pack", "baseline__position"
    )
    for key in ("outcome", "case_outcome", "category", "pack"):
        if key in filters:
            items = items.filter(**{key: filters[key]})
    if "tag" in filters:
        tagged = [pk for pk, tags in EvalResult.objects.filter(run=report.candidate_id).values_list("pk", "tags")
                  if isinstance(tags, list) and filters["tag"] in tags]  # fmt: skip
        items = items.filter(candidate_id__in=tagged)
    return items


def item_page(report: ComparisonReport, filters: dict[str, str], number) -> object:
    return Paginator(report_items(report, filters), ITEMS_PER_PAGE).get_page(number)


def report_facets(report: ComparisonReport) -> dict:
    categories = sorted(c for c in report.items.values_list("category", flat=True).distinct() if c)
    summary = report.summary or {}
    tags = sorted({row.get("name") for row in summary.get("by_tag") or [] if row.get("name")})
    return {"outcomes": Outcome.choices, "case_outcomes": CaseOutcome.choices, "categories": categories,
            "tags": tags}  # fmt: skip


def report_item(report: ComparisonReport, item_pk: int) -> ComparisonItem:
    return report.items.select_related("baseline__case", "candidate").get(pk=item_pk)


# ---- regression suite -----------------------------------------------------------------------------------------


def regression_matrix(product: str) -> dict:
    """Rows: the product's approved cases; columns: model versions with results on them (succeeded runs); cells:
    the latest result per (case, version) as pass / fail, or None where the version never ran the case."""
    cases = list(regression_cases(product))
    latest = (
        EvalResult.objects.filter(case__in=cases, run__status=JobStatus.SUCCEEDED)
        .values("case_id", "run__model_version_id")
        .annotate(last=Max("pk"))
    )
    last_ids = [row["last"] for row in latest]
    outcome = {
        (r.case_id, r.run.model_version_id): r.correct
        for r in EvalResult.objects.filter(pk__in=last_ids).select_related("run")
    }
    version_ids = sorted({v for _, v in outcome})
    from registry_app.models import ModelVersion

    versions = list(ModelVersion.objects.filter(pk__in=version_ids).select_related("model"))
    versions.sort(key=lambda v: (v.model.name, v.number))
    rows = [{"case": case, "cells": [outcome.get((case.pk, v.pk)) for v in versions]} for case in cases]
    passed = [sum(1 for row in rows if row["cells"][i] is True) for i in range(len(versions))]
    ran = [sum(1 for row in rows if row["cells"][i] is not None) for i in range(len(versions))]
    columns = [{"version": v, "passed": p, "ran": r} for v, p, r in zip(versions, passed, ran, strict=True)]
    return {"rows": rows, "columns": columns}


def regression_products() -> list[str]:
    return sorted(
        p for p in regression_cases("").order_by().values_list("product", flat=True).distinct() if p
    )
