"""Compression pages: the list of jobs (with size ratio and speed-up once benchmarked), a form per method, the
result page (status polled while running, the engine's report, the loss curve, the benchmark table of source and
result with quality from the comparison report) and a family's quality-versus-latency page. Charts are server-side
SVG (evaluation_app.charts), so the pages need no script beyond HTMX's polling."""

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from evaluation_app.charts import scatter_chart
from llmops.job_views import cancel_and_tell
from llmops.jobs import TERMINAL
from llmops.roles import has_perm, role_required
from registry_app.models import RegisteredModel
from training_app.compress_forms import DEFAULTS, METHOD_FIELDS, CompressForm, is_method
from training_app.compress_selectors import (
    benchmark_rows,
    compression_jobs,
    family_dataset_versions,
    family_rows,
    job_benchmarks,
    job_ratios,
    method_label,
    new_method_links,
)
from training_app.downsample import lttb
from training_app.models import CompressionJob
from training_app.services.compress import compression_submit

QUALITY_WAIT_SECONDS = 120  # after success, keep polling this long for the evaluation to be queued


@role_required("training.view")
@require_GET
def compression_list(request):
    jobs = list(compression_jobs().order_by("-pk")[:200])
    for job in jobs:
        job.ratios = job_ratios(job, job_benchmarks(job))
        job.label = method_label(job.method)
    return render(request, "training_app/compress_list.html",
                  {"jobs": jobs, "methods": new_method_links(),
                   "can_submit": has_perm(request.user, "training.submit")})  # fmt: skip


def _initial(request) -> dict:
    initial = dict(DEFAULTS)
    for key in ("source", "eval_dataset_version", "dataset_version"):
        if request.GET.get(key, "").isdigit():
            initial[key] = request.GET[key]
    return initial


@role_required("training.submit")
@require_http_methods(["GET", "POST"])
def compression_new(request, method: str):
    if not is_method(method):
        raise Http404(f"no compression method {method!r}")
    form = CompressForm(method, request.POST or None, initial=_initial(request))
    if request.method == "POST" and form.is_valid():
        try:
            job = compression_submit(user=request.user, **form.submit_arguments())
        except ValidationError as exc:
            form.add_service_errors(exc.message_dict)
        else:
            messages.success(request, f"Compression job {job.pk} ({form.label}) is queued.")
            return redirect("training:compression", pk=job.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "training_app/compress_form.html",
                  {"form": form, "method": method, "methods": new_method_links()}, status=status)  # fmt: skip


def _live(job: CompressionJob, quality: dict) -> bool:
    """Poll while the job runs, and after success while its evaluation is queued or running."""
    if job.status not in TERMINAL:
        return True
    if not quality["pending"]:
        return False
    if quality["report"] is not None:
        return True
    return bool(job.finished_at and (timezone.now() - job.finished_at).total_seconds() < QUALITY_WAIT_SECONDS)


def _loss_chart(result: dict):
    losses = [p for p in result.get("train_losses") or [] if isinstance(p, list | tuple) and len(p) == 2]
    if not losses:
        return ""
    x, y = lttb([p[0] for p in losses], [p[1] for p in losses], max_points=2000)
    points = [{"x": float(a), "y": float(b)} for a, b in zip(x, y, strict=True)]
    return scatter_chart(points, title="Training loss by step", x_label="step", y_label="loss", line=True)


def _job_context(request, job: CompressionJob) -> dict:
    table = benchmark_rows(job)
    return {"job": job, "label": method_label(job.method), "terminal": job.status in TERMINAL,
            "live": _live(job, table["quality"]), "can_submit": has_perm(request.user, "training.submit"),
            "result": job.result or {}, **table}  # fmt: skip


def _settings(job: CompressionJob) -> list[tuple[str, str]]:
    """The engine config without empty values and without other methods' settings (alpha of an INT8 job)."""
    others = {name for fields in METHOD_FIELDS.values() for name in fields} - set(
        METHOD_FIELDS.get(job.method, ())
    )
    kept = sorted((k, v) for k, v in (job.config or {}).items() if v is not None and k not in others)
    return [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in kept]


@role_required("training.view")
@require_GET
def compression_detail(request, pk: int):
    job = get_object_or_404(compression_jobs(), pk=pk)
    context = _job_context(request, job)
    if request.htmx and request.htmx.target == "compression-live":
        return render(request, "training_app/compress_detail.html#compression-live", context)
    context.update(settings=_settings(job),
                   loss_chart=_loss_chart(job.result or {}))  # fmt: skip
    return render(request, "training_app/compress_detail.html", context)


@role_required("training.submit")
@require_POST
def compression_cancel_view(request, pk: int):
    job = get_object_or_404(CompressionJob, pk=pk)
    cancel_and_tell(request, model=CompressionJob, job=job, label=f"compression job {job.pk}")
    if request.htmx:
        job = get_object_or_404(compression_jobs(), pk=pk)
        return render(
            request, "training_app/compress_detail.html#compression-live", _job_context(request, job)
        )
    return redirect("training:compression", pk=job.pk)


def _chosen_dataset_version(request, choices: list[tuple[int, str, int]]) -> int | None:
    asked = request.GET.get("dataset_version", "")
    if asked.isdigit() and int(asked) in {c[0] for c in choices}:
        return int(asked)
    return choices[0][0] if choices else None


@role_required("training.view")
@require_GET
def compression_family(request, model_id: int):
    model = get_object_or_404(RegisteredModel, pk=model_id)
    choices = family_dataset_versions(model)
    chosen = _chosen_dataset_version(request, choices)
    rows = family_rows(model, chosen)
    points = [{"x": r["bench"].p50_b8_ms, "y": r["quality"], "label": f"v{r['version'].number} {r['label']}"}
              for r in rows]  # fmt: skip
    chart = scatter_chart(points, title=f"{model.name}: quality versus p50 latency at batch 8",
                          x_label="p50 latency at batch 8 (ms)", y_label="quality")  # fmt: skip
    unplotted = [r for r in rows if r["quality"] is None or r["bench"].p50_b8_ms is None]
    return render(request, "training_app/compress_family.html",
                  {"model": model, "rows": rows, "choices": choices, "chosen": chosen, "chart": chart,
                   "unplotted": unplotted})  # fmt: skip
