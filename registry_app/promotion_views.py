"""Promotion pages: a family's model card, the promotion request form (with a preview of the gate), the list and
the detail of requests (architects approve or reject there, with an override reason per failed gate item), the gate
policy form and the production rollback.

A pending request's page shows the gate evaluated now (production may have moved since the request), which is
exactly what approving checks; a decided request shows what was decided on. The decision forms post with HTMX and
come back as the ``decision`` partial when something is refused; pages work without script too.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from llmops.roles import has_perm, role_required
from registry_app import gate, selectors
from registry_app.models import Alias, ModelVersion, PromotionRequest, RegisteredModel, RequestStatus
from registry_app.promotion_forms import (
    ApproveForm,
    GatePolicyForm,
    PromotionRequestForm,
    RejectForm,
    add_service_errors,
    initial_policy,
)
from registry_app.services import promotion as services

AUDIT_ROWS = 50
ALIAS_ORDER = (Alias.PRODUCTION, Alias.STAGING, Alias.CANDIDATE, Alias.ARCHIVED)


def _go(request, url: str):
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _sparkline(counts: list[int]) -> str:
    """Bars of new error cases per day; numbers only, so the markup needs no escaping."""
    peak = max(counts) or 1
    bars = "".join(f'<rect x="{i * 5}" y="{24 - 22 * n / peak:.1f}" width="4" height="{22 * n / peak:.1f}" '
                   f'fill="#dc2626"><title>{n}</title></rect>' for i, n in enumerate(counts))  # fmt: skip
    return mark_safe(f'<svg width="{len(counts) * 5}" height="24" role="img" aria-label="new error cases per day">'
                     f'<line x1="0" y1="24" x2="{len(counts) * 5}" y2="24" stroke="#cbd5e1"/>{bars}</svg>')  # fmt: skip


def _card_context(request, model: RegisteredModel) -> dict:
    versions = list(model.versions.select_related("model", "base__model", "created_by").order_by("number"))
    runs, reports = selectors.family_evaluations(model)
    drift = selectors.drift(model, versions)
    for row in drift["rows"]:
        row["chart"] = _sparkline(row["counts"])
    items = selectors.gate_items(model)
    return {
        "model": model, "versions": versions, "tree": selectors.lineage_tree(versions),
        "aliases": [(a, [v for v in versions if v.alias == a]) for a in ALIAS_ORDER],
        "runs": runs, "reports": reports, "drift": drift,
        "policy": [(item, gate.shown(item, items[item.key])) for item in gate.ITEMS if item.key in items],
        "history": selectors.production_history(model)[:100],
        "audit": model.audit.select_related("actor", "version", "request")[:AUDIT_ROWS],
        "previous": selectors.previous_production(model), "production": selectors.production_of(model),
        "open_requests": selectors.promotions().filter(version__model=model, status=RequestStatus.PENDING),
        "can_gate": has_perm(request.user, "registry.gate"),
        "can_rollback": has_perm(request.user, "registry.rollback"),
    }  # fmt: skip


@role_required("registry.view")
@require_GET
def family_card(request, name: str):
    model = get_object_or_404(RegisteredModel, name=name)
    return render(request, "registry/family.html", _card_context(request, model))


@role_required("registry.rollback")
@require_POST
def production_rollback_view(request, name: str):
    model = get_object_or_404(RegisteredModel, name=name)
    if request.POST.get("confirm") != "yes":
        messages.error(request, "Tick the confirmation to roll production back.")
        return _go(request, reverse("registry:family", kwargs={"name": model.name}))
    try:
        version = services.production_rollback(user=request.user, model=model,
                                               comment=request.POST.get("comment", "")[:2000])  # fmt: skip
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Production of {model.name} is back on v{version.number}.")
    return _go(request, reverse("registry:family", kwargs={"name": model.name}))


@role_required("registry.gate")
@require_http_methods(["GET", "POST"])
def gate_edit(request, name: str):
    model = get_object_or_404(RegisteredModel, name=name)
    form = GatePolicyForm(request.POST or None, initial=initial_policy(selectors.gate_items(model)))
    if request.method == "POST" and form.is_valid():
        try:
            services.gate_policy_update(user=request.user, model=model, items=form.items())
        except ValidationError as exc:
            add_service_errors(form, exc.message_dict)
        else:
            messages.success(request, f"The gate policy of {model.name} is saved.")
            return redirect("registry:family", name=model.name)
    status = 400 if request.method == "POST" else 200
    return render(request, "registry/gate_form.html", {"model": model, "form": form}, status=status)


@role_required("registry.promote")
@require_http_methods(["GET", "POST"])
def promotion_new(request, version_id: int):
    version = get_object_or_404(ModelVersion.objects.select_related("model"), pk=version_id)
    form = PromotionRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            promotion = services.promotion_request_create(
                user=request.user, version=version, **form.cleaned_data
            )
        except ValidationError as exc:
            add_service_errors(form, exc.message_dict)
        else:
            messages.success(request, f"Promotion request #{promotion.pk} is waiting for an architect.")
            return redirect("registry:promotion", pk=promotion.pk)
    rows, report = services.gate_check(version)
    status = 400 if request.method == "POST" else 200
    return render(request, "registry/promotion_form.html",
                  {"version": version, "form": form, "rows": rows, "report": report,
                   "production": selectors.production_of(version.model)}, status=status)  # fmt: skip


@role_required("registry.view")
@require_GET
def promotion_list(request):
    status = request.GET.get("status", "")
    requests = selectors.promotions()
    if status in RequestStatus.values:
        requests = requests.filter(status=status)
    return render(request, "registry/promotion_list.html",
                  {"requests": requests[:200], "status": status, "statuses": RequestStatus.choices})  # fmt: skip


def _detail_context(request, promotion: PromotionRequest, approve=None, reject=None) -> dict:
    if promotion.is_open:
        rows, report = services.gate_check(promotion.version)
    else:
        rows, report = promotion.gate, promotion.report
    failed = gate.failed(rows)
    can_decide = (promotion.is_open and has_perm(request.user, "registry.approve")
                  and promotion.requested_by_id != request.user.pk)  # fmt: skip
    return {"promotion": promotion, "rows": rows, "report": report, "failed": failed,
            "can_decide": can_decide, "is_requester": promotion.requested_by_id == request.user.pk,
            "approve_form": approve or ApproveForm(failed=failed), "reject_form": reject or RejectForm(),
            "audit": promotion.audit.select_related("actor")}  # fmt: skip


def _promotion(pk: int) -> PromotionRequest:
    return get_object_or_404(selectors.promotions(), pk=pk)


@role_required("registry.view")
@require_GET
def promotion_detail(request, pk: int):
    promotion = _promotion(pk)
    return render(request, "registry/promotion_detail.html", _detail_context(request, promotion))


def _refused(request, promotion, **forms):
    template = "registry/promotion_detail.html" + ("#decision" if request.htmx else "")
    return render(request, template, _detail_context(request, promotion, **forms), status=400)


@role_required("registry.approve")
@require_POST
def promotion_approve_view(request, pk: int):
    promotion = _promotion(pk)
    rows, _ = services.gate_check(promotion.version)
    form = ApproveForm(request.POST, failed=gate.failed(rows))
    if not form.is_valid():
        return _refused(request, promotion, approve=form)
    try:
        services.promotion_approve(user=request.user, request=promotion, comment=form.cleaned_data["comment"],
                                   overrides=form.overrides())  # fmt: skip
    except ValidationError as exc:
        add_service_errors(form, exc.message_dict)
        return _refused(request, promotion, approve=form)
    messages.success(request, f"Approved: {promotion.version} is now {promotion.target}.")
    return _go(request, reverse("registry:promotion", kwargs={"pk": pk}))


@role_required("registry.approve")
@require_POST
def promotion_reject_view(request, pk: int):
    promotion = _promotion(pk)
    form = RejectForm(request.POST)
    if not form.is_valid():
        return _refused(request, promotion, reject=form)
    try:
        services.promotion_reject(user=request.user, request=promotion, comment=form.cleaned_data["comment"])
    except ValidationError as exc:
        add_service_errors(form, exc.message_dict)
        return _refused(request, promotion, reject=form)
    messages.success(request, f"Rejected promotion request #{promotion.pk}.")
    return _go(request, reverse("registry:promotion", kwargs={"pk": pk}))


@role_required("registry.promote")
@require_POST
def promotion_withdraw_view(request, pk: int):
    promotion = _promotion(pk)
    try:
        services.promotion_withdraw(user=request.user, request=promotion)
    except (ValidationError, PermissionDenied) as exc:  # the button is only shown to the requester
        messages.error(request, " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc))
    else:
        messages.success(request, f"Withdrew promotion request #{promotion.pk}.")
    return _go(request, reverse("registry:promotion", kwargs={"pk": pk}))
