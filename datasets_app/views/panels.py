"""What the case page and triage mode render: their context, and the answer after an action (panel or redirect)."""

import json

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django_htmx.http import push_url

from datasets_app import selectors
from datasets_app.diff import diff_html
from datasets_app.forms import CaseEditForm, CaseTagsForm, CommentForm, filters_from, filters_query
from datasets_app.models import CaseStatus, ErrorCase
from datasets_app.selectors import CaseFilters
from llmops.roles import has_perm

TRIAGE_MOVES = (CaseStatus.NEW, CaseStatus.TRIAGED, CaseStatus.CORRECTED)
VALUE_CHARS = 80


def permissions(user) -> dict[str, bool]:
    return {p: has_perm(user, f"cases.{p}") for p in ("edit", "approve", "delete", "comment")}


def _shown(value) -> str:
    if value in (None, "", [], {}):
        return "—"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    text = str(value)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def history(case: ErrorCase) -> list:
    events = list(case.events.select_related("actor"))
    for event in events:
        event.rows = [
            (field, _shown(old), _shown(new)) for field, (old, new) in (event.changes or {}).items()
        ]
    return events


def case_context(request, case: ErrorCase, **extra) -> dict:
    case = (
        ErrorCase.objects.select_related("assignee", "created_by", "updated_by", "merged_into")
        .prefetch_related("tags")
        .get(pk=case.pk)
    )
    left, right = diff_html(case.bad_output, case.expected_output)
    can = permissions(request.user)
    context = {
        "case": case,
        "diff_left": left,
        "diff_right": right,
        "edit_form": CaseEditForm.for_case(case),
        "tags_form": CaseTagsForm.for_case(case),
        "comment_form": CommentForm(),
        "can": can,
        "moves": [s for s in TRIAGE_MOVES if case.can_move_to(s)] if can["edit"] else [],
        "may_approve": case.can_move_to(CaseStatus.APPROVED),
        "may_reject": case.can_move_to(CaseStatus.REJECTED),
        "metadata_json": json.dumps(case.metadata, ensure_ascii=False, indent=2, sort_keys=True),
        "problem": "",
        "panel": "#case-body",
        "action_query": "",
        "triage": False,
    }
    context.update({k: v for k, v in extra.items() if v is not None})
    return context


def detail_context(request, case: ErrorCase, **extra) -> dict:
    context = case_context(request, case, **extra)
    case = context["case"]
    context.update(
        events=history(case),
        comments=case.comments.select_related("author"),
        similar=list(selectors.similar_cases(case).only("pk", "messages", "status", "bad_output")[:20]),
    )
    return context


def filters_or_warn(request) -> CaseFilters:
    """The list filters of the query string; a bad value is dropped and shown as a warning."""
    problems: list[str] = []
    filters = filters_from(request.GET, problems)
    for problem in problems:
        messages.warning(request, problem)
    return filters


def triage_url(case: ErrorCase | None, filters: CaseFilters) -> str:
    """A case in triage mode, or (None) the end of the list."""
    if case is None:
        return f"{reverse('cases:triage')}?{filters_query(filters, done='1')}"
    query = filters_query(filters)
    url = reverse("cases:triage-case", args=[case.pk])
    return f"{url}?{query}" if query else url


def triage_context(request, case: ErrorCase | None, filters: CaseFilters, **extra) -> dict:
    query = filters_query(filters)
    context = {"filters": filters, "fq": query, "case": None}
    if case is None:
        return {**context, "problem": extra.get("problem", "")}
    previous_id, next_id = selectors.neighbours(case, filters)
    return {
        **context,
        **case_context(request, case, **extra),
        "previous_id": previous_id,
        "next_id": next_id,
        "panel": "#triage-panel",
        "action_query": f"?{query}" if query else "",
        "triage": True,
    }


def next_case(case: ErrorCase, filters: CaseFilters) -> ErrorCase | None:
    _, next_id = selectors.neighbours(case, filters)
    return ErrorCase.objects.filter(pk=next_id).first() if next_id else None


def respond(request, case: ErrorCase, *, advance: bool = False, status: int = 200, **extra):
    """The answer to an action on one case, from the case page or from triage mode (a `triage` field).

    Success without JS redirects (POST/redirect/GET); with HTMX it renders the panel: in triage mode the next case
    when `advance`. A refusal renders the panel (or the page) with the problem and the given status.
    """
    triage = bool(request.POST.get("triage"))
    filters = filters_from(request.GET)
    if triage and advance and status == 200:
        case = next_case(case, filters)
    if status == 200 and not request.htmx:
        return redirect(triage_url(case, filters) if triage else reverse("cases:detail", args=[case.pk]))
    if triage:
        template = "datasets_app/triage.html" + ("#triage-panel" if request.htmx else "")
        response = render(request, template, triage_context(request, case, filters, **extra), status=status)
        if request.htmx and status == 200:
            push_url(response, triage_url(case, filters))
        return response
    template = "datasets_app/case_detail.html" + ("#case-body" if request.htmx else "")
    return render(request, template, detail_context(request, case, **extra), status=status)
