"""Model registry: RegisteredModel and its immutable ModelVersions (base uploads, fine-tunes, compressions).

A version is a folder under ARTIFACT_ROOT (Hugging Face format, safetensors only) with the sha256 of its manifest
and its lineage: which base, which dataset version, which job and which settings produced it. Later issues add
aliases (registry_app.models.promotion) and serving (registry_app.models.serving) on top.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from llmops.jobs import Job
from registry_app.models.promotion import SINGLE_ALIASES, Alias


class ModelTask(models.TextChoices):
    CAUSAL_LM = "causal_lm", "causal language model"
    CLASSIFICATION = "classification", "sequence classification"


class VersionSource(models.TextChoices):
    BASE = "base"
    FINE_TUNE = "fine_tune"
    COMPRESSION = "compression"


class VersionFormat(models.TextChoices):
    HF = "hf", "Hugging Face model folder"
    PEFT_ADAPTER = "peft_adapter", "PEFT adapter (needs its base)"
    QUANTIZED = "quantized", "quantised model (reloaded by workers.compress.load_model)"


class RegisteredModel(models.Model):
    name = models.CharField(max_length=100, unique=True)
    task = models.CharField(max_length=16, choices=ModelTask.choices)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    source = models.CharField(max_length=12, choices=VersionSource.choices)
    artifact_uri = models.CharField(max_length=500, help_text="The folder holding the model or adapter.")
    format = models.CharField(max_length=12, choices=VersionFormat.choices, default=VersionFormat.HF)
    base = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="derived",
        help_text="The version an adapter applies to (or the model a fine-tune started from).",
    )  # fmt: skip
    sha256 = models.CharField(
        max_length=64, help_text="sha256 of the folder's sorted manifest of file hashes."
    )
    size_bytes = models.BigIntegerField(default=0)
    lineage = models.JSONField(
        default=dict, blank=True, help_text="{base_version, dataset_version, job, config}"
    )
    alias = models.CharField(
        max_length=10, blank=True, default="", choices=Alias.choices,
        help_text="candidate / staging / production / archived; one staging and one production per family.",
    )  # fmt: skip
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="model_version_number"),
            models.UniqueConstraint(
                fields=["model", "alias"],
                condition=models.Q(alias__in=[a.value for a in SINGLE_ALIASES]),
                name="one_version_per_single_alias",
            ),  # fmt: skip
        ]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.number}"

    @property
    def openai_id(self) -> str:
        """The id clients send to the gateway to pin this version."""
        return f"{self.model.name}:v{self.number}"


class ImportSource(models.TextChoices):
    FOLDER = "folder", "a folder on the portal's storage"
    HUB = "hub", "a Hugging Face hub id"


class BaseImport(Job):
    """Register a base model from a folder or a Hugging Face id, on the cpu queue (a hub download takes a while)."""

    TASK = "registry.import_base"
    QUEUE = "cpu"

    name = models.CharField(max_length=100, help_text="The registered model it becomes a base version of.")
    task = models.CharField(max_length=16, choices=ModelTask.choices)
    source = models.CharField(max_length=8, choices=ImportSource.choices)
    location = models.CharField(max_length=500, help_text="The folder, or the hub id (owner/name).")
    revision = models.CharField(
        max_length=100, blank=True, help_text="Hub branch, tag or commit; main if empty."
    )
    result_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta(Job.Meta):
        verbose_name = "base model import"
