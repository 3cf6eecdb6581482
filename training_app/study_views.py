"""Study pages: the list, the form (base, data, fixed settings, ranges), the leaderboard page (polled while the
study runs) and its cancel button."""

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from llmops.jobs import IllegalTransition
from llmops.roles import has_perm, role_required
from training_app.models import Study
from training_app.services import study_cancel, study_create
from training_app.study_forms import INITIAL, StudyForm
from training_app.study_selectors import study_leaderboard


def _studies():
    return Study.objects.select_related("base__model", "dataset_version__dataset", "created_by", "best_trial")


@role_required("training.view")
@require_GET
def study_list(request):
    return render(request, "training_app/study_list.html",
                  {"studies": _studies()[:200], "can_submit": has_perm(request.user, "training.submit")})  # fmt: skip


@role_required("training.submit")
@require_http_methods(["GET", "POST"])
def study_new(request):
    form = StudyForm(request.POST or None, initial=INITIAL)
    if request.method == "POST" and form.is_valid():
        try:
            study = study_create(user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_service_errors(exc.message_dict)
        else:
            messages.success(
                request, f"Study {study.name} started with {study.trials.count()} trial(s) queued."
            )
            return redirect("training:study", pk=study.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "training_app/study_form.html", {"form": form}, status=status)


def _study_context(request, study: Study) -> dict:
    return {"study": study, "rows": study_leaderboard(study), "space": list(study.search_space),
            "fixed": json.dumps(study.hyperparameters), "ranges": json.dumps(study.search_space),
            "can_submit": has_perm(request.user, "training.submit")}  # fmt: skip


@role_required("training.view")
@require_GET
def study_detail(request, pk: int):
    study = get_object_or_404(_studies().select_related("best_trial__result_version__model"), pk=pk)
    context = _study_context(request, study)
    if request.htmx and request.htmx.target == "study-board":
        return render(request, "training_app/study_detail.html#study-board", context)
    return render(request, "training_app/study_detail.html", context)


@role_required("training.submit")
@require_POST
def study_cancel_view(request, pk: int):
    study = get_object_or_404(Study, pk=pk)
    try:
        study_cancel(study_id=study.pk)
    except IllegalTransition:
        messages.info(request, f"Study {study.name} has already ended.")
    else:
        messages.success(request, f"Study {study.name} is cancelled; its running trials stop within seconds.")
    return redirect("training:study", pk=study.pk)
