"""Registry pages: every registered model with its versions, and one version with its lineage (base version,
dataset version, the job that made it and its settings), content hash, size and artifact folder."""

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from datasets_app.models import DatasetVersion
from llmops.roles import has_perm, role_required
from registry_app.base_imports import base_import_submit, import_roots
from registry_app.forms import BaseImportForm
from registry_app.models import BaseImport, ModelVersion, RegisteredModel, VersionSource
from training_app.models import FineTuneJob

MAX_VERSIONS = 500
RECENT_IMPORTS = 10
LINKED_LINEAGE = {"base_version", "dataset_version", "job", "config"}


@role_required("registry.view")
@require_GET
def model_list(request):
    models = RegisteredModel.objects.annotate(n_versions=Count("versions")).order_by("name")
    versions = ModelVersion.objects.select_related("model", "base__model", "created_by")
    imports = BaseImport.objects.select_related("result_version__model")[:RECENT_IMPORTS]
    context = {"models": models, "versions": versions.order_by("model__name", "-number")[:MAX_VERSIONS],
               "imports": imports, "can_register": has_perm(request.user, "registry.register"),
               "importing": any(not i.is_terminal for i in imports)}  # fmt: skip
    if request.htmx and request.htmx.target == "imports":
        return render(request, "registry/model_list.html#imports", context)
    return render(request, "registry/model_list.html", context)


@role_required("registry.register")
@require_http_methods(["GET", "POST"])
def base_import_new(request):
    form = BaseImportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = base_import_submit(user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_service_errors(exc.message_dict)
        else:
            messages.success(
                request, f"Registering {job.name} from {job.location}: it shows below when done."
            )
            return redirect("registry:list")
    status = 400 if request.method == "POST" else 200
    return render(
        request, "registry/import_form.html", {"form": form, "roots": import_roots()}, status=status
    )


def _lineage(version: ModelVersion) -> dict:
    """The lineage's ids as rows the page can link to (None where the row is gone), plus its other keys."""
    lineage = version.lineage if isinstance(version.lineage, dict) else {}
    dataset_version = job = None
    if isinstance(lineage.get("dataset_version"), int):
        dataset_version = (
            DatasetVersion.objects.select_related("dataset").filter(pk=lineage["dataset_version"]).first()
        )
    if isinstance(lineage.get("job"), int) and version.source == VersionSource.FINE_TUNE:
        job = FineTuneJob.objects.filter(pk=lineage["job"]).first()
    config = lineage.get("config") if isinstance(lineage.get("config"), dict) else {}
    return {
        "dataset_version": dataset_version, "job": job, "job_id": lineage.get("job"),
        "config": [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in sorted(config.items())],
        "other": [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in sorted(lineage.items())
                  if k not in LINKED_LINEAGE],
    }  # fmt: skip


@role_required("registry.view")
@require_GET
def version_detail(request, name: str, number: int):
    version = get_object_or_404(
        ModelVersion.objects.select_related("model", "base__model", "created_by"),
        model__name=name,
        number=number,
    )
    derived = version.derived.select_related("model").order_by("model__name", "number")
    return render(request, "registry/version_detail.html",
                  {"version": version, "lineage": _lineage(version), "derived": derived,
                   "can_promote": has_perm(request.user, "registry.promote")})  # fmt: skip
