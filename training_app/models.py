"""Fine-tune jobs on the shared Job lifecycle (llmops.jobs), the metric points they report, and hyperparameter
studies whose trials are fine-tune jobs."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from llmops.jobs import IllegalTransition, Job


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
    study = models.ForeignKey(
        "training_app.Study", null=True, blank=True, on_delete=models.SET_NULL, related_name="trials"
    )
    trial_number = models.PositiveIntegerField(null=True, blank=True)
    phase = models.CharField(max_length=8, blank=True, help_text="A study trial's phase: coarse or fine.")
    pruned = models.BooleanField(default=False, help_text="Stopped by the study's median pruner.")

    class Meta(Job.Meta):
        verbose_name = "fine-tune job"
        constraints = [
            models.UniqueConstraint(
                fields=["study", "trial_number"],
                condition=models.Q(study__isnull=False),
                name="fine_tune_one_trial_number_per_study",
            )
        ]


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


class StudyStatus(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Study(models.Model):
    """A hyperparameter search: a coarse TPE phase, then a grid around the best; every trial is a FineTuneJob.

    Nothing of optuna lives between decisions: each one rebuilds an in-memory optuna study from these rows
    (training_app.study_search), so a study holds no worker slot and survives restarts."""

    name = models.CharField(max_length=200)
    base = models.ForeignKey("registry_app.ModelVersion", on_delete=models.PROTECT, related_name="studies")
    dataset_version = models.ForeignKey(
        "datasets_app.DatasetVersion", on_delete=models.PROTECT, related_name="studies"
    )
    method = models.CharField(max_length=12)
    hyperparameters = models.JSONField(default=dict, blank=True, help_text="Fixed settings of every trial.")
    search_space = models.JSONField(help_text='{name: {"type": "log_uniform"|"uniform"|"int"|"choice", ...}}')
    coarse_trials = models.PositiveSmallIntegerField()
    fine_trials = models.PositiveSmallIntegerField(default=0, help_text="Budget of the grid around the best.")
    parallelism = models.PositiveSmallIntegerField(default=1)
    seed = models.IntegerField(default=0)
    prune_startup_trials = models.PositiveSmallIntegerField(
        default=2, help_text="Completed trials needed before the median pruner stops any."
    )
    prune_warmup_steps = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=StudyStatus.choices, default=StudyStatus.RUNNING)
    error = models.TextField(blank=True)
    best_trial = models.ForeignKey(
        FineTuneJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return f"study {self.name} #{self.pk} ({self.status})"

    @property
    def is_running(self) -> bool:
        return self.status == StudyStatus.RUNNING

    def finish(self, status: str, *, best: FineTuneJob | None = None, error: str = "") -> None:
        if not self.is_running:
            raise IllegalTransition(f"{self} has already ended")
        self.status, self.best_trial, self.error, self.finished_at = status, best, error, timezone.now()
        self.save(update_fields=["status", "best_trial", "error", "finished_at"])


class CompressionJob(Job):
    """Quantise, prune or distil a model version on the gpu queue; the result is a new version of the same family,
    benchmarked against its source on the same worker and scored on a chosen dataset version."""

    TASK = "training.compress"
    QUEUE = "gpu"

    source = models.ForeignKey(
        "registry_app.ModelVersion", on_delete=models.PROTECT, related_name="compressions",
        help_text="The version compressed (the teacher, for distillation).",
    )  # fmt: skip
    method = models.CharField(max_length=24)
    config = models.JSONField(help_text="The validated workers.compress.CompressConfig as JSON.")
    dataset_version = models.ForeignKey(
        "datasets_app.DatasetVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Training data of the recovery fine-tune or the distillation.",
    )  # fmt: skip
    student = models.ForeignKey(
        "registry_app.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Distillation into this registered base (else into a smaller copy of the teacher).",
    )  # fmt: skip
    eval_dataset_version = models.ForeignKey(
        "datasets_app.DatasetVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Quality of the source and of the result is measured on this version's eval_split.",
    )  # fmt: skip
    eval_split = models.CharField(max_length=10, default="test")
    result = models.JSONField(default=dict, blank=True, help_text="The engine's CompressResult.")
    result_version = models.ForeignKey(
        "registry_app.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    comparison = models.ForeignKey(
        "evaluation_app.ComparisonReport", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    output_dir = models.CharField(max_length=500, blank=True)

    class Meta(Job.Meta):
        verbose_name = "compression job"


class VersionBenchmark(models.Model):
    """Size, memory, latency and throughput of one model version, measured on one worker (source and result of a
    compression are measured side by side, so their ratio is fair)."""

    version = models.ForeignKey(
        "registry_app.ModelVersion", on_delete=models.CASCADE, related_name="benchmarks"
    )
    job = models.ForeignKey(
        CompressionJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="benchmarks"
    )
    role = models.CharField(max_length=10, help_text="source or compressed, within its job")
    hostname = models.CharField(max_length=255, blank=True)
    device = models.CharField(max_length=16, default="cpu")
    size_bytes = models.BigIntegerField(default=0)
    parameters = models.BigIntegerField(default=0)
    peak_memory_bytes = models.BigIntegerField(default=0)
    p50_b1_ms = models.FloatField(null=True, blank=True)
    p95_b1_ms = models.FloatField(null=True, blank=True)
    p50_b8_ms = models.FloatField(null=True, blank=True)
    p95_b8_ms = models.FloatField(null=True, blank=True)
    throughput = models.FloatField(null=True, blank=True, help_text="Items per second at batch 8.")
    measured = models.JSONField(default=dict, help_text="workers.compress.measure.benchmark's whole answer.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"benchmark of {self.version} on {self.hostname or self.device}"
