"""The compression engine: quantisation, pruning and distillation. Plain Python + torch, never django.

    from workers.compress import CompressConfig, compress, load_model

    config = CompressConfig(method="int8_dynamic", model_path="models/minilm-ft", output_dir="runs/c1",
                            task="classification")
    result = compress(config, report)            # CompressResult, also <output_dir>/result.json
    model, tokenizer = load_model(result.model_path, task="classification")   # any result folder reloads

``report(step=..., **metrics)`` is the training engine's callback (workers.train.report): it may answer "stop".

Modules: config (CompressConfig, validation, hardware and shape checks — torch-free), result (CompressResult),
quantize (INT8 dynamic, INT8 / INT4 weight-only; saving), load (reloading any result), prune (magnitude and 2:4
masks), structure (heads, MLP channels, layers, width; students), finetune (recovery and distillation loop),
measure (size, parameters, memory, latency, throughput), run (compress).
"""

from importlib import import_module

# Names load their module on first use (PEP 562): ``workers.compress.config`` is imported by the web process.
_EXPORTS = {
    "CompressConfig": "config",
    "CompressError": "config",
    "ConfigError": "config",
    "check_hardware": "config",
    "check_shapes": "config",
    "CompressResult": "result",
    "compress": "run",
    "load_model": "load",
    "benchmark": "measure",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'workers.compress' has no attribute {name!r}")
    return getattr(import_module(f"workers.compress.{_EXPORTS[name]}"), name)
