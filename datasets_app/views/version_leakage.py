"""A version's test split checked against the training data of a model version (HTMX partial on the data card)."""

from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from datasets_app.forms import int_or_none
from datasets_app.models import DatasetVersion, VersionStatus
from datasets_app.selectors_datasets import leakage_examples
from datasets_app.services.leakage import leakage_against_model
from llmops.roles import role_required
from registry_app.models import ModelVersion


def model_versions():
    return ModelVersion.objects.select_related("model").order_by("model__name", "-number")


def model_leakage_context(version: DatasetVersion, model_pk) -> dict:
    """The partial's context: the chosen model version and its report, or the reason there is none."""
    chosen = model_versions().filter(pk=int_or_none(model_pk) or 0).first()
    if chosen is None:
        return {"model_leak_error": "Choose a model version to check against."}
    report = leakage_against_model(version=version, model_version=chosen)
    return {"model_leak": report, "model_leak_version": chosen, "model_leak_pairs": leakage_examples(report)}


@role_required("datasets.view")
@require_GET
def version_leakage(request, pk: int):
    version = get_object_or_404(DatasetVersion, pk=pk, status=VersionStatus.READY)
    if not request.htmx:
        return redirect(
            f"{reverse('datasets:version', args=[pk])}?model={request.GET.get('model', '')}#model-leakage"
        )
    context = {"version": version, **model_leakage_context(version, request.GET.get("model"))}
    status = 400 if "model_leak_error" in context else 200
    return render(request, "datasets_app/version_detail.html#model-leakage-result", context, status=status)
