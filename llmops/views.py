"""Portal core pages: home, API tokens, diagnostics, health and metrics, error pages."""

from django.conf import settings
from django.contrib import messages
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from llmops import services
from llmops.api_errors import json_error
from llmops.forms import ApiTokenForm, DiagnosticJobForm
from llmops.jobs import IllegalTransition
from llmops.metrics import broker_client
from llmops.models import ApiToken, DiagnosticJob
from llmops.roles import ROLE_DESCRIPTIONS, has_perm, public, role_required, user_roles


@role_required("portal.view")
def home(request):
    roles = sorted(user_roles(request.user))
    context = {"roles": [(r, ROLE_DESCRIPTIONS[r]) for r in roles]}
    if has_perm(request.user, "diagnostics.view"):
        context["recent_jobs"] = DiagnosticJob.objects.all()[:5]
    context["can_run_demo"] = has_perm(request.user, "demo.run")
    return render(request, "llmops/home.html", context)


# --- API tokens -----------------------------------------------------------------------------------------------


@role_required("tokens.manage")
def tokens(request):
    form = ApiTokenForm(request.POST or None, user=request.user)
    new_token = None
    if request.method == "POST" and form.is_valid():
        token, new_token = services.api_token_create(user=request.user, name=form.cleaned_data["name"])
        messages.success(request, f"Token “{token.name}” created. Copy it now: it will not be shown again.")
        form = ApiTokenForm(user=request.user)
    context = {"form": form, "new_token": new_token, "tokens": request.user.api_tokens.all()}
    template = "llmops/tokens.html#token-panel" if request.htmx else "llmops/tokens.html"
    return render(request, template, context, status=400 if form.errors else 200)


@role_required("tokens.manage")
@require_POST
def token_revoke(request, pk: int):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    services.api_token_revoke(user=request.user, token_id=token.pk)
    messages.success(request, f"Token “{token.name}” revoked; clients using it now get 401.")
    if request.htmx:
        context = {"form": ApiTokenForm(user=request.user), "tokens": request.user.api_tokens.all()}
        return render(request, "llmops/tokens.html#token-panel", context)
    return redirect("tokens")


# --- diagnostics ----------------------------------------------------------------------------------------------


@role_required("diagnostics.view")
@require_GET
def diagnostics_list(request):
    context = {"form": DiagnosticJobForm(), "jobs": DiagnosticJob.objects.all()[:50]}
    template = "llmops/diagnostics.html#job-table" if request.htmx else "llmops/diagnostics.html"
    return render(request, template, context)


@role_required("diagnostics.run")
@require_POST
def diagnostics_create(request):
    form = DiagnosticJobForm(request.POST)
    if not form.is_valid():
        context = {"form": form, "jobs": DiagnosticJob.objects.all()[:50]}
        return render(request, "llmops/diagnostics.html", context, status=400)
    job = services.diagnostic_job_create(user=request.user, **form.cleaned_data)
    messages.success(request, f"Diagnostic job #{job.pk} queued on {job.queue}.")
    return redirect("diagnostics:detail", pk=job.pk)


@role_required("diagnostics.view")
@require_GET
def diagnostic_detail(request, pk: int):
    job = get_object_or_404(DiagnosticJob, pk=pk)
    template = "llmops/diagnostic_detail.html#job-status" if request.htmx else "llmops/diagnostic_detail.html"
    return render(request, template, {"job": job})


@role_required("diagnostics.run")
@require_POST
def diagnostic_cancel(request, pk: int):
    job = get_object_or_404(DiagnosticJob, pk=pk)
    try:
        job = services.diagnostic_job_cancel(job_id=job.pk)
    except IllegalTransition:
        messages.error(request, f"Job #{job.pk} has already finished ({job.status}); nothing to cancel.")
    else:
        messages.info(request, f"Cancel requested for job #{job.pk}.")
    if request.htmx:
        job.refresh_from_db()
        return render(request, "llmops/diagnostic_detail.html#job-status", {"job": job})
    return redirect("diagnostics:detail", pk=job.pk)


# --- ops ------------------------------------------------------------------------------------------------------


@public
@require_GET
def healthz(request):
    checks = {"database": _check(_ping_database), "broker": _check(lambda: broker_client().ping())}
    healthy = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503
    )


def _ping_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check(probe) -> str:
    try:
        probe()
    except Exception as exc:
        return f"failed: {type(exc).__name__}: {exc}"[:300]
    return "ok"


@public
@require_GET
def metrics(request):
    if settings.METRICS_TOKEN and request.headers.get("Authorization") != f"Bearer {settings.METRICS_TOKEN}":
        return HttpResponse("metrics token required\n", status=401, content_type="text/plain")
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


def page_not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return json_error(404, "not_found", f"No API endpoint at {request.path}.")
    return render(request, "404.html", {"path": request.path}, status=404)


def server_error(request):
    if request.path.startswith("/api/"):
        return json_error(500, "server_error", "Internal server error; it has been logged.")
    return render(request, "500.html", status=500)
