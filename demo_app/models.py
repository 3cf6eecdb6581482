"""The guided demo run: one row per run of the loop (seed → dataset version → LoRA fine-tune → evaluation against
the base → promotion request), a Job like every other so the portal's queues, heartbeats and reaper carry it.

The run links every object it made (the progress page shows them as they appear) and keeps its step log and final
numbers as JSON. What it does is in ``demo_app.loop``.
"""

from django.conf import settings
from django.db import models

from llmops.jobs import Job


class DemoModel(models.TextChoices):
    MINILM = "minilm", "all-MiniLM-L6-v2 intent router (classification)"
    SMOLLM2 = "smollm2", "SmolLM2-135M-Instruct support assistant (chat, slower)"
    TINY_BERT = "tiny-bert", "tiny BERT classifier (tests)"
    TINY = "tiny", "tiny offline Llama (chat, seconds)"


class DemoRun(Job):
    """The loop on one demo base. ``run_as`` is who files the dataset, the jobs and the promotion request (the demo
    data scientist); ``created_by`` is who started it."""

    TASK = "demo.loop"
    QUEUE = "gpu"  # it trains

    model_key = models.CharField(max_length=16, choices=DemoModel.choices, default=DemoModel.MINILM)
    steps = models.PositiveIntegerField(
        null=True, blank=True, help_text="Optimizer steps; empty: the default."
    )
    run_as = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dataset_version = models.ForeignKey(
        "datasets_app.DatasetVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    fine_tune = models.ForeignKey(
        "training_app.FineTuneJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    report = models.ForeignKey(
        "evaluation_app.ComparisonReport", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    promotion = models.ForeignKey(
        "registry_app.PromotionRequest", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    log = models.JSONField(default=list, blank=True, help_text="[{at, step, message}] as the run went.")
    summary = models.JSONField(default=dict, blank=True, help_text="The final numbers.")

    class Meta(Job.Meta):
        verbose_name = "demo run"
