"""Admin site for the error notebook: the taxonomy and sensitive words are managed here; cases and jobs are read."""

from django.contrib import admin

from datasets_app.models import DedupJob, ErrorCase, ImportJob, SensitiveWord, Tag

JOB_READONLY = [
    "status",
    "created_by",
    "created_at",
    "queued_at",
    "started_at",
    "finished_at",
    "worker_hostname",
    "heartbeat_at",
    "progress",
    "progress_message",
    "error",
    "celery_task_id",
    "attempts",
]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "label", "is_active"]
    list_editable = ["label", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "label"]


@admin.register(SensitiveWord)
class SensitiveWordAdmin(admin.ModelAdmin):
    list_display = ["word", "action", "created_at"]
    list_editable = ["action"]
    list_filter = ["action"]
    search_fields = ["word"]


@admin.register(ErrorCase)
class ErrorCaseAdmin(admin.ModelAdmin):
    """Read-mostly: cases are curated in the notebook, where every change is versioned and recorded."""

    list_display = ["id", "status", "severity", "source", "product", "assignee", "created_at"]
    list_filter = ["status", "severity", "source", "task_type"]
    search_fields = ["id", "product", "feature", "model_version"]
    list_select_related = ["assignee"]
    date_hierarchy = "created_at"
    exclude = ["minhash", "search_text"]
    readonly_fields = [
        f.name
        for f in ErrorCase._meta.get_fields()
        if getattr(f, "concrete", False) and f.name not in ("minhash", "search_text", "tags")
    ] + ["tags"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "filename", "status", "imported", "duplicates", "invalid_lines", "created_at"]
    list_filter = ["status", "file_format", "dry_run"]
    search_fields = ["filename"]
    readonly_fields = JOB_READONLY + ["problems", "preview", "pii_found", "report_path", "rejected_path"]


@admin.register(DedupJob)
class DedupJobAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "threshold", "groups_found", "cases_grouped", "created_at"]
    list_filter = ["status"]
    readonly_fields = JOB_READONLY + ["groups_found", "cases_grouped"]
