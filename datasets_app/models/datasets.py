"""Datasets and their immutable versions: what a build read (recipe, sources), what it kept (examples), and how."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from llmops.jobs import Job


class DatasetTask(models.TextChoices):
    CHAT = "chat", "chat SFT (messages)"
    INSTRUCTION = "instruction", "instruction (Alpaca: instruction, input, output)"
    CLASSIFICATION = "classification", "classification (text, label)"
    PREFERENCE = "preference", "preference pairs (prompt, chosen, rejected)"


class Dataset(models.Model):
    """A named line of versions for one product and task type (e.g. "support-bot intents")."""

    name = models.CharField(max_length=100, unique=True)
    product = models.CharField(max_length=100, blank=True)
    task_type = models.CharField(max_length=16, choices=DatasetTask.choices)
    description = models.TextField(blank=True)
    is_general = models.BooleanField(
        default=False, help_text="General-purpose data: its versions can be replayed into other builds."
    )
    eval_rules = models.JSONField(
        default=list,
        blank=True,
        help_text="Code-based rules every evaluation of this dataset's versions applies.",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SourceFile(models.Model):
    """A file uploaded for builds of a dataset; stored once under its sha256, never changed."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="files")
    name = models.CharField(max_length=255, help_text="The uploaded name, for people; never used as a path.")
    path = models.CharField(max_length=500)
    file_format = models.CharField(max_length=12)  # jsonl | csv | parquet | hf (a save_to_disk folder)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField()
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    uploaded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-uploaded_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.sha256[:12]})"


class VersionStatus(models.TextChoices):
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"


class VersionImmutable(Exception):
    pass


class DatasetVersion(models.Model):
    """v1, v2, …: immutable once ready. The recipe holds every source and every setting of the build."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    recipe = models.JSONField()
    status = models.CharField(max_length=10, choices=VersionStatus.choices, default=VersionStatus.BUILDING)
    error = models.TextField(blank=True)
    content_sha256 = models.CharField(max_length=64, blank=True)
    counts = models.JSONField(default=dict, blank=True, help_text="Rows per split.")
    steps = models.JSONField(default=list, blank=True, help_text="Per step: rows in/out, drops by reason.")
    leakage = models.JSONField(default=dict, blank=True)
    card = models.JSONField(
        default=dict, blank=True, help_text="Distributions and histograms for the data card."
    )
    exports = models.JSONField(default=dict, blank=True, help_text="format -> {path, sha256, bytes}")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    built_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["dataset", "-number"]
        constraints = [models.UniqueConstraint(fields=["dataset", "number"], name="dataset_version_number")]

    def __str__(self) -> str:
        return f"{self.dataset.name} v{self.number}"

    @property
    def label(self) -> str:
        return f"v{self.number}"

    def _leave_building(self, status: str, **fields) -> None:
        current = type(self).objects.filter(pk=self.pk).values_list("status", flat=True).first()
        if current != VersionStatus.BUILDING:
            raise VersionImmutable(f"{self} is {current}; a version is built once")
        self.status = status
        for name, value in fields.items():
            setattr(self, name, value)
        self.save(update_fields=["status", *fields])

    def mark_ready(self, **results) -> None:
        self._leave_building(VersionStatus.READY, built_at=timezone.now(), **results)

    def mark_failed(self, error: str) -> None:
        self._leave_building(VersionStatus.FAILED, error=error, built_at=timezone.now())


class DatasetExample(models.Model):
    """One row of a version, as exported, with where it came from.

    A version's rows are COPYed in one go (a million in a big build), so the table carries only the indexes its
    reads need, and no database-side foreign key on `version`: PostgreSQL checks such a key with a query per row
    (a third of the COPY's time, measured in bench/RESULTS.md). The rows are written only by the build, in the
    transaction that holds their version, and Django deletes them with it (on_delete runs in Django, not in the
    database); the composite indexes, which lead with `version`, serve its lookups."""

    version = models.ForeignKey(
        DatasetVersion, on_delete=models.CASCADE, related_name="examples", db_constraint=False, db_index=False
    )
    position = models.PositiveIntegerField(help_text="Order within the version (exports follow it).")
    split = models.CharField(max_length=10)  # train | validation | test
    fields = models.JSONField()
    tokens = models.PositiveIntegerField(default=0)
    origin = models.CharField(max_length=10)  # case | file | version | replay
    ref = models.JSONField(default=dict, help_text='{"case": 12} | {"file": "a.jsonl", "line": 3} | …')
    case = models.ForeignKey(
        "datasets_app.ErrorCase",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # Meta's example_case indexes it (this default index was a second, identical one)
    )
    augmented = models.CharField(max_length=16, blank=True)
    group = models.BigIntegerField(default=-1)
    category = models.CharField(max_length=100, blank=True)
    key = models.CharField(max_length=64, help_text="sha256 of the normalised content.")

    class Meta:
        ordering = ["version", "position"]
        indexes = [
            models.Index(fields=["version", "split", "position"], name="example_version_split"),
            models.Index(fields=["version", "key"], name="example_version_key"),
            models.Index(fields=["case"], name="example_case"),
        ]

    def __str__(self) -> str:
        return f"{self.version} #{self.position} ({self.split})"


class DatasetBuild(Job):
    """The cpu job that builds one version; its log lists what each step did."""

    TASK = "datasets.build_version"
    QUEUE = "cpu"

    version = models.OneToOneField(DatasetVersion, on_delete=models.CASCADE, related_name="build")
    log = models.JSONField(default=list, blank=True, help_text="[{at, step, message}]")

    class Meta(Job.Meta):
        verbose_name = "dataset build"

    def mark_failed(self, error: str) -> None:
        super().mark_failed(error)
        _version_failed(self.version_id, error)

    def mark_cancelled(self) -> None:
        super().mark_cancelled()
        _version_failed(self.version_id, "the build was cancelled")


def _version_failed(version_id: int, error: str) -> None:
    DatasetVersion.objects.filter(pk=version_id, status=VersionStatus.BUILDING).update(
        status=VersionStatus.FAILED, error=error, built_at=timezone.now()
    )
