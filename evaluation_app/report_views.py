"""Comparison report pages: the new-report form, the report (banners, metrics with intervals, charts, breakdowns,
error-case outcomes, the filtered per-example list), one example side by side with a word diff, the two exports,
and the regression suite matrix (approved error cases × model versions)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods

from datasets_app.diff import diff_html
from evaluation_app import selectors
from evaluation_app.export import report_html, report_markdown, report_sections
from evaluation_app.forms import ReportForm
from evaluation_app.models import ComparisonItem, ComparisonReport
from evaluation_app.services.compare import comparison_create
from llmops.roles import has_perm, role_required


def _reports():
    return ComparisonReport.objects.select_related(
        "baseline__model_version__model", "candidate__model_version__model",
        "baseline__dataset_version__dataset", "candidate__dataset_version__dataset", "created_by",
    )  # fmt: skip


@role_required("evaluation.submit")
@require_http_methods(["GET", "POST"])
def report_new(request):
    initial = {k: request.GET[k] for k in ("baseline", "candidate") if request.GET.get(k, "").isdigit()}
    form = ReportForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            report = comparison_create(user=request.user, baseline=data["baseline"], candidate=data["candidate"],
                                       name=data["name"], forgetting_threshold=data.get("forgetting_threshold"))  # fmt: skip
        except ValidationError as exc:
            form.add_service_errors(
                exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
            )
        else:
            messages.success(request, f"Comparison report {report.pk} created ({report.status}).")
            return redirect("evaluation:report", pk=report.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "evaluation_app/report_form.html", {"form": form}, status=status)


def _list_context(report: ComparisonReport, request) -> dict:
    filters = selectors.item_filters(request.GET)
    page = selectors.item_page(report, filters, request.GET.get("page"))
    for item in page:
        item.excerpt_baseline = selectors.preview(item.baseline.prediction, 80)
        item.excerpt_candidate = selectors.preview(item.candidate.prediction, 80)
    return {"report": report, "filters": filters, "fq": urlencode(filters), "page": page,
            "facets": selectors.report_facets(report)}  # fmt: skip


@role_required("evaluation.view")
@require_GET
def report_detail(request, pk: int):
    report = get_object_or_404(_reports(), pk=pk)
    context = _list_context(report, request)
    if request.htmx and request.htmx.target == "items":
        response = render(request, "evaluation_app/report_detail.html#items", context)
    else:
        context.update(s=report_sections(report), can_submit=has_perm(request.user, "evaluation.submit"))
        response = render(request, "evaluation_app/report_detail.html", context)
    # the list's URL is pushed to the history: the browser must not answer "back" with the cached fragment
    patch_vary_headers(response, ("HX-Request",))
    return response


@role_required("evaluation.view")
@require_GET
def report_item(request, pk: int, item_pk: int):
    report = get_object_or_404(_reports(), pk=pk)
    item = get_object_or_404(
        ComparisonItem.objects.select_related("baseline__case", "candidate"), pk=item_pk, report=report
    )
    left, right = diff_html(item.baseline.prediction, item.candidate.prediction)
    prompt = item.baseline.prompt
    back = request.GET.get("back", "")
    return render(request, "evaluation_app/report_item.html",
                  {"report": report, "item": item, "left": left, "right": right,
                   "prompt_messages": prompt if isinstance(prompt, list) else None,
                   "back": back if back.startswith("?") else ""})  # fmt: skip


def _download(body: str, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@role_required("evaluation.view")
@require_GET
def report_export_html(request, pk: int):
    report = get_object_or_404(_reports(), pk=pk)
    return _download(report_html(report), "text/html; charset=utf-8", f"comparison-report-{report.pk}.html")


@role_required("evaluation.view")
@require_GET
def report_export_md(request, pk: int):
    report = get_object_or_404(_reports(), pk=pk)
    return _download(
        report_markdown(report), "text/markdown; charset=utf-8", f"comparison-report-{report.pk}.md"
    )


@role_required("evaluation.view")
@require_GET
def regression(request):
    product = request.GET.get("product", "")[:100]
    return render(request, "evaluation_app/regression.html",
                  {"product": product, "products": selectors.regression_products(),
                   "matrix": selectors.regression_matrix(product),
                   "can_submit": has_perm(request.user, "evaluation.submit")})  # fmt: skip
