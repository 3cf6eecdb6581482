"""A version's exports page: its export jobs (status, kind, result folder, sha256, size), polled with HTMX while
one runs, and a form that starts a new one (registry.export). registry_app.services.exports does the work."""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from llmops.roles import has_perm, role_required
from registry_app.models import ExportJob, ExportKind, ModelVersion

MAX_JOBS = 100


class ExportForm(forms.Form):
    kind = forms.ChoiceField(
        choices=ExportKind.choices, widget=forms.RadioSelect, initial=ExportKind.MERGED_HF
    )

    def add_service_errors(self, problems: dict) -> None:
        for field, found in problems.items():
            for message in found:
                self.add_error(field if field in self.fields else None, message)


def _version(name: str, number: int) -> ModelVersion:
    return get_object_or_404(ModelVersion.objects.select_related("model", "base__model"),
                             model__name=name, number=number)  # fmt: skip


def _page(request, version: ModelVersion, form: ExportForm, status: int = 200):
    jobs = list(
        ExportJob.objects.filter(version=version).select_related("created_by").order_by("-pk")[:MAX_JOBS]
    )
    context = {"version": version, "jobs": jobs, "form": form, "live": any(not j.is_terminal for j in jobs),
               "can_export": has_perm(request.user, "registry.export")}  # fmt: skip
    if request.htmx and request.htmx.target == "exports":
        return render(request, "registry/export_list.html#exports", context)
    return render(request, "registry/export_list.html", context, status=status)


@role_required("registry.view")
@require_GET
def version_exports(request, name: str, number: int):
    return _page(request, _version(name, number), ExportForm())


@role_required("registry.export")
@require_POST
def export_new(request, name: str, number: int):
    from registry_app.services.exports import export_submit

    version = _version(name, number)
    form = ExportForm(request.POST)
    if form.is_valid():
        try:
            job = export_submit(user=request.user, version=version, kind=form.cleaned_data["kind"])
        except ValidationError as exc:
            form.add_service_errors(exc.message_dict)
        else:
            messages.success(request, f"Export {job.pk} ({job.get_kind_display()}) of {version} is queued.")
            return redirect("registry:exports", name=version.model.name, number=version.number)
    return _page(request, version, form, status=400)
