"""One case: its page, and the actions on it (edit, tags, status, approve, reject, comment).

Every action answers through `panels.respond`, so the same view serves the case page and triage mode.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, render
from django.utils.timezone import localtime
from django.views.decorators.http import require_GET, require_POST

from datasets_app.forms import CaseEditForm, CaseTagsForm, CommentForm, RejectForm, StatusForm, int_or_none
from datasets_app.models import CaseStatus, ErrorCase
from datasets_app.services import cases as services
from datasets_app.services.cases import StaleEdit, problem_text
from datasets_app.views.panels import detail_context, respond
from llmops.roles import role_required


def _open_case(pk: int) -> ErrorCase:
    """A case that can still be acted on (a merged case only points at its primary)."""
    return get_object_or_404(ErrorCase, pk=pk, merged_into=None)


def _form_problem(form) -> str:
    return "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())


def _stale(request, exc: StaleEdit, form=None, form_name: str = ""):
    """409: say who changed the case; keep what this user typed, now based on the current version."""
    extra = {}
    if form is not None:
        data = request.POST.copy()
        data["version"] = str(exc.case.version)
        extra[form_name] = type(form)(data)
    case = exc.case
    who = case.updated_by.get_username() if case.updated_by else "someone"
    message = (
        f"{who} changed case #{case.pk} at {localtime(case.updated_at):%Y-%m-%d %H:%M:%S}, after you opened it; "
        "your edit was not saved. The page now shows their version"
        + ("; your text is still in the editor: save again to replace theirs." if form is not None else ".")
    )
    return respond(request, exc.case, status=409, problem=message, **extra)


@role_required("cases.view")
@require_GET
def case_detail(request, pk: int):
    case = get_object_or_404(ErrorCase, pk=pk)
    template = "datasets_app/case_detail.html" + ("#case-body" if request.htmx else "")
    return render(request, template, detail_context(request, case))


@role_required("cases.edit")
@require_POST
def case_edit(request, pk: int):
    case = _open_case(pk)
    form = CaseEditForm(request.POST)
    if not form.is_valid():
        return respond(request, case, status=400, problem=_form_problem(form), edit_form=form)
    try:
        services.case_update(
            case_id=case.pk, user=request.user, version=form.cleaned_data["version"], changes=form.changes()
        )
    except StaleEdit as exc:
        return _stale(request, exc, form, "edit_form")
    except ValidationError as exc:
        return respond(request, case, status=400, problem=problem_text(exc), edit_form=form)
    messages.success(request, f"Case #{case.pk} saved.")
    return respond(request, case)


@role_required("cases.edit")
@require_POST
def case_tags(request, pk: int):
    case = _open_case(pk)
    form = CaseTagsForm(request.POST)
    if not form.is_valid():
        return respond(request, case, status=400, problem=_form_problem(form), tags_form=form)
    tags = [t.name for t in form.cleaned_data["tags"]]
    try:
        services.case_update(
            case_id=case.pk, user=request.user, version=form.cleaned_data["version"], changes={"tags": tags}
        )
    except StaleEdit as exc:
        return _stale(request, exc, form, "tags_form")
    except ValidationError as exc:
        return respond(request, case, status=400, problem=problem_text(exc), tags_form=form)
    messages.success(request, f"Tags of case #{case.pk} saved.")
    return respond(request, case)


def _set_status(request, case: ErrorCase, status: str, reason: str = ""):
    version = int_or_none(request.POST.get("version"))
    try:
        case = services.case_set_status(
            case_id=case.pk, user=request.user, status=status, reason=reason, version=version
        )
    except StaleEdit as exc:
        return _stale(request, exc)
    except ValidationError as exc:
        return respond(request, case, status=400, problem=problem_text(exc))
    messages.success(request, f"Case #{case.pk} is now {status}.")
    return respond(request, case, advance=status in (CaseStatus.APPROVED, CaseStatus.REJECTED))


@role_required("cases.edit")
@require_POST
def case_status(request, pk: int):
    case = _open_case(pk)
    form = StatusForm(request.POST)
    if not form.is_valid():
        return respond(request, case, status=400, problem=_form_problem(form))
    return _set_status(request, case, form.cleaned_data["status"])


@role_required("cases.approve")
@require_POST
def case_approve(request, pk: int):
    case = _open_case(pk)
    return _set_status(request, case, CaseStatus.APPROVED)


@role_required("cases.approve")
@require_POST
def case_reject(request, pk: int):
    case = _open_case(pk)
    form = RejectForm(request.POST)
    if not form.is_valid():
        problem = "reason: a rejection needs a reason" if "reason" in form.errors else _form_problem(form)
        return respond(request, case, status=400, problem=problem)
    return _set_status(request, case, CaseStatus.REJECTED, form.cleaned_data["reason"])


@role_required("cases.comment")
@require_POST
def case_comment(request, pk: int):
    case = get_object_or_404(ErrorCase, pk=pk)
    form = CommentForm(request.POST)
    if not form.is_valid():
        return respond(request, case, status=400, problem=_form_problem(form), comment_form=form)
    services.case_comment_add(case_id=case.pk, user=request.user, body=form.cleaned_data["body"])
    messages.success(request, "Comment added.")
    return respond(request, case)
