import hashlib
import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from llmops.jobs import Job


class DiagnosticJob(Job):
    """A job that only sleeps: proves that queues, workers, heartbeats, cancel and the reaper work end to end."""

    TASK = "llmops.diagnostic"

    class Queue(models.TextChoices):
        CPU = "cpu"
        GPU = "gpu"

    seconds = models.FloatField(validators=[MinValueValidator(0), MaxValueValidator(3600)])
    queue = models.CharField(max_length=8, choices=Queue.choices, default=Queue.CPU)
    fail_at_end = models.BooleanField(
        default=False, help_text="Raise an error at the end (tests failure handling)."
    )

    class Meta(Job.Meta):
        verbose_name = "diagnostic job"

    def queue_name(self) -> str:
        return self.queue


TOKEN_PREFIX = "llmops_"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A named API token. Only its sha256 is stored; the token is shown once, when it is created."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="The first characters, to recognise a token in lists.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "name"],
                condition=models.Q(revoked_at__isnull=True),
                name="one_active_token_per_name",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate() -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])


class IdempotencyRecord(models.Model):
    """The first answer to a request made with an Idempotency-Key; a retry gets it back and creates nothing."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    key = models.CharField(max_length=255)
    endpoint = models.CharField(max_length=100)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="one_answer_per_idempotency_key")]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.key}"
