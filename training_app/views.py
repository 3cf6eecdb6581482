"""Training pages: for now the chart data of one job (downsampled, ≤ 2k points per series)."""

from django.http import JsonResponse
from django.shortcuts import get_object_or_404

from llmops.roles import role_required
from training_app.models import FineTuneJob
from training_app.selectors import MAX_CHART_POINTS, metric_series

DEFAULT_SERIES = "train_loss,val_loss"


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
