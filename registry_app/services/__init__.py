"""Registry writes, one module per concern: versions (registering), promotion (requests, decisions, aliases,
rollback, gate policies), deployments (A/B splits), exports. Import from the module that owns the function."""

from registry_app.services.versions import (
    base_model_ensure,
    base_model_register,
    derived_version_register,
    model_folder_problems,
)

__all__ = ["base_model_ensure", "base_model_register", "derived_version_register", "model_folder_problems"]
