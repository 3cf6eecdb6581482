"""The fine-tuning engine: plain Python + torch + transformers/peft, never django.

    from workers.train import TrainConfig, train

    config = TrainConfig(
        base_model_path="/artifacts/models/smollm2",   # HF folder, safetensors only
        output_dir="/artifacts/runs/42",
        train_file="train.jsonl", validation_file="validation.jsonl",
        task="chat", method="lora", max_steps=500, eval_every=50, checkpoint_every=100,
    )
    def report(step, **metrics):                        # every log step, rank 0 only
        save_metric_points(step, metrics)
        return "stop" if job_cancel_requested() else None
    result = train(config, report)                      # TrainResult, also <output_dir>/result.json
    result = train(config, report, resume=True)         # after a crash or a cancel: on from the newest checkpoint
    result = launch(config, n_procs=4, backend="nccl", report=report)  # DDP under torchrun

Errors: ``ConfigError(problems: dict[field, list[str]])`` for everything the user can fix (settings, data
lines, target modules unknown to the model, QLoRA without CUDA), raised before heavy work where possible;
``TrainError`` for the rest (missing / unreadable base model, out of memory with a hint, failed workers).

Modules: config (TrainConfig, validation), data (JSONL → tokens, step plan, packing), methods (model loading,
peft), steps (loss, optimizer, FGM, SWA, validation), checkpoint (resumable state), outputs (HF folders,
TrainResult), report (metric names), ddp (processes, launch), loop (train), cli (torchrun entry point).
"""

from importlib import import_module

# Names load their module on first use (PEP 562), so ``workers.train.config`` — plain Python — can be imported by
# the web process to validate a form without this package pulling in torch.
_EXPORTS = {
    "ConfigError": "config",
    "TrainConfig": "config",
    "TrainError": "config",
    "check_against_model": "config",
    "launch": "ddp",
    "train": "loop",
    "TrainResult": "outputs",
    "Report": "report",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'workers.train' has no attribute {name!r}")
    return getattr(import_module(f"workers.train.{_EXPORTS[name]}"), name)
