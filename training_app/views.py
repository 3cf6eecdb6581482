"""Training pages: the jobs list, the submit form (method fields, presets, estimate), the live job page with its
charts and checkpoints, the cancel, the comparison of several jobs, and the chart data (≤ 2k points per series)."""

import json
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from llmops.job_views import cancel_and_tell
from llmops.jobs import TERMINAL
from llmops.roles import has_perm, role_required
from training_app.forms import ALL_METHOD_FIELDS, COMMON, DEFAULTS, METHOD_FIELDS, PRESETS, FineTuneForm
from training_app.models import FineTuneJob
from training_app.selectors import MAX_CHART_POINTS, job_checkpoints, metric_series
from training_app.services.submit import fine_tune_submit

DEFAULT_SERIES = "train_loss,val_loss"
# (chart key, series names, title)
CHARTS = (
    ("loss", "train_loss,val_loss", "Loss: train and validation"),
    ("lr", "lr", "Learning rate"),
    ("grad_norm", "grad_norm", "Gradient norm"),
    ("tokens_per_s", "tokens_per_s", "Tokens per second"),
)


def _jobs():
    return FineTuneJob.objects.select_related("base__model", "dataset_version__dataset", "created_by")


@role_required("training.view")
@require_GET
def job_list(request):
    jobs = _jobs().order_by("-pk")[:200]
    return render(request, "training_app/job_list.html",
                  {"jobs": jobs, "can_submit": has_perm(request.user, "training.submit")})  # fmt: skip


def _initial(request) -> dict:
    initial = dict(DEFAULTS)
    preset = PRESETS.get(request.GET.get("preset", ""))
    if preset:
        initial.update(preset[1])
    for key in ("base", "dataset_version"):
        if request.GET.get(key):
            initial[key] = request.GET[key]
    return initial


def _form_context(form: FineTuneForm, **extra) -> dict:
    method = form.method_value()
    return {"form": form, "method": method, "method_fields": [form[n] for n in METHOD_FIELDS[method]],
            "all_method_fields": [form[n] for n in ALL_METHOD_FIELDS], "common_fields": [form[n] for n in COMMON],
            "presets": [(key, label) for key, (label, _) in PRESETS.items()], **extra}  # fmt: skip


@role_required("training.submit")
@require_http_methods(["GET", "POST"])
def job_new(request):
    form = FineTuneForm(request.POST or None, initial=_initial(request))
    other: list[str] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            job = fine_tune_submit(user=request.user, base=data["base"], dataset_version=data["dataset_version"],
                                   method=data["method"], hyperparameters=form.hyperparameters(),
                                   gpus=data["gpus"], priority=data["priority"])  # fmt: skip
        except ValidationError as exc:
            other = form.add_service_errors(exc.message_dict)
        else:
            messages.success(request, f"Fine-tune job {job.pk} is queued.")
            return redirect("training:job", pk=job.pk)
    failed = request.method == "POST"
    context = _form_context(form, other_errors=other, estimate=_estimate(form) if form.is_bound else None)
    return render(request, "training_app/job_form.html", context, status=400 if failed else 200)


@role_required("training.submit")
@require_GET
def job_new_fields(request):
    kept = {name: request.GET[name] for name in ALL_METHOD_FIELDS if request.GET.get(name, "") != ""}
    form = FineTuneForm(initial={**DEFAULTS, **kept, "method": request.GET.get("method", "lora")})
    return render(request, "training_app/job_form.html#method-fields", _form_context(form))


@role_required("training.submit")
@require_POST
def job_estimate(request):
    form = FineTuneForm(request.POST)
    form.is_valid()
    return render(request, "training_app/job_form.html#estimate", {"estimate": _estimate(form)})


def _model_config(base) -> dict:
    try:
        return json.loads((Path(base.artifact_uri) / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return {}


def _estimate(form: FineTuneForm) -> dict | None:
    """Rough numbers for the planned run, from the base's config.json and the dataset version's data card."""
    data = getattr(form, "cleaned_data", {})
    base, version = data.get("base"), data.get("dataset_version")
    if not base or not version:
        return None
    cfg = _model_config(base)
    hidden, layers = int(cfg.get("hidden_size") or 0), int(cfg.get("num_hidden_layers") or 0)
    vocab, inter = int(cfg.get("vocab_size") or 0), int(cfg.get("intermediate_size") or 4 * hidden)
    total = layers * (4 * hidden * hidden + 3 * hidden * inter) + 2 * vocab * hidden
    method = data.get("method") or "lora"
    r = data.get("lora_r") or 16
    modules = [m.strip() for m in (data.get("target_modules") or "").split(",") if m.strip()] or ["q", "v"]
    trainable = {
        "lora": 2 * r * hidden * len(modules) * layers, "qlora": 2 * r * hidden * len(modules) * layers,
        "ia3": hidden * len(modules) * layers, "prefix": 2 * layers * hidden * (data.get("num_virtual_tokens") or 20),
        "prompt": hidden * (data.get("num_virtual_tokens") or 20), "full": total,
    }.get(method, 0)  # fmt: skip
    weight_bytes = total * (0.5 if method == "qlora" else 2)
    batch, seq = data.get("batch_size") or 8, data.get("max_seq_len") or 1024
    activations = batch * seq * hidden * layers * 2 * 16
    memory = weight_bytes + trainable * (4 + 4 + 8) + activations
    card = version.card or {}
    tokens_mean = (card.get("tokens_mean") or {}).get("train") or seq
    rows = (version.counts or {}).get("train", 0)
    tokens = float(tokens_mean) * rows * (data.get("epochs") or 1)
    gpus = data.get("gpus") or 1
    speed = settings.TRAINING_TOKENS_PER_SECOND_ESTIMATE * gpus
    seconds = tokens / speed if speed else 0
    price = settings.TRAINING_PRICE_PER_GPU_HOUR
    return {"known": bool(hidden and layers), "total": total, "trainable": trainable, "memory_gb": memory / 2**30,
            "tokens": int(tokens), "minutes": seconds / 60, "cost": seconds / 3600 * gpus * price,
            "price": price, "speed": speed}  # fmt: skip


def _eta(job: FineTuneJob) -> str:
    if job.status != "running" or not job.started_at or not 0 < job.progress < 1:
        return ""
    elapsed = (timezone.now() - job.started_at).total_seconds()
    left = int(elapsed * (1 - job.progress) / job.progress)
    return f"{left // 3600}h {left % 3600 // 60}m {left % 60}s"


def _job_context(request, job: FineTuneJob) -> dict:
    return {"job": job, "eta": _eta(job), "terminal": job.status in TERMINAL,
            "can_submit": has_perm(request.user, "training.submit")}  # fmt: skip


@role_required("training.view")
@require_GET
def job_detail(request, pk: int):
    job = get_object_or_404(_jobs().select_related("result_version__model"), pk=pk)
    context = _job_context(request, job)
    if request.htmx and request.htmx.target == "job-status":
        return render(request, "training_app/job_detail.html#job-status", context)
    config = sorted((job.config or {}).items())
    context.update(config=[(k, json.dumps(v) if not isinstance(v, str) else v) for k, v in config],
                   checkpoints=job_checkpoints(job), charts=CHARTS)  # fmt: skip
    return render(request, "training_app/job_detail.html", context)


@role_required("training.submit")
@require_POST
def job_cancel_view(request, pk: int):
    job = get_object_or_404(_jobs(), pk=pk)
    cancel_and_tell(request, model=FineTuneJob, job=job, label=f"job {job.pk}")
    if request.htmx:
        job.refresh_from_db()
        return render(request, "training_app/job_detail.html#job-status", _job_context(request, job))
    return redirect("training:job", pk=job.pk)


@role_required("training.view")
@require_GET
def job_compare(request):
    ids = [int(p) for p in request.GET.get("jobs", "").split(",") if p.strip().isdigit()][:10]
    jobs = list(_jobs().filter(pk__in=ids).order_by("pk"))
    keys = sorted({k for job in jobs for k in (job.config or {})})
    rows = []
    for key in keys:
        values = [json.dumps((job.config or {}).get(key)) for job in jobs]
        rows.append({"key": key, "values": values, "differs": len(set(values)) > 1})
    rows.sort(key=lambda r: (not r["differs"], r["key"]))
    chart_jobs = [{"id": job.pk, "url": f"{job.pk}"} for job in jobs]
    return render(request, "training_app/compare.html",
                  {"jobs": jobs, "rows": rows, "chart_jobs": chart_jobs, "ids": ",".join(map(str, ids))})  # fmt: skip


@role_required("training.view")
def job_metrics(request, pk: int):
    job = get_object_or_404(FineTuneJob, pk=pk)
    names = [n.strip() for n in request.GET.get("names", DEFAULT_SERIES).split(",") if n.strip()][:20]
    try:
        max_points = int(request.GET.get("max_points", MAX_CHART_POINTS))
    except ValueError:
        return JsonResponse({"error": "max_points must be a whole number"}, status=400)
    return JsonResponse(
        {"series": metric_series(job, names, max_points), "status": job.status, "progress": job.progress}
    )
