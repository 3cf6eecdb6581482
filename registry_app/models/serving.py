"""Serving: client applications and their tokens, deployments with A/B variants, the per-request log, feedback,
and export jobs for other serving stacks.

A client calls ``/v1/chat/completions`` with ``model`` set to a deployment name (a family's name when it has no
deployment: the production alias, 100%) or a pinned version id ``family:vN``.
"""

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from llmops.jobs import Job

CLIENT_TOKEN_PREFIX = "llmops_app_"


class ClientApp(models.Model):
    """A product that calls the gateway. Its tokens authenticate it; its rate limit bounds it."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    rate_limit_per_minute = models.PositiveIntegerField(
        default=600, help_text="Requests per minute over all of its tokens; 0 means no limit."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


def hash_client_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ClientToken(models.Model):
    """Only the sha256 is stored; the token is shown once. Expired or revoked tokens answer 401."""

    app = models.ForeignKey(ClientApp, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=20)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.app}: {self.name} ({self.prefix}…)"

    @staticmethod
    def generate() -> str:
        return CLIENT_TOKEN_PREFIX + secrets.token_urlsafe(32)

    def usable(self, now=None) -> bool:
        now = now or timezone.now()
        return (
            self.revoked_at is None
            and (self.expires_at is None or self.expires_at > now)
            and self.app.is_active
        )


class DeploymentStatus(models.TextChoices):
    RUNNING = "running", "running (traffic split between the variants)"
    STOPPED = "stopped", "stopped (all traffic to production)"


class Deployment(models.Model):
    """What a client's ``model`` name serves: the family's production alias, optionally split with candidates."""

    name = models.SlugField(max_length=100, unique=True, help_text="The `model` clients send.")
    model = models.ForeignKey(
        "registry_app.RegisteredModel", on_delete=models.PROTECT, related_name="deployments"
    )
    status = models.CharField(
        max_length=8, choices=DeploymentStatus.choices, default=DeploymentStatus.RUNNING
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DeploymentVariant(models.Model):
    """One arm of a deployment. ``version`` null means "whatever the family's production alias points at"."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="variants")
    label = models.CharField(max_length=40, help_text="e.g. production, candidate-1")
    version = models.ForeignKey(
        "registry_app.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="variants"
    )
    weight = models.PositiveIntegerField(
        help_text="Share of traffic, relative to the other variants' weights."
    )
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["deployment", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["deployment", "label"], name="variant_label_unique")]

    def __str__(self) -> str:
        return f"{self.deployment}/{self.label} ({self.weight})"


class Endpoint(models.TextChoices):
    CHAT = "chat", "/v1/chat/completions"
    COMPLETION = "completion", "/v1/completions"


class ServedResponse(models.Model):
    """One gateway request: who asked, which variant and version answered, how fast, at what cost.

    Every request gets a row (the A/B dashboard and feedback read them); the conversation and answer are kept,
    PII-scrubbed, only for sampled requests (GATEWAY_LOG_SAMPLE_RATE), or briefly in Redis for feedback.
    """

    id = models.CharField(primary_key=True, max_length=64, help_text="The response id the client saw.")
    app = models.ForeignKey(ClientApp, null=True, on_delete=models.SET_NULL, related_name="+")
    deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="responses"
    )
    variant = models.CharField(max_length=40, blank=True)
    version = models.ForeignKey(
        "registry_app.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="responses",
    )
    endpoint = models.CharField(max_length=10, choices=Endpoint.choices)
    user_hash = models.CharField(
        max_length=16, blank=True, help_text="A hash of the end user's id, never the id."
    )
    status_code = models.PositiveSmallIntegerField(default=200)
    error = models.CharField(max_length=200, blank=True)
    latency_ms = models.FloatField(default=0.0)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached = models.BooleanField(default=False)
    streamed = models.BooleanField(default=False)
    sampled = models.BooleanField(default=False)
    messages = models.JSONField(
        default=list, blank=True, help_text="Scrubbed conversation (sampled requests)."
    )
    answer = models.TextField(blank=True, help_text="Scrubbed answer (sampled requests).")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["deployment", "created_at"], name="served_deployment_time"),
            models.Index(fields=["version", "created_at"], name="served_version_time"),
        ]

    def __str__(self) -> str:
        return self.id


class Rating(models.TextChoices):
    UP = "up", "thumbs up"
    DOWN = "down", "thumbs down"


class Feedback(models.Model):
    response = models.ForeignKey(ServedResponse, on_delete=models.CASCADE, related_name="feedback")
    rating = models.CharField(max_length=4, choices=Rating.choices)
    correction = models.TextField(blank=True)
    comment = models.TextField(blank=True)
    case = models.ForeignKey(
        "datasets_app.ErrorCase", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    app = models.ForeignKey(ClientApp, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.rating} on {self.response_id}"


class ExportKind(models.TextChoices):
    MERGED_HF = "merged_hf", "merged Hugging Face folder"
    ONNX = "onnx", "ONNX (classifiers)"
    TRITON = "triton", "Triton Inference Server model repository (Python backend)"


class ExportJob(Job):
    """Write a version out for another serving stack, on the cpu queue."""

    TASK = "registry.export"
    QUEUE = "cpu"

    version = models.ForeignKey("registry_app.ModelVersion", on_delete=models.PROTECT, related_name="exports")
    kind = models.CharField(max_length=10, choices=ExportKind.choices)
    result_uri = models.CharField(max_length=500, blank=True)
    result_sha256 = models.CharField(max_length=64, blank=True)
    result_bytes = models.BigIntegerField(default=0)

    class Meta(Job.Meta):
        verbose_name = "model export"
