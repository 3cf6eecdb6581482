"""Batched generation for evaluation (the design and its measurements: workers/generate/decode.py).

    model, tokenizer = load_causal("runs/7/adapter", base_dir="base-models/smollm2")   # merged for speed
    prompts = [prompt_ids(tokenizer, example["messages"]) for example in examples]
    outputs = generate(model, tokenizer, prompts, GenerateConfig(max_new_tokens=64, stop=["\\n\\n"]))
    nll = reference_nll(model, tokenizer, prompts, references)     # (sum of NLL, tokens) -> perplexity

config.py: GenerateConfig, Generation and the errors (no torch); loading.py: load_causal, prompt_ids,
peak_memory_bytes, folder_size_bytes; decode.py: generate and reference_nll.
"""

from importlib import import_module

# Loaded on first use (PEP 562): ``workers.generate.config`` validates settings in the web process without torch.
_EXPORTS = {
    **dict.fromkeys(("GenerateConfig", "GenerateError", "Generation", "GenerationStopped"), "config"),
    **dict.fromkeys(("TIE_RTOL", "_Decoder", "generate", "plan_batches", "reference_nll"), "decode"),
    **dict.fromkeys(("folder_size_bytes", "load_causal", "peak_memory_bytes", "prompt_ids"), "loading"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'workers.generate' has no attribute {name!r}")
    return getattr(import_module(f"workers.generate.{_EXPORTS[name]}"), name)
