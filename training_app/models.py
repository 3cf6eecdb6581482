"""Fine-tune jobs on the shared Job lifecycle (llmops.jobs) and the metric points they report."""

from django.db import models
from django.utils import timezone

from llmops.jobs import Job


class FineTuneJob(Job):
    """One fine-tuning run of a registered base version on a ready dataset version, on the gpu queue."""

    TASK = "training.fine_tune"
    QUEUE = "gpu"

    base = models.ForeignKey("registry_app.ModelVersion", on_delete=models.PROTECT, related_name="fine_tunes")
    dataset_version = models.ForeignKey(
        "datasets_app.DatasetVersion", on_delete=models.PROTECT, related_name="fine_tunes"
    )
    method = models.CharField(max_length=12)
    config = models.JSONField(help_text="The validated workers.train.TrainConfig as JSON.")
    gpus = models.PositiveSmallIntegerField(default=1)
    priority = models.SmallIntegerField(default=0)
    tokens_seen = models.BigIntegerField(default=0)
    best_step = models.IntegerField(null=True, blank=True)
    best_checkpoint = models.CharField(max_length=500, blank=True)
    result = models.JSONField(default=dict, blank=True, help_text="The engine's TrainResult, without curves.")
    result_version = models.ForeignKey(
        "registry_app.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    output_dir = models.CharField(max_length=500, blank=True)

    class Meta(Job.Meta):
        verbose_name = "fine-tune job"


class MetricPoint(models.Model):
    """One value of one metric at one optimizer step; written in batches, read downsampled."""

    job = models.ForeignKey(FineTuneJob, on_delete=models.CASCADE, related_name="metric_points")
    step = models.IntegerField()
    name = models.CharField(max_length=32)
    value = models.FloatField()
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["job", "name", "step"], name="metric_job_name_step")]

    def __str__(self) -> str:
        return f"{self.name}@{self.step}={self.value:g}"
