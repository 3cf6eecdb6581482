from django.contrib import admin

from llmops.models import ApiToken, DiagnosticJob


@admin.register(DiagnosticJob)
class DiagnosticJobAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "queue", "seconds", "worker_hostname", "attempts", "created_at"]
    list_filter = ["status", "queue"]
    readonly_fields = ["celery_task_id", "heartbeat_at", "started_at", "finished_at", "worker_hostname"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]
    search_fields = ["name", "user__username"]
