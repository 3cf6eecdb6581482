"""Datasets: the list with its create form, one dataset's page (versions and source files), the file upload."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from datasets_app.forms_datasets import DatasetForm, SourceFileForm
from datasets_app.ingest.readers import human_size
from datasets_app.models import Dataset
from datasets_app.selectors_datasets import dataset_list as all_datasets
from datasets_app.services.datasets import dataset_create, source_file_add
from llmops.roles import has_perm, role_required


def add_service_errors(form, exc: ValidationError) -> None:
    """A service's ValidationError on the form: by field where the form has that field, else at the top."""
    problems = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
    for key, reasons in problems.items():
        form.add_error(key if key in form.fields else None, reasons)


@role_required("datasets.view")
@require_http_methods(["GET", "POST"])
def dataset_list(request):
    can_build = has_perm(request.user, "datasets.build")
    if request.method == "POST" and not can_build:
        raise PermissionDenied("your roles do not include the permission datasets.build")
    form = DatasetForm(request.POST or None) if can_build else None
    if request.method == "POST" and form.is_valid():
        try:
            dataset = dataset_create(user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request, f"Dataset {dataset.name} created; upload files or build its first version."
            )
            return redirect("datasets:detail", pk=dataset.pk)
    context = {"datasets": all_datasets(), "form": form}
    return render(
        request, "datasets_app/dataset_list.html", context, status=400 if form and form.errors else 200
    )


def _detail(request, dataset: Dataset, upload_form=None, status: int = 200):
    can_build = has_perm(request.user, "datasets.build")
    versions = dataset.versions.select_related("created_by", "parent").order_by("-number")
    context = {
        "dataset": dataset,
        "versions": versions,
        "files": dataset.files.select_related("uploaded_by"),
        "can_build": can_build,
        "upload_form": upload_form or (SourceFileForm() if can_build else None),
        "limit": human_size(settings.UPLOAD_MAX_BYTES),
    }
    return render(request, "datasets_app/dataset_detail.html", context, status=status)


@role_required("datasets.view")
@require_GET
def dataset_detail(request, pk: int):
    return _detail(request, get_object_or_404(Dataset, pk=pk))


@role_required("datasets.build")
@require_POST
def file_upload(request, pk: int):
    dataset = get_object_or_404(Dataset, pk=pk)
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > settings.UPLOAD_MAX_BYTES + 64 * 1024:  # the multipart framing
        form = SourceFileForm()
        form.add_error(
            None, f"The upload is {human_size(length)}; the limit is {human_size(settings.UPLOAD_MAX_BYTES)}."
        )
        return _detail(request, dataset, form, status=413)
    form = SourceFileForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            source = source_file_add(user=request.user, dataset=dataset, upload=form.cleaned_data["file"])
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"{source.name} stored ({human_size(source.size_bytes)}).")
            return redirect("datasets:detail", pk=dataset.pk)
    return _detail(request, dataset, form, status=400)
