"""The model cache behind the gateway: one per process, created on the first generation request.

DESIGN says the web process never imports torch; the gateway is the one justified exception, since it serves
models in-process. ``workers.serve`` (and so torch) is imported inside the functions below, never at module level,
so the portal's pages and ``manage.py check`` stay torch-free.
"""

import threading

from django.conf import settings

from registry_app.gateway import metrics
from registry_app.models import ModelVersion, VersionFormat

_lock = threading.Lock()
_cache = None


def model_cache():
    global _cache
    if _cache is None:
        with _lock:
            if _cache is None:
                from workers.serve import ModelCache

                _cache = ModelCache(
                    capacity=settings.GATEWAY_MODEL_CACHE_SIZE, device=settings.GATEWAY_DEVICE or None
                )
    return _cache


def spec_of(version: ModelVersion):
    """What the engine loads for a version: its folder; an adapter names its base, whose weights are shared."""
    from workers.serve import ServeSpec

    base = version.base if version.format == VersionFormat.PEFT_ADAPTER else None
    return ServeSpec(
        key=f"{version.pk}:{version.sha256[:16]}", path=version.artifact_uri, task=version.model.task,
        fmt=version.format, base_key=f"{base.pk}:{base.sha256[:16]}" if base else None,
        base_path=base.artifact_uri if base else None,
    )  # fmt: skip


def served(version: ModelVersion):
    """The loaded model for a version (lazily loaded; LRU-evicted beyond GATEWAY_MODEL_CACHE_SIZE)."""
    cache = model_cache()
    model = cache.get(spec_of(version))
    metrics.LOADED_MODELS.set(len(cache.loaded()))
    return model


def serve_error():
    """The engine's error class (imported lazily, like everything from workers.serve)."""
    from workers.serve import ServeError

    return ServeError
