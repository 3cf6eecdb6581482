"""Deployment pages: the list, the create/edit form (family first, then a formset of variants) and the A/B
dashboard of one deployment: its split, the per-variant numbers and significance tests (registry_app.experiments),
requests per day as inline SVG, and two actions — promote a candidate through the gate, stop the experiment.
The numbers refresh through HTMX every 10 s; the "Refresh" link does the same without script."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from llmops.roles import has_perm, role_required
from registry_app.experiments import (
    LATENCY_SAMPLE,
    MIN_FEEDBACK,
    MIN_REQUESTS,
    daily_chart,
    deployment_stats,
    production_version,
    window_days,
)
from registry_app.models import (
    Deployment,
    DeploymentVariant,
    PromotionRequest,
    RegisteredModel,
    RequestStatus,
)
from registry_app.services.deployments import (
    deployment_create,
    deployment_stop,
    deployment_update,
    experiment_promote_winner,
)
from registry_app.serving_forms import (
    DeploymentForm,
    FamilyForm,
    add_variant_errors,
    default_split,
    formset_variants,
    variant_formset,
    variants_initial,
)


def _deployments():
    variants = DeploymentVariant.objects.select_related("version__model")
    return Deployment.objects.select_related("model").prefetch_related(
        Prefetch("variants", queryset=variants)
    )


@role_required("serving.view")
@require_GET
def deployment_list(request):
    deployments = list(_deployments().order_by("name"))
    for d in deployments:
        total = sum(v.weight for v in d.variants.all()) or 1
        d.split = [(v, 100 * v.weight / total) for v in d.variants.all()]
        d.production = production_version(d)
    return render(request, "registry/deployment_list.html",
                  {"deployments": deployments, "can_manage": has_perm(request.user, "serving.manage")})  # fmt: skip


def _save(request, model: RegisteredModel, deployment: Deployment | None, form, formset):
    """Call the service; on failure put its problems beside the fields and return None."""
    variants, used = formset_variants(formset, model)
    try:
        if deployment is None:
            return deployment_create(user=request.user, model=model, name=form.cleaned_data["name"],
                                     variants=variants)  # fmt: skip
        return deployment_update(user=request.user, deployment=deployment, variants=variants)
    except ValidationError as exc:
        form.add_service_errors(exc.message_dict)
        formset.split_problems = add_variant_errors(formset, used, exc.message_dict)
        return None


def _form_page(request, model, deployment, form, formset):
    status = 400 if request.method == "POST" else 200
    return render(request, "registry/deployment_form.html",
                  {"model": model, "deployment": deployment, "form": form, "variants": formset,
                   "split_problems": getattr(formset, "split_problems", [])}, status=status)  # fmt: skip


@role_required("serving.manage")
@require_http_methods(["GET", "POST"])
def deployment_new(request):
    family = FamilyForm(request.POST or request.GET or None)
    if not family.is_valid():
        status = 400 if request.method == "POST" else 200
        return render(request, "registry/deployment_form.html", {"family": family}, status=status)
    model = family.cleaned_data["model"]
    form = DeploymentForm(request.POST or None, initial={"name": model.name})
    formset = variant_formset(model, request.POST or None, initial=default_split(model))
    posted = request.method == "POST" and form.is_valid() and formset.is_valid()
    if posted and (deployment := _save(request, model, None, form, formset)):
        messages.success(request, f"Deployment {deployment.name} is running.")
        return redirect("registry:deployment", name=deployment.name)
    return _form_page(request, model, None, form, formset)


@role_required("serving.manage")
@require_http_methods(["GET", "POST"])
def deployment_edit(request, name: str):
    deployment = get_object_or_404(_deployments(), name=name)
    form = DeploymentForm(request.POST or None, initial={"name": deployment.name})
    formset = variant_formset(deployment.model, request.POST or None, initial=variants_initial(deployment))
    posted = request.method == "POST" and form.is_valid() and formset.is_valid()
    if posted and _save(request, deployment.model, deployment, form, formset):
        messages.success(request, f"The split of {deployment.name} is saved; the experiment runs.")
        return redirect("registry:deployment", name=deployment.name)
    return _form_page(request, deployment.model, deployment, form, formset)


def _dashboard_context(request, deployment: Deployment) -> dict:
    stats = deployment_stats(deployment, days=window_days(request.GET.get("days")))
    versions = [
        r["variant"].version_id for r in stats["variants"] if r["variant"] and r["variant"].version_id
    ]
    pending = PromotionRequest.objects.filter(version_id__in=versions, status=RequestStatus.PENDING)
    return {"deployment": deployment, "stats": stats, "chart": daily_chart(stats["daily"]),
            "pending": pending.select_related("version__model"),
            "can_manage": has_perm(request.user, "serving.manage"),
            "limits": {"sample": LATENCY_SAMPLE, "min_feedback": MIN_FEEDBACK, "min_requests": MIN_REQUESTS}}  # fmt: skip


@role_required("serving.view")
@require_GET
def deployment_detail(request, name: str):
    deployment = get_object_or_404(_deployments(), name=name)
    context = _dashboard_context(request, deployment)
    if request.htmx and request.htmx.target == "deployment-stats":
        return render(request, "registry/deployment_detail.html#deployment-stats", context)
    return render(request, "registry/deployment_detail.html", context)


@role_required("serving.manage")
@require_POST
def deployment_stop_view(request, name: str):
    deployment = get_object_or_404(Deployment, name=name)
    try:
        deployment_stop(user=request.user, deployment=deployment, comment=request.POST.get("comment", ""))
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(
            request, f"The experiment on {deployment.name} is stopped: all traffic to production."
        )
    return redirect("registry:deployment", name=deployment.name)


@role_required("serving.manage")
@require_POST
def deployment_promote_view(request, name: str):
    deployment = get_object_or_404(Deployment, name=name)
    try:
        promotion = experiment_promote_winner(user=request.user, deployment=deployment,
                                              label=request.POST.get("label", ""),
                                              comment=request.POST.get("comment", ""))  # fmt: skip
    except (ValidationError, PermissionDenied) as exc:
        for message in getattr(exc, "messages", None) or [str(exc)]:
            messages.error(request, message)
    else:
        link = format_html(
            '<a href="{}">Promotion request #{}</a>',
            reverse("registry:promotion", args=[promotion.pk]),
            promotion.pk,
        )
        messages.success(request, format_html("{} for {} to production is filed; an architect decides.", link,
                                              promotion.version))  # fmt: skip
    return redirect("registry:deployment", name=deployment.name)
