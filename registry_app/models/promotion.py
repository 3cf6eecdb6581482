"""Aliases, gate policies, promotion requests and the append-only audit log.

A family (RegisteredModel) points its aliases at versions: at most one production and one staging version at a
time, any number of candidates and archived ones (``ModelVersion.alias``). Moving production is only done by an
approved PromotionRequest or a rollback; each move is an AliasChange (the production timeline) and an AuditEntry.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Alias(models.TextChoices):
    NONE = "", "none"
    CANDIDATE = "candidate"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"


# Aliases held by one version per family at most (enforced by partial unique constraints on ModelVersion).
SINGLE_ALIASES = (Alias.STAGING, Alias.PRODUCTION)
PROMOTION_TARGETS = (Alias.STAGING, Alias.PRODUCTION)


class GatePolicy(models.Model):
    """A family's promotion gate: ``items`` maps a gate item key (registry_app.gate.ITEMS) to its threshold.

    A key that is absent or null is not checked. Architects edit it; every change is audited.
    """

    model = models.OneToOneField(
        "registry_app.RegisteredModel", on_delete=models.CASCADE, related_name="gate"
    )
    items = models.JSONField(default=dict, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"gate policy of {self.model}"


class RequestStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class PromotionRequest(models.Model):
    """A data scientist asks to move a version to staging or production; an architect decides."""

    version = models.ForeignKey(
        "registry_app.ModelVersion", on_delete=models.PROTECT, related_name="promotion_requests"
    )
    target = models.CharField(max_length=10, choices=[(a.value, a.label) for a in PROMOTION_TARGETS])
    status = models.CharField(max_length=10, choices=RequestStatus.choices, default=RequestStatus.PENDING)
    comment = models.TextField(blank=True, help_text="Why the requester wants it promoted.")
    report = models.ForeignKey(
        "evaluation_app.ComparisonReport", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The comparison with the current production version the gate was evaluated on.",
    )  # fmt: skip
    gate = models.JSONField(
        default=list, blank=True, help_text="Gate results at request time (gate.evaluate)."
    )
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)
    overrides = models.JSONField(
        default=dict, blank=True, help_text="Failed gate item key -> the architect's written reason."
    )

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["status", "-requested_at"])]

    def __str__(self) -> str:
        return f"promotion #{self.pk}: {self.version} to {self.target}"

    @property
    def is_open(self) -> bool:
        return self.status == RequestStatus.PENDING


class AliasChange(models.Model):
    """One move of an alias: the production timeline and the basis of rollback."""

    model = models.ForeignKey(
        "registry_app.RegisteredModel", on_delete=models.CASCADE, related_name="alias_changes"
    )
    alias = models.CharField(max_length=10, choices=Alias.choices)
    version = models.ForeignKey("registry_app.ModelVersion", on_delete=models.PROTECT, related_name="+")
    previous = models.ForeignKey(
        "registry_app.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.CharField(max_length=20, help_text="promotion | rollback | manual")
    request = models.ForeignKey(
        PromotionRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.model} {self.alias} -> {self.version}"


class AuditImmutable(Exception):
    """The audit log is append-only."""


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AuditImmutable("the audit log is append-only: entries cannot be updated")

    def delete(self):
        raise AuditImmutable("the audit log is append-only: entries cannot be deleted")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AuditImmutable("the audit log is append-only: entries cannot be updated")


class AuditEntry(models.Model):
    """Who did what, when, with a snapshot (gate results, old and new values). Never updated, never deleted:
    the model refuses it, the admin offers no path, and on PostgreSQL a trigger refuses UPDATE and DELETE."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(
        max_length=40, help_text="e.g. promotion.requested, promotion.approved, rollback"
    )
    model = models.ForeignKey(
        "registry_app.RegisteredModel", null=True, blank=True, on_delete=models.PROTECT, related_name="audit"
    )
    version = models.ForeignKey(
        "registry_app.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="audit"
    )
    request = models.ForeignKey(
        PromotionRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="audit"
    )
    comment = models.TextField(blank=True)
    snapshot = models.JSONField(default=dict, blank=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None or kwargs.get("force_update"):
            raise AuditImmutable("the audit log is append-only: entries cannot be updated")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditImmutable("the audit log is append-only: entries cannot be deleted")
