"""Dataset versions: the recipe form, the version page with its data card (live while it builds), the cancel,
and the two fragments loaded on demand (sample rows of a split, the diff against the parent)."""

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from datasets_app.forms import int_or_none
from datasets_app.forms_datasets import API_KEY_KEPT, RecipeForm, initial_from
from datasets_app.models import Dataset, DatasetBuild, DatasetVersion, VersionStatus
from datasets_app.pipeline.types import SPLITS
from datasets_app.selectors_datasets import (
    SAMPLE_ROWS,
    category_rows,
    export_rows,
    funnel,
    leakage_examples,
    row_page,
    sample_view,
    token_rows,
    version_diff,
)
from datasets_app.services.datasets import version_create
from datasets_app.views.version_leakage import model_leakage_context, model_versions
from llmops.job_views import cancel_and_tell
from llmops.roles import has_perm, role_required


def redacted(recipe: dict) -> dict:
    """The recipe as pages and the API show it: a back-translation API key becomes "***"."""
    recipe = json.loads(json.dumps(recipe or {}))
    if _api_key(recipe):
        recipe["steps"]["augment"]["backtranslation"]["api_key"] = API_KEY_KEPT
    return recipe


def _api_key(recipe: dict) -> str:
    backtranslation = ((recipe or {}).get("steps") or {}).get("augment", {}).get("backtranslation", {})
    return backtranslation.get("api_key", "") if isinstance(backtranslation, dict) else ""


def _start(dataset: Dataset, value) -> DatasetVersion | None:
    """The version of this dataset a new one starts from (?from= or the form's hidden field), if any."""
    pk = int_or_none(value)
    return DatasetVersion.objects.filter(pk=pk, dataset=dataset).first() if pk else None


@role_required("datasets.build")
@require_http_methods(["GET", "POST"])
def version_new(request, pk: int):
    dataset = get_object_or_404(Dataset, pk=pk)
    start = _start(
        dataset, request.POST.get("from_version") if request.method == "POST" else request.GET.get("from")
    )
    key = _api_key(start.recipe) if start else ""
    initial = initial_from(start.recipe if start else None, dataset.task_type)
    if start is not None:
        initial.update(
            from_version=start.pk, parent_version=start.pk if start.status == VersionStatus.READY else None
        )
    form = RecipeForm(request.POST or None, dataset=dataset, kept_api_key=key, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            version = version_create(user=request.user, dataset=dataset, recipe=form.recipe())
        except ValidationError as exc:
            form.add_recipe_errors(exc.message_dict)
        else:
            messages.success(request, f"{version} is building.")
            return redirect("datasets:version", pk=version.pk)
    context = {"dataset": dataset, "form": form, "start": start, "key_kept": bool(key)}
    failed = request.method == "POST"  # reaching here after a POST means it was refused
    return render(request, "datasets_app/version_form.html", context, status=400 if failed else 200)


def _version(pk: int) -> DatasetVersion:
    return get_object_or_404(DatasetVersion.objects.select_related("dataset", "parent", "created_by"), pk=pk)


def _build_of(version: DatasetVersion) -> DatasetBuild | None:
    return DatasetBuild.objects.filter(version=version).first()


@role_required("datasets.view")
@require_GET
def version_detail(request, pk: int):
    version = _version(pk)
    context = {"version": version, "dataset": version.dataset, "build": _build_of(version),
               "can_build": has_perm(request.user, "datasets.build"), "splits": SPLITS}  # fmt: skip
    if request.htmx and request.htmx.target == "build-status":
        response = render(request, "datasets_app/version_detail.html#build-status", context)
        if version.status != VersionStatus.BUILDING:
            response["HX-Refresh"] = "true"  # the build ended: show the whole data card
        return response
    card = version.card or {}
    context.update(
        counts=[
            (s, (version.counts or {}).get(s, 0), (card.get("tokens_mean") or {}).get(s, "—")) for s in SPLITS
        ],
        total=sum((version.counts or {}).values()),
        funnel=funnel(version.steps),
        categories=category_rows(card),
        tokens=token_rows(card),
        chart={"bins": card.get("token_bins") or [], "hist": card.get("token_hist") or {}, "splits": SPLITS},
        card=card,
        leakage=version.leakage or {},
        leakage_pairs=leakage_examples(version.leakage),
        model_versions=model_versions() if version.status == VersionStatus.READY else [],
        **(model_leakage_context(version, request.GET["model"]) if request.GET.get("model") else {}),
        exports=export_rows(version),
        recipe_json=json.dumps(redacted(version.recipe), indent=2, ensure_ascii=False),
        **_samples(version, "train", None),
    )
    return render(request, "datasets_app/version_detail.html", context)


@role_required("datasets.build")
@require_POST
def version_cancel(request, pk: int):
    version = _version(pk)
    build = get_object_or_404(DatasetBuild, version=version)
    cancel_and_tell(request, model=DatasetBuild, job=build, label=f"the build of {version}")
    if request.htmx:
        version.refresh_from_db()
        context = {"version": version, "dataset": version.dataset, "build": _build_of(version),
                   "can_build": True, "splits": SPLITS}  # fmt: skip
        response = render(request, "datasets_app/version_detail.html#build-status", context)
        if version.status != VersionStatus.BUILDING:
            response["HX-Refresh"] = "true"
        return response
    return redirect("datasets:version", pk=version.pk)


def _samples(version: DatasetVersion, split: str, after: int | None) -> dict:
    page = row_page(version, split=split, after=after, limit=SAMPLE_ROWS)
    return {"sample_split": split, "samples": [sample_view(e) for e in page.rows], "samples_next": page.next_after,
            "samples_after": after}  # fmt: skip


@role_required("datasets.view")
@require_GET
def version_rows(request, pk: int):
    version = _version(pk)
    split = request.GET.get("split", "train")
    if split not in SPLITS:
        split = "train"
    context = {"version": version, "dataset": version.dataset, "splits": SPLITS,
               **_samples(version, split, int_or_none(request.GET.get("after")))}  # fmt: skip
    template = "datasets_app/version_rows.html" + ("#samples" if request.htmx else "")
    return render(request, template, context)


@role_required("datasets.view")
@require_GET
def version_compare(request, pk: int):
    version = _version(pk)
    diff = version_diff(version)
    parts = [("added", diff.added), ("removed", diff.removed), ("changed", diff.changed)]
    context = {"version": version, "dataset": version.dataset, "diff": diff, "diff_parts": parts}
    template = "datasets_app/version_diff.html" + ("#diff" if request.htmx else "")
    return render(request, template, context)
