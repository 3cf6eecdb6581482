"""The registry's tables: versions (families, versions, base imports), promotion (aliases, gates, requests,
audit log) and serving (client apps, deployments, request log, feedback, exports)."""

from registry_app.models.promotion import (
    PROMOTION_TARGETS,
    SINGLE_ALIASES,
    Alias,
    AliasChange,
    AuditEntry,
    AuditImmutable,
    GatePolicy,
    PromotionRequest,
    RequestStatus,
)
from registry_app.models.serving import (
    CLIENT_TOKEN_PREFIX,
    ClientApp,
    ClientToken,
    Deployment,
    DeploymentStatus,
    DeploymentVariant,
    Endpoint,
    ExportJob,
    ExportKind,
    Feedback,
    Rating,
    ServedResponse,
    hash_client_token,
)
from registry_app.models.versions import (
    BaseImport,
    ImportSource,
    ModelTask,
    ModelVersion,
    RegisteredModel,
    VersionFormat,
    VersionSource,
)

__all__ = [
    "PROMOTION_TARGETS", "SINGLE_ALIASES", "Alias", "AliasChange", "AuditEntry", "AuditImmutable", "GatePolicy",
    "PromotionRequest", "RequestStatus", "CLIENT_TOKEN_PREFIX", "ClientApp", "ClientToken", "Deployment",
    "DeploymentStatus", "DeploymentVariant", "Endpoint", "ExportJob", "ExportKind", "Feedback", "Rating",
    "ServedResponse", "hash_client_token", "BaseImport", "ImportSource", "ModelTask", "ModelVersion",
    "RegisteredModel", "VersionFormat", "VersionSource",
]  # fmt: skip
