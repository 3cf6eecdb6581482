"""Admin site for the registry: families, versions, gate policies and promotion requests are read here (their
changes go through the services, which audit them); the audit log has no add, change or delete path at all."""

from django.contrib import admin

from registry_app.models import AuditEntry, GatePolicy, ModelVersion, PromotionRequest, RegisteredModel


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = ["name", "task", "created_at"]
    search_fields = ["name"]


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "source", "format", "alias", "size_bytes", "created_at"]
    list_filter = ["source", "format", "alias"]
    search_fields = ["model__name", "sha256"]


@admin.register(GatePolicy)
class GatePolicyAdmin(ReadOnlyAdmin):
    list_display = ["model", "items", "updated_by", "updated_at"]


@admin.register(PromotionRequest)
class PromotionRequestAdmin(ReadOnlyAdmin):
    list_display = ["pk", "version", "target", "status", "requested_by", "requested_at", "decided_by"]
    list_filter = ["status", "target"]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["at", "action", "actor", "model", "version", "request"]
    list_filter = ["action"]
    search_fields = ["action", "comment"]
    actions = None  # not even the bulk "delete selected" action
