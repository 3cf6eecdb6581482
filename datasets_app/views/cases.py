"""The error notebook's list: filters, keyset pages, bulk actions, merge; and the form for a new case."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import push_url

from datasets_app import selectors
from datasets_app.forms import (
    BULK_STATUSES,
    BulkForm,
    CaseCreateForm,
    bulk_permission,
    filters_from,
    filters_query,
    int_or_none,
)
from datasets_app.models import CaseStatus, ErrorCase, Severity, Source, Tag
from datasets_app.services import cases as services
from datasets_app.services.cases import BulkResult, DuplicateCase, problem_text
from datasets_app.views.panels import filters_or_warn, permissions
from llmops.roles import has_perm, role_required

SKIP_REASONS_SHOWN = 5


def _list_context(request, filters, after: int | None = None) -> dict:
    page = selectors.case_page(filters, after=after)
    counts = selectors.status_counts()
    return {
        "page": page,
        "filters": filters,
        "fq": filters_query(filters),
        "counts": counts,
        "total": sum(counts.values()),
        "status_chips": [(s, counts[s]) for s in CaseStatus.values],
        "bulk_statuses": BULK_STATUSES,
        "severities": Severity.values,
        "sources": Source.choices,
        "tags": Tag.objects.filter(is_active=True),
        "users": _users(),
        "products": _products(),
        "can": permissions(request.user),
    }


def _users() -> QuerySet:
    return get_user_model().objects.filter(is_active=True).order_by("username")


def _products() -> list[str]:
    return selectors.case_products(limit=200)


def _list_url(filters) -> str:
    query = filters_query(filters)
    return f"{reverse('cases:list')}?{query}" if query else reverse("cases:list")


def _table(request, filters, status: int = 200):
    """After a bulk action or a merge: the refreshed table (HTMX) or back to the list (no JS)."""
    if not request.htmx:
        return redirect(_list_url(filters))
    context = _list_context(request, filters)
    return render(request, "datasets_app/case_list.html#case-table", context, status=status)


@role_required("cases.view")
@require_GET
def case_list(request):
    filters = filters_or_warn(request)
    after = int_or_none(request.GET.get("after"))
    context = _list_context(request, filters, after)
    if not request.htmx:
        return render(request, "datasets_app/case_list.html", context)
    if after:
        return render(request, "datasets_app/case_list.html#case-rows", context)
    response = render(request, "datasets_app/case_list.html#case-table", context)
    return push_url(response, _list_url(filters))  # the address bar shows only the filters in use


def _bulk_summary(result: BulkResult) -> str:
    text = f"{len(result.done)} done, {len(result.skipped)} skipped"
    reasons = [f"#{pk}: {why}" for pk, why in list(result.skipped.items())[:SKIP_REASONS_SHOWN]]
    more = len(result.skipped) - SKIP_REASONS_SHOWN
    return text + (
        " (" + "; ".join(reasons) + (f"; and {more} more" if more > 0 else "") + ")" if reasons else ""
    )


@role_required("cases.view")
@require_POST
def case_bulk(request):
    filters = filters_from(request.GET)
    needed = bulk_permission(request.POST.get("action", ""), request.POST.get("status", ""))
    if not has_perm(request.user, needed):
        raise PermissionDenied(f"your roles do not include the permission {needed}")
    form = BulkForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
        return _table(request, filters, status=400)
    result = services.cases_bulk_action(
        ids=form.cleaned_data["ids"], user=request.user, **form.service_arguments()
    )
    (messages.success if not result.skipped else messages.warning)(request, _bulk_summary(result))
    return _table(request, filters)


@role_required("cases.edit")
@require_POST
def case_merge(request):
    filters = filters_from(request.GET)
    ids = sorted({int(v) for v in request.POST.getlist("ids") if v.isdigit()})
    if len(ids) < 2:
        messages.error(request, "cases: select at least two cases to merge")
        return _table(request, filters, status=400)
    try:
        primary = services.cases_merge(primary_id=ids[0], other_ids=ids[1:], user=request.user)
    except (ValidationError, ErrorCase.DoesNotExist) as exc:
        messages.error(request, problem_text(exc))
        return _table(request, filters, status=400)
    others = ", ".join(f"#{pk}" for pk in ids[1:])
    messages.success(request, f"Merged {others} into case #{primary.pk}; their history is kept.")
    return _table(request, filters)


@role_required("cases.edit")
@require_http_methods(["GET", "POST"])
def case_create(request):
    form = CaseCreateForm(request.POST or None)
    duplicate_of = None
    if request.method == "POST" and form.is_valid():
        try:
            case = services.case_create(user=request.user, source="manual", **form.service_arguments())
        except DuplicateCase as exc:
            duplicate_of = exc.existing_id
            form.add_error(None, f"An identical case already exists: #{exc.existing_id}.")
        except ValidationError as exc:
            form.add_error(None, problem_text(exc))
        else:
            messages.success(request, f"Case #{case.pk} created.")
            return redirect("cases:detail", pk=case.pk)
    status = 400 if form.errors else 200
    context = {"form": form, "duplicate_of": duplicate_of}
    return render(request, "datasets_app/case_form.html", context, status=status)
