"""Models for the serving gateway: a bounded LRU cache of loaded versions, adapters sharing their base.

    from workers.serve import ModelCache, ServeSpec, ServeError
    cache = ModelCache(capacity=2)
    served = cache.get(ServeSpec(key="version:12", path="/artifacts/…", task="causal_lm", fmt="hf"))
    served.chat(messages, GenerateConfig(max_new_tokens=64))            # -> workers.generate.Generation
    for item in served.stream_chat(messages, config): ...                # str deltas, then the Generation

spec.py: ServeSpec and ServeError (no torch, so the web process can build specs and catch errors cheaply);
cache.py: ModelCache (the LRU, loading, adapters on a shared base); served.py: Served (chat / complete, whole or
streamed) and Weights (one resident weight set with its lock).
"""

from importlib import import_module

# Loaded on first use (PEP 562), like workers.generate: importing ServeSpec does not import torch.
_EXPORTS = {
    "ServeSpec": "spec",
    "ServeError": "spec",
    "ModelCache": "cache",
    "Served": "served",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'workers.serve' has no attribute {name!r}")
    return getattr(import_module(f"workers.serve.{_EXPORTS[name]}"), name)
