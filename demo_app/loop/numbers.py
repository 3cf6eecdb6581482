"""The run's final numbers, read from its comparison report.

Held-out error cases: the report's task examples (the version's test split, all from error cases) that the
baseline got wrong, restricted to the categories the train split holds (for the router, a category is the
intent). Fixed: those the candidate gets right. Newly broken: right before, wrong now. Forgetting: the report's own
check on the general pack (a drop beyond its threshold is flagged).
"""

from datasets_app.models import DatasetExample, DatasetVersion
from evaluation_app.models import CaseOutcome, ComparisonReport, Pack

SHOWN = 10  # fixed cases listed on the page and in the command's output


def _share(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def report_numbers(report: ComparisonReport, version: DatasetVersion) -> dict:
    trained = set(
        DatasetExample.objects.filter(version=version, split="train").values_list("category", flat=True)
    )
    items = list(
        report.items.filter(pack=Pack.TASK)
        .select_related("baseline", "candidate")
        .order_by("baseline__position")
    )
    errors = [i for i in items if i.case_outcome in (CaseOutcome.FIXED, CaseOutcome.STILL_WRONG)
              and i.category in trained]  # fmt: skip
    fixed = [i for i in errors if i.case_outcome == CaseOutcome.FIXED]
    forgetting = (report.summary or {}).get("forgetting", {})
    return {
        "held_out": len(items),
        "errors": len(errors),
        "fixed": len(fixed),
        "fixed_pct": _share(len(fixed), len(errors)),
        "newly_broken": sum(1 for i in items if i.case_outcome == CaseOutcome.NEWLY_BROKEN),
        "baseline_accuracy": _share(sum(1 for i in items if i.baseline.correct), len(items)),
        "candidate_accuracy": _share(sum(1 for i in items if i.candidate.correct), len(items)),
        "forgetting_checked": bool(forgetting.get("checked")),
        "forgetting_flagged": bool(forgetting.get("flagged")),
        "general_baseline": forgetting.get("baseline"),
        "general_candidate": forgetting.get("candidate"),
        "general_examples": forgetting.get("n", 0),
        "fixed_examples": [
            {
                "item": i.pk,
                "input": _input(i.baseline),
                "before": i.baseline.prediction[:200],
                "after": i.candidate.prediction[:200],
                "expected": i.baseline.reference[:200],
            }
            for i in fixed[:SHOWN]
        ],  # fmt: skip
    }


def _input(result) -> str:
    prompt = result.prompt
    if isinstance(prompt, dict):  # a classifier's input
        return str(prompt.get("text", ""))[:200]
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return (users[-1] if users else "")[:200]
    return str(prompt or "")[:200]


def numbers_text(numbers: dict) -> str:
    fixed = f"{numbers['fixed']} of {numbers['errors']} held-out error cases fixed"
    if numbers["fixed_pct"] is not None:
        fixed += f" ({numbers['fixed_pct']:g}%)"
    forgetting = (
        "forgetting FLAGGED on the general pack"
        if numbers["forgetting_flagged"]
        else "no forgetting flag"
        if numbers["forgetting_checked"]
        else "forgetting not checked (no general pack for this task)"
    )
    return (
        f"{fixed}; {numbers['newly_broken']} newly broken; accuracy on the test split "
        f"{numbers['baseline_accuracy']}% -> {numbers['candidate_accuracy']}%; {forgetting}"
    )
