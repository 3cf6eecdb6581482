"""Triage mode: one case at a time from the filtered list, with keyboard shortcuts (static/js/triage.js)."""

from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from datasets_app import selectors
from datasets_app.forms import filters_from
from datasets_app.models import ErrorCase
from datasets_app.views.panels import filters_or_warn, triage_context
from llmops.roles import role_required


def _render(request, case, filters):
    template = "datasets_app/triage.html" + ("#triage-panel" if request.htmx else "")
    return render(request, template, triage_context(request, case, filters))


@role_required("cases.view")
@require_GET
def triage_start(request):
    filters = filters_or_warn(request)
    first = None if request.GET.get("done") else next(iter(selectors.case_page(filters, limit=1).cases), None)
    return _render(request, first, filters)


@role_required("cases.view")
@require_GET
def triage_case(request, pk: int):
    case = get_object_or_404(ErrorCase, pk=pk, merged_into=None)
    return _render(request, case, filters_from(request.GET))
