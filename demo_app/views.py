"""The guided demo's pages: start a run (the home page's button posts here) and watch it (polled with HTMX)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from demo_app.forms import DemoRunForm
from demo_app.loop import demo_run_create
from demo_app.models import DemoRun
from llmops.roles import role_required

RECENT = 10


@role_required("demo.run")
@require_http_methods(["GET", "POST"])
def demo_start(request):
    form = DemoRunForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = demo_run_create(user=request.user, model=form.cleaned_data["model"],
                                  steps=form.cleaned_data["steps"])  # fmt: skip
        except ValidationError as e:
            for field, problems in e.message_dict.items():
                form.add_error(field if field in form.fields else None, problems)
        else:
            messages.success(request, f"Demo run #{run.pk} queued: it runs on a worker of the gpu queue.")
            return redirect("demo:run", pk=run.pk)
    context = {"form": form, "runs": DemoRun.objects.select_related("created_by")[:RECENT]}
    return render(request, "demo_app/start.html", context, status=400 if form.errors else 200)


@role_required("demo.run")
@require_GET
def demo_run_detail(request, pk: int):
    run = get_object_or_404(
        DemoRun.objects.select_related(
            "run_as",
            "dataset_version__dataset",
            "fine_tune",
            "report",
            "promotion",
            "fine_tune__result_version__model",
        ),
        pk=pk,
    )
    template = "demo_app/run.html#run-status" if request.htmx else "demo_app/run.html"
    return render(request, template, {"run": run})
