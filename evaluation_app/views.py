"""Evaluation pages."""

from django.shortcuts import render

from evaluation_app.models import ComparisonReport, EvalRun
from llmops.roles import role_required


@role_required("evaluation.view")
def evaluation_list(request):
    runs = EvalRun.objects.select_related("model_version__model")[:50]
    reports = ComparisonReport.objects.select_related("baseline", "candidate")[:50]
    return render(request, "evaluation_app/list.html", {"runs": runs, "reports": reports})
