"""Uploading cases (JSONL or CSV): the form, the import's page with its report, the downloads."""

from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from datasets_app.ingest.readers import human_size
from datasets_app.models import ImportJob
from datasets_app.services.dedup import dedup_job_create
from datasets_app.services.imports import import_job_create
from llmops.roles import role_required


class ImportForm(forms.Form):
    file = forms.FileField(
        help_text="JSONL (chat or flat form) or CSV in UTF-8, UTF-8 with BOM, or GB18030/GBK."
    )
    dry_run = forms.BooleanField(
        required=False, initial=True, help_text="Check the file and preview; write nothing."
    )
    skip_invalid = forms.BooleanField(
        required=False, help_text="Import the valid lines and reject the others."
    )
    scrub_pii = forms.BooleanField(
        required=False,
        initial=settings.PII_SCRUB_DEFAULT,
        help_text="Replace e-mails, phones, ID and card numbers, IPs.",
    )


def _too_big(request) -> str | None:
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    limit = settings.UPLOAD_MAX_BYTES
    if length > limit + 64 * 1024:  # the form's other fields and the multipart framing
        return f"The upload is {human_size(length)}; the limit is {human_size(limit)}."
    return None


@role_required("cases.edit")
@require_http_methods(["GET", "POST"])
def upload(request):
    if request.method == "POST" and (problem := _too_big(request)):
        return render(
            request, "datasets_app/imports.html", {"form": ImportForm(), "too_big": problem}, status=413
        )
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            job = import_job_create(user=request.user, upload=data.pop("file"), **data)
        except ValidationError as exc:
            form.add_error("file", exc.message_dict.get("file", exc.messages))
        else:
            messages.info(request, f"Import #{job.pk}: {job.progress_message or job.status}")
            return redirect("cases:import-detail", pk=job.pk)
    status = 400 if form.errors else 200
    context = {
        "form": form,
        "limit": human_size(settings.UPLOAD_MAX_BYTES),
        "recent": ImportJob.objects.all()[:10],
    }
    return render(request, "datasets_app/imports.html", context, status=status)


@role_required("cases.view")
@require_GET
def detail(request, pk: int):
    job = get_object_or_404(ImportJob, pk=pk)
    template = (
        "datasets_app/import_detail.html#import-status" if request.htmx else "datasets_app/import_detail.html"
    )
    return render(request, template, {"job": job})


def _download(path: str, filename: str) -> FileResponse:
    if not path or not Path(path).is_file():
        raise Http404("this file is not available")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=filename)  # noqa: SIM115


@role_required("cases.view")
@require_GET
def problems_csv(request, pk: int):
    job = get_object_or_404(ImportJob, pk=pk)
    return _download(job.report_path, f"import-{job.pk}-problems.csv")


@role_required("cases.view")
@require_GET
def rejected_file(request, pk: int):
    job = get_object_or_404(ImportJob, pk=pk)
    suffix = "csv" if job.file_format == "csv" else "jsonl"
    return _download(job.rejected_path, f"import-{job.pk}-rejected.{suffix}")


@role_required("cases.edit")
@require_POST
def find_near_duplicates(request):
    try:
        threshold = float(request.POST.get("threshold") or settings.NEAR_DUP_THRESHOLD)
        job = dedup_job_create(user=request.user, threshold=threshold)
    except (ValueError, ValidationError):
        messages.error(request, "threshold: give a number between 0 and 1")
    else:
        messages.info(request, f"Looking for near-duplicates (job #{job.pk}, threshold {job.threshold:g}).")
    return redirect("cases:list")
