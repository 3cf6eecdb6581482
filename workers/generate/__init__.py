"""Batched generation for evaluation (the design and its measurements: workers/generate/decode.py).

    model, tokenizer = load_causal("runs/7/adapter", base_dir="base-models/smollm2")   # merged for speed
    prompts = [prompt_ids(tokenizer, example["messages"]) for example in examples]
    outputs = generate(model, tokenizer, prompts, GenerateConfig(max_new_tokens=64, stop=["\\n\\n"]))
    nll = reference_nll(model, tokenizer, prompts, references)     # (sum of NLL, tokens) -> perplexity

config.py: GenerateConfig, Generation and the errors (no torch); loading.py: load_causal, prompt_ids,
peak_memory_bytes, folder_size_bytes; decode.py: generate and reference_nll.
"""

from workers.generate.config import GenerateConfig, GenerateError, Generation, GenerationStopped
from workers.generate.decode import TIE_RTOL, _Decoder, generate, plan_batches, reference_nll
from workers.generate.loading import folder_size_bytes, load_causal, peak_memory_bytes, prompt_ids

__all__ = [
    "TIE_RTOL",
    "GenerateConfig",
    "GenerateError",
    "Generation",
    "GenerationStopped",
    "_Decoder",
    "folder_size_bytes",
    "generate",
    "load_causal",
    "peak_memory_bytes",
    "plan_batches",
    "prompt_ids",
    "reference_nll",
]
