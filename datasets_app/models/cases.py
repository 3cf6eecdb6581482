"""The error notebook: cases the product answered badly, their taxonomy, history, comments and imports."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from llmops.jobs import Job


class Tag(models.Model):
    """A category of failure (hallucination, terminology, ...). Managed by admins."""

    name = models.SlugField(
        max_length=50, unique=True, help_text="Lowercase, underscores: used in files and the API."
    )
    label = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.label or self.name


class SensitiveWord(models.Model):
    """A word the admins want masked (replaced by *) or flagged (kept, the case is marked) at ingest."""

    class Action(models.TextChoices):
        MASK = "mask"
        FLAG = "flag"

    word = models.CharField(max_length=100, unique=True)
    action = models.CharField(max_length=8, choices=Action.choices, default=Action.MASK)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["word"]

    def __str__(self) -> str:
        return f"{self.word} ({self.action})"


class CaseStatus(models.TextChoices):
    NEW = "new"
    TRIAGED = "triaged"
    CORRECTED = "corrected"
    APPROVED = "approved"
    REJECTED = "rejected"


CASE_TRANSITIONS: dict[str, frozenset[str]] = {
    CaseStatus.NEW: frozenset({CaseStatus.TRIAGED, CaseStatus.CORRECTED, CaseStatus.REJECTED}),
    CaseStatus.TRIAGED: frozenset({CaseStatus.NEW, CaseStatus.CORRECTED, CaseStatus.REJECTED}),
    CaseStatus.CORRECTED: frozenset({CaseStatus.TRIAGED, CaseStatus.APPROVED, CaseStatus.REJECTED}),
    CaseStatus.APPROVED: frozenset({CaseStatus.CORRECTED}),
    CaseStatus.REJECTED: frozenset({CaseStatus.NEW}),
}


class Severity(models.TextChoices):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Source(models.TextChoices):
    USER_FEEDBACK = "user_feedback", "user feedback"
    MONITORING = "monitoring"
    MANUAL = "manual"
    API = "api", "API"
    IMPORT = "import"


class TaskType(models.TextChoices):
    CHAT = "chat"
    CLASSIFICATION = "classification"
    EXTRACTION = "extraction"


class ErrorCase(models.Model):
    messages = models.JSONField(
        default=list, help_text="The conversation before the bad answer: [{role, content}]."
    )
    bad_output = models.TextField()
    expected_output = models.TextField(
        blank=True, help_text="The corrected answer (the label, for classification)."
    )
    task_type = models.CharField(max_length=16, choices=TaskType.choices, default=TaskType.CHAT)
    tags = models.ManyToManyField(Tag, blank=True, related_name="cases")
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.MEDIUM)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.MANUAL)
    product = models.CharField(max_length=100, blank=True)
    feature = models.CharField(max_length=100, blank=True)
    model_version = models.CharField(
        max_length=200, blank=True, help_text="Free text until the registry links it."
    )
    status = models.CharField(max_length=10, choices=CaseStatus.choices, default=CaseStatus.NEW)
    rejection_reason = models.TextField(blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_cases",
        db_index=False,  # (assignee, id) below serves it
    )
    metadata = models.JSONField(default=dict, blank=True)
    flags = models.JSONField(default=list, blank=True, help_text="e.g. sensitive words found at ingest.")
    fingerprint = models.CharField(max_length=64, help_text="sha256 of the normalised content.")
    search_text = models.TextField(
        blank=True, help_text="Normalised tokens (CJK bigrams) for full-text search."
    )
    minhash = models.BinaryField(null=True, blank=True, editable=False)
    near_dup_group = models.BigIntegerField(null=True, blank=True)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged", db_index=False
    )
    import_job = models.ForeignKey(
        "ImportJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    version = models.PositiveIntegerField(
        default=1, help_text="Bumped by every edit; a stale edit is refused."
    )
    # No index on who created or updated a case, or on its import: nothing lists cases by them, and every index
    # costs each imported row (deleting a user then scans the table; users are deactivated, not deleted).
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(default=timezone.now)  # case_live_created below serves date filters
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "-id"], name="case_status_id"),
            models.Index(fields=["severity", "-id"], name="case_severity_id"),
            models.Index(fields=["source", "-id"], name="case_source_id"),
            models.Index(fields=["product", "-id"], name="case_product_id"),
            models.Index(fields=["assignee", "-id"], name="case_assignee_id"),
            # date filters of the list: the live cases of a date range, their ids read from the index alone
            models.Index(
                fields=["created_at", "id"], condition=Q(merged_into=None), name="case_live_created"
            ),
            models.Index(fields=["fingerprint"], name="case_fingerprint"),  # exact duplicates (no LIKE twin)
            # mostly NULL: partial indexes hold only the cases that have a value
            models.Index(
                fields=["near_dup_group"], condition=Q(near_dup_group__isnull=False), name="case_dup_group"
            ),
            models.Index(
                fields=["merged_into"], condition=Q(merged_into__isnull=False), name="case_merged_into"
            ),
        ]

    def __str__(self) -> str:
        return f"case #{self.pk}"

    @property
    def user_input(self) -> str:
        """The last user turn: what the list shows as the case's input."""
        users = [m["content"] for m in self.messages if m.get("role") == "user"]
        return users[-1] if users else ""

    def can_move_to(self, status: str) -> bool:
        return status in CASE_TRANSITIONS[self.status]


class CaseEvent(models.Model):
    """Append-only history: who changed which field from what to what, and when."""

    case = models.ForeignKey(ErrorCase, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, db_index=False
    )
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=16)  # created, edited, status, comment, merged, imported
    changes = models.JSONField(default=dict, blank=True)  # {field: [old, new]}
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} on case #{self.case_id} at {self.at:%Y-%m-%d %H:%M}"


class CaseComment(models.Model):
    case = models.ForeignKey(ErrorCase, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"comment on case #{self.case_id}"


class ImportJob(Job):
    """An upload of cases (JSONL or CSV); small files run inline, big ones on a cpu worker."""

    TASK = "datasets.import_cases"
    QUEUE = "cpu"

    filename = models.CharField(max_length=255)
    path = models.CharField(max_length=500, blank=True, help_text="The stored upload; deleted once imported.")
    size_bytes = models.BigIntegerField(default=0)
    file_format = models.CharField(max_length=8, blank=True)
    encoding = models.CharField(max_length=20, blank=True)
    dry_run = models.BooleanField(default=False)
    skip_invalid = models.BooleanField(default=False)
    scrub_pii = models.BooleanField(default=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.IMPORT)
    lines_read = models.PositiveIntegerField(default=0)
    imported = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    invalid_lines = models.PositiveIntegerField(default=0)
    problems = models.JSONField(
        default=list, blank=True, help_text="The first problems: [{line, field, reason}]."
    )
    preview = models.JSONField(default=list, blank=True, help_text="The first rows as they will be stored.")
    pii_found = models.JSONField(default=dict, blank=True)
    report_path = models.CharField(max_length=500, blank=True)
    rejected_path = models.CharField(max_length=500, blank=True)

    class Meta(Job.Meta):
        verbose_name = "import job"


class DedupJob(Job):
    """Finds near-duplicate cases (MinHash LSH) and records their groups."""

    TASK = "datasets.find_near_duplicates"
    QUEUE = "cpu"

    threshold = models.FloatField(default=0.8)
    groups_found = models.PositiveIntegerField(default=0)
    cases_grouped = models.PositiveIntegerField(default=0)

    class Meta(Job.Meta):
        verbose_name = "near-duplicate job"


class CaseStatusCount(models.Model):
    """Cases per status (merged ones excluded), kept exact by statement-level triggers on PostgreSQL."""

    status = models.CharField(max_length=10, primary_key=True)
    n = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.status}: {self.n}"
