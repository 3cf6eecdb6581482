"""The curation dashboard: funnel, new cases per category (chart), top tags, open cases per assignee."""

from django.shortcuts import render
from django.views.decorators.http import require_GET

from datasets_app import selectors
from llmops.roles import role_required


def _bars(rows: list[tuple[str, int]]) -> list[dict]:
    """Rows with their share of the largest value, for CSS bars."""
    top = max((n for _, n in rows), default=0) or 1
    return [{"label": label, "n": n, "pct": round(100 * n / top, 1)} for label, n in rows]


@role_required("cases.view")
@require_GET
def dashboard(request):
    funnel = selectors.funnel()
    context = {
        "funnel": _bars(funnel),
        "chart": selectors.new_cases_per_tag(),
        "top_tags": _bars(selectors.top_tags()),
        "assignees": _bars(selectors.open_cases_per_assignee()),
        "counts": selectors.status_counts(),
    }
    return render(request, "datasets_app/dashboard.html", context)
