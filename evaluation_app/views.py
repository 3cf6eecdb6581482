"""Evaluation pages for runs: the list (runs and comparison reports), the submit form, the live run page with
every suite's metrics, the judge's agreement with people and the leakage banner, one example's page (saliency,
rules, judge verdicts, the human label), the cancel. Reports and the regression suite: report_views.py."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from evaluation_app import selectors
from evaluation_app.forms import LabelForm, RuleFormSet, RunForm
from evaluation_app.models import EvalResult, EvalRun
from evaluation_app.services.labels import eval_result_label
from evaluation_app.services.submit import eval_run_submit
from llmops.job_views import cancel_and_tell
from llmops.jobs import TERMINAL
from llmops.roles import has_perm, role_required


@role_required("evaluation.view")
@require_GET
def evaluation_list(request):
    runs = list(selectors.runs_for_list()[:100])
    for run in runs:
        run.key = selectors.key_metric(run)
    reports = selectors.reports_for_list()[:100]
    return render(request, "evaluation_app/list.html",
                  {"runs": runs, "reports": reports, "can_submit": has_perm(request.user, "evaluation.submit")})  # fmt: skip


def _initial(request) -> dict:
    initial = {"suites": ["task"], "judge_rubrics": ["correctness"], "general_pack": True, "pass_threshold": 0.5,
               "split": "test"}  # fmt: skip
    for key in ("model_version", "dataset_version", "product"):
        if request.GET.get(key):
            initial[key] = request.GET[key][:100]
    return initial


def _rules(formset) -> list[dict]:
    return [rule for form in formset.forms if (rule := form.to_rule())]


@role_required("evaluation.submit")
@require_http_methods(["GET", "POST"])
def run_new(request):
    form = RunForm(request.POST or None, initial=_initial(request))
    rules = RuleFormSet(request.POST or None, prefix="rules")
    rule_problems: list[str] = []
    if request.method == "POST" and form.is_valid() and rules.is_valid():
        try:
            run = eval_run_submit(user=request.user, **form.submit_kwargs(_rules(rules)))
        except ValidationError as exc:
            rule_problems = form.add_service_errors(exc.message_dict)
        else:
            messages.success(request, f"Evaluation run {run.pk} is queued.")
            return redirect("evaluation:run", pk=run.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "evaluation_app/run_form.html",
                  {"form": form, "rules": rules, "rule_problems": rule_problems}, status=status)  # fmt: skip


def _runs():
    return EvalRun.objects.select_related("model_version__model", "dataset_version__dataset", "created_by")


def _run_context(request, run: EvalRun) -> dict:
    return {
        "run": run,
        "terminal": run.status in TERMINAL,
        "can_submit": has_perm(request.user, "evaluation.submit"),
    }


@role_required("evaluation.view")
@require_GET
def run_detail(request, pk: int):
    run = get_object_or_404(_runs(), pk=pk)
    context = _run_context(request, run)
    if request.htmx and request.htmx.target == "run-status":
        return render(request, "evaluation_app/run_detail.html#run-status", context)
    page = selectors.result_page(run, request.GET.get("page"))
    for result in page:
        result.excerpt = selectors.preview(result.prediction)
    context.update(sections=selectors.run_sections(run), agreement=selectors.judge_agreement(run),
                   leaked=selectors.leaked_examples(run), page=page)  # fmt: skip
    if request.htmx and request.htmx.target == "results":
        return render(request, "evaluation_app/run_detail.html#results", context)
    return render(request, "evaluation_app/run_detail.html", context)


@role_required("evaluation.submit")
@require_POST
def run_cancel(request, pk: int):
    run = get_object_or_404(_runs(), pk=pk)
    cancel_and_tell(request, model=EvalRun, job=run, label=f"evaluation run {run.pk}")
    if request.htmx:
        run.refresh_from_db()
        return render(request, "evaluation_app/run_detail.html#run-status", _run_context(request, run))
    return redirect("evaluation:run", pk=run.pk)


def _result(pk: int, result_pk: int) -> EvalResult:
    return get_object_or_404(EvalResult.objects.select_related("run__model_version__model", "case",
                                                               "human_labelled_by"), pk=result_pk, run_id=pk)  # fmt: skip


def _result_context(request, result: EvalResult, form: LabelForm | None = None) -> dict:
    return {"result": result, "run": result.run, "saliency": selectors.saliency_tokens(result),
            "prompt_messages": result.prompt if isinstance(result.prompt, list) else None,
            "judge": sorted((result.judge or {}).items()), "scores": sorted((result.scores or {}).items()),
            "probs": sorted((result.probs or {}).items(), key=lambda kv: -kv[1] if isinstance(kv[1], float) else 0),
            "can_label": has_perm(request.user, "evaluation.label"),
            "label_form": form or LabelForm(initial={"label": result.human_label})}  # fmt: skip


@role_required("evaluation.view")
@require_GET
def result_detail(request, pk: int, result_pk: int):
    result = _result(pk, result_pk)
    return render(request, "evaluation_app/result_detail.html", _result_context(request, result))


@role_required("evaluation.label")
@require_POST
def result_label(request, pk: int, result_pk: int):
    result = _result(pk, result_pk)
    form = LabelForm(request.POST)
    if form.is_valid():
        try:
            result = eval_result_label(user=request.user, result=result, label=form.cleaned_data["label"])
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error("label", message)
        else:
            messages.success(request, f"Labelled {result.human_label or 'cleared'}.")
            if request.htmx:
                return render(request, "evaluation_app/result_detail.html#label",
                              _result_context(request, result))  # fmt: skip
            return redirect("evaluation:result", pk=pk, result_pk=result.pk)
    template = "evaluation_app/result_detail.html" + ("#label" if request.htmx else "")
    return render(request, template, _result_context(request, result, form), status=400)
