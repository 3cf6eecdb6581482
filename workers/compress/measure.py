"""Benchmarking a model version against its source on the same machine: size on disk, parameters, peak memory,
load time, latency p50/p95/mean at each batch size, throughput (and new tokens/s for a causal LM).

    src = benchmark("models/minilm-ft", "classification", texts=texts)          # a fresh child process
    out = benchmark("runs/c1/model", "classification", texts=texts)
    compare(src, out)          # {"size_ratio": 0.27, "speedup": {"1": 1.9, "8": 2.4}, ...}
    src, out = benchmark_pair("models/minilm-ft", "runs/c1/model", "classification", texts=texts, rounds=3)

What is timed: a classifier runs one forward pass per batch (texts tokenised once beforehand, right-padded as
workers.classify does); a causal LM generates ``max_new_tokens`` greedy tokens per row (prefill + decode with
the KV cache, the latency a serving user sees), the prompts being the texts as chat user messages rendered by
workers.generate.prompt_ids. Generation runs workers.generate's own decoding loop (``_Decoder``) on exactly one
batch with end-of-sequence ignored, so every model does the same work (b x max_new_tokens tokens): a compressed
model that happens to emit eos sooner would otherwise look faster, and ``generate()``'s near-tie re-decoding
(an evaluation guarantee of exactness, ~5% of rows on the tiny random model) would add a random extra decode to
some repeats. Batches are the texts cycled to fill each batch size, so source and compressed see the same input.
Each batch size gets ``warmup`` untimed calls, then ``repeats`` timed ones with the garbage collector off;
p50/p95 are numpy's linear percentiles (workers.evaluate.stats.latency_summary); throughput is items per second
at the largest batch (batch size / mean latency); tokens_per_s is new tokens per second there.

Isolation (``isolate=True``, the default): the measurement runs in a fresh ``python -m workers.compress.measure``
child, so ``peak_memory_bytes`` (the child's ru_maxrss, or torch.cuda.max_memory_allocated on CUDA) is this
model's alone and no warm cache or allocator state carries from one model to the next. ru_maxrss includes the
Python + torch + transformers runtime, so ``model_memory_bytes`` also reports the peak minus the resident set
measured just before loading (the model's weights plus activations). A child that fails sends its message
back and the parent raises CompressError with it; one that dies without a word (killed, out of memory) gives
its exit code and the end of its stderr. In-process (``isolate=False``) peak memory is the whole process's
high-water mark, so it is only an upper bound.

Parameters (``count_parameters``) count every weight once, quantised ones included: the packed weights of
torch.ao dynamic-quantised Linear/Embedding modules are no nn.Parameter (``model.parameters()`` misses them), so
their ``weight()`` and ``bias()`` are counted; torchao tensor subclasses count their logical shape (not the packed
storage), bitsandbytes 4-bit parameters their ``quant_state.shape``. Size on disk is the folder's bytes
(plus the base folder's for an adapter, since serving needs both).

Noise, and why ``benchmark_pair`` alternates: this machine has 2 cores shared with other jobs, and its speed
drifts over minutes, so two models measured one after the other can differ by the drift alone.
``benchmark_pair`` runs the two in rounds of fresh children, alternating which goes first (ABBA...), and keeps
per batch size the median of the round p50s. Measured on all-MiniLM-L6-v2 with a 3-label head (fp32) vs a
torch.ao dynamic-int8 copy, 8 short support texts, batch 1 and 8, 2 threads, warmup 3, repeats 20, 5 trials of
each protocol while other engineers ran test suites on the same 2 cores: see MEASURED below.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from itertools import cycle, islice
from pathlib import Path

from workers.compress.config import TASKS, CompressError, ConfigError

ROOT = Path(__file__).resolve().parents[2]
MAX_CLASSIFIER_TOKENS = 512


# ---- parameters and sizes


def count_parameters(model) -> int:
    """Weights of ``model``, each once (tied weights once), quantised ones at their logical (unpacked) size."""
    import torch

    seen: set[int] = set()
    total = 0
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                total += _logical_numel(p)
        packed = getattr(module, "_packed_params", None)
        if packed is not None and id(packed) not in seen and callable(getattr(module, "weight", None)):
            seen.add(id(packed))  # torch.ao dynamic quantised Linear / Embedding: weights live packed
            total += module.weight().numel()
            bias = module.bias() if callable(getattr(module, "bias", None)) else None
            total += bias.numel() if isinstance(bias, torch.Tensor) else 0
    return total


def _logical_numel(p) -> int:
    state = getattr(p, "quant_state", None)  # bitsandbytes 4-bit: the stored tensor is packed bytes
    if state is not None and getattr(state, "shape", None) is not None:
        return math.prod(state.shape)
    return math.prod(p.shape)  # torchao subclasses report their logical shape


def size_on_disk(model_path, base_dir=None) -> int:
    from workers.generate.loading import folder_size_bytes

    return folder_size_bytes(model_path) + (folder_size_bytes(base_dir) if base_dir else 0)


# ---- the measurement itself (in whichever process runs it)


def _whole(value, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _check(task, device, texts, batch_sizes, warmup, repeats, max_new_tokens, threads) -> None:
    problems: dict[str, list[str]] = {}
    if task not in TASKS:
        problems["task"] = [f"must be one of {', '.join(TASKS)} (got {task!r})"]
    if device not in ("auto", "cpu", "cuda") and not str(device).startswith("cuda:"):
        problems["device"] = [f"must be cpu, cuda or auto (got {device!r})"]
    if not isinstance(texts, list | tuple) or not texts or not all(isinstance(t, str) and t for t in texts):
        problems["texts"] = ["must be a non-empty list of non-empty strings"]
    sizes = list(batch_sizes) if isinstance(batch_sizes, list | tuple) else []
    if not sizes or not all(_whole(b, 1) for b in sizes):
        problems["batch_sizes"] = [f"must be a non-empty list of integers >= 1 (got {batch_sizes!r})"]
    for name, value, least in (
        ("warmup", warmup, 0),
        ("repeats", repeats, 1),
        ("max_new_tokens", max_new_tokens, 1),
    ):
        if not _whole(value, least):
            problems[name] = [f"must be an integer >= {least} (got {value!r})"]
    if threads is not None and not _whole(threads, 1):
        problems["threads"] = [f"must be an integer >= 1 or None (got {threads!r})"]
    if problems:
        raise ConfigError(problems)


def fill_batch(texts: list[str], size: int) -> list[str]:
    """The first ``size`` texts of ``texts`` repeated as often as needed."""
    return list(islice(cycle(texts), size))


def _rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _classifier_call(model, tokenizer, batch: list[str], device):
    limit = min(MAX_CLASSIFIER_TOKENS, getattr(model.config, "max_position_embeddings", None) or 512)
    tokenizer.padding_side = "right"
    encoded = tokenizer(batch, padding=True, truncation=True, max_length=limit, return_tensors="pt").to(
        device
    )
    return lambda: model(**encoded)


def _causal_call(model, tokenizer, batch: list[str], max_new_tokens: int):
    from workers.generate import GenerateConfig, _Decoder, prompt_ids

    prompts = [prompt_ids(tokenizer, [{"role": "user", "content": text}]) for text in batch]
    longest = max(len(p) for p in prompts) + max_new_tokens
    config = GenerateConfig(
        max_new_tokens=max_new_tokens, max_batch_size=len(batch), max_batch_tokens=longest * len(batch)
    )
    config.validate()
    decoder = _Decoder(model, tokenizer, config)
    decoder.eos = set()  # the same work for every model: exactly max_new_tokens per row
    indices = list(range(len(batch)))
    return lambda: decoder.run(prompts, indices)


def _time(call, device, warmup: int, repeats: int) -> list[float]:
    import torch

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        for _ in range(warmup):
            call()
        sync()
        gc.collect()
        gc.disable()
        try:
            seconds = []
            for _ in range(repeats):
                started = time.perf_counter()
                call()
                sync()
                seconds.append(time.perf_counter() - started)
        finally:
            gc.enable()
    return seconds


def _import_loaders(path, task: str, base_dir) -> None:
    """Import the code loading will run (loaders, the model's class), so that neither load_seconds nor the
    memory baseline counts Python imports; any failure is left for load_model to report."""
    with contextlib.suppress(Exception):
        import transformers

        import workers.classify  # noqa: F401
        import workers.generate.decode  # noqa: F401
        import workers.generate.loading  # noqa: F401

        if (Path(path) / "quantization.json").exists():
            import workers.compress.quantize  # noqa: F401
        config = json.loads((Path(base_dir or path) / "config.json").read_text())
        for name in [*(config.get("architectures") or []), "AutoTokenizer", "DynamicCache"]:
            getattr(transformers, name, None)


def measure(request: dict) -> dict:
    """Run one benchmark in this process; ``request`` holds benchmark()'s arguments (plain JSON values).
    The torch thread count asked for applies during the measurement only."""
    import torch

    before = torch.get_num_threads()
    if request.get("threads"):
        torch.set_num_threads(request["threads"])
    try:
        return _measure(request)
    finally:
        torch.set_num_threads(before)


def _measure(request: dict) -> dict:
    import torch
    import transformers  # noqa: F401 - imported before the memory baseline, which must not count it

    from workers.compress.load import load_model
    from workers.evaluate.stats import latency_summary

    path, task = request["model_path"], request["task"]
    wanted = request.get("device") or "cpu"
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(wanted)
    _import_loaders(path, task, request.get("base_dir"))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = 0 if device.type == "cuda" else _rss_bytes()
    started = time.perf_counter()
    try:
        model, tokenizer = load_model(path, task, base_dir=request.get("base_dir"), device=str(device))
    except Exception as exc:  # noqa: BLE001 - any failure to load is reported with the folder it concerns
        message = str(exc) or type(exc).__name__
        raise CompressError(message if str(path) in message else f"cannot load {path}: {message}") from None
    load_seconds = time.perf_counter() - started
    model.eval()
    latency, largest = {}, max(request["batch_sizes"])
    for size in sorted(set(request["batch_sizes"])):
        batch = fill_batch(request["texts"], size)
        if task == "classification":
            call = _classifier_call(model, tokenizer, batch, device)
        else:
            call = _causal_call(model, tokenizer, batch, request["max_new_tokens"])
        summary = latency_summary(_time(call, device, request["warmup"], request["repeats"]))
        latency[str(size)] = {f"{k}_ms": summary[k] * 1000 for k in ("p50", "p95", "mean")}
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else _rss_bytes()
    mean_s = latency[str(largest)]["mean_ms"] / 1000
    texts, new_tokens = request["texts"], request["max_new_tokens"] if task == "causal_lm" else None
    return {
        "model_path": str(path), "task": task, "size_bytes": size_on_disk(path, request.get("base_dir")),
        "parameters": count_parameters(model), "peak_memory_bytes": peak,
        "model_memory_bytes": max(0, peak - before), "load_seconds": load_seconds, "latency": latency,
        "throughput": largest / mean_s if mean_s > 0 else None,
        "tokens_per_s": largest * new_tokens / mean_s if new_tokens and mean_s > 0 else None,
        "threads": torch.get_num_threads(), "device": str(device), "texts": len(texts),
        "texts_sha256": hashlib.sha256(json.dumps(texts).encode()).hexdigest(), "max_new_tokens": new_tokens,
        "isolated": bool(request.get("isolated")),
    }  # fmt: skip


# ---- the public entry points


# fmt: off
def benchmark(
    model_path, task, *, base_dir=None, device="cpu", texts: list[str], batch_sizes=(1, 8), warmup=3, repeats=20,
    max_new_tokens=16, threads=None, isolate=True,
) -> dict:
    # fmt: on
    """Size, parameters, memory, load time, latency per batch size and throughput of one model version."""
    _check(task, device, texts, batch_sizes, warmup, repeats, max_new_tokens, threads)
    request = {
        "model_path": str(model_path), "task": task, "base_dir": str(base_dir) if base_dir else None,
        "device": device, "texts": list(texts), "batch_sizes": list(batch_sizes), "warmup": warmup,
        "repeats": repeats, "max_new_tokens": max_new_tokens, "threads": threads, "isolated": isolate,
    }  # fmt: skip
    return _run_child(request) if isolate else measure(request)


def _run_child(request: dict) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    process = subprocess.run(
        [sys.executable, "-m", "workers.compress.measure", json.dumps(request)],
        capture_output=True, text=True, env=env, cwd=str(ROOT), check=False,
    )  # fmt: skip
    lines = process.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except ValueError:
        answer = None
    if isinstance(answer, dict) and "error" in answer:
        raise CompressError(answer["error"])
    if process.returncode != 0 or not isinstance(answer, dict):
        tail = process.stderr.strip()[-1500:]
        raise CompressError(
            f"benchmark of {request['model_path']} failed (exit code {process.returncode}): {tail or 'no output'}"
        )
    return answer


def compare(source: dict, compressed: dict) -> dict:
    """Compressed relative to source: size/parameter/memory ratios (compressed / source, below 1 is smaller),
    speedup per batch size (source p50 / compressed p50, above 1 is faster), throughput_ratio (compressed /
    source). Raises ValueError when the two were not measured on the same texts and batch sizes."""
    for key in ("texts_sha256", "max_new_tokens", "task"):
        if source.get(key) != compressed.get(key):
            raise ValueError(
                f"the two benchmarks differ in {key}: {source.get(key)!r} vs {compressed.get(key)!r}"
            )
    if set(source["latency"]) != set(compressed["latency"]):
        raise ValueError(
            f"batch sizes differ: {sorted(source['latency'])} vs {sorted(compressed['latency'])}"
        )

    def ratio(a, b):
        return a / b if a is not None and b else None

    return {
        "size_ratio": ratio(compressed["size_bytes"], source["size_bytes"]),
        "parameter_ratio": ratio(compressed["parameters"], source["parameters"]),
        "memory_ratio": ratio(compressed["peak_memory_bytes"], source["peak_memory_bytes"]),
        "model_memory_ratio": ratio(compressed.get("model_memory_bytes"), source.get("model_memory_bytes")),
        "speedup": {
            size: ratio(source["latency"][size]["p50_ms"], compressed["latency"][size]["p50_ms"])
            for size in sorted(source["latency"], key=int)
        },
        "throughput_ratio": ratio(compressed["throughput"], source["throughput"]),
        "tokens_per_s_ratio": ratio(compressed.get("tokens_per_s"), source.get("tokens_per_s")),
    }


def benchmark_pair(
    source_path,
    compressed_path,
    task,
    *,
    source_base_dir=None,
    compressed_base_dir=None,
    rounds=3,
    **options,
) -> tuple[dict, dict]:
    """Both models in ``rounds`` rounds of fresh children, alternating which runs first; per batch size the
    median of the round p50s (p95s, means), medians of throughput and memory. ``options``: benchmark()'s."""
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        raise ConfigError({"rounds": [f"must be an integer >= 1 (got {rounds!r})"]})
    options["isolate"] = True
    runs: dict[str, list[dict]] = {"source": [], "compressed": []}
    paths = {"source": (source_path, source_base_dir), "compressed": (compressed_path, compressed_base_dir)}
    for r in range(rounds):
        for name in ("source", "compressed") if r % 2 == 0 else ("compressed", "source"):
            path, base = paths[name]
            runs[name].append(benchmark(path, task, base_dir=base, **options))
    return combine_rounds(runs["source"]), combine_rounds(runs["compressed"])


def combine_rounds(results: list[dict]) -> dict:
    """One benchmark dict from several of the same model: medians of the varying figures, and each round's p50."""
    out = dict(results[0])
    out["latency"] = {
        size: {
            k: statistics.median(r["latency"][size][k] for r in results)
            for k in ("p50_ms", "p95_ms", "mean_ms")
        }
        for size in results[0]["latency"]
    }
    for key in ("throughput", "tokens_per_s", "peak_memory_bytes", "model_memory_bytes", "load_seconds"):
        values = [r[key] for r in results if r.get(key) is not None]
        out[key] = statistics.median(values) if values else None
    out["rounds"] = len(results)
    out["round_p50_ms"] = {size: [r["latency"][size]["p50_ms"] for r in results] for size in out["latency"]}
    return out


def main(argv: list[str]) -> int:
    """Child entry point: one JSON request as the argument, the result (or {"error": ...}) as stdout's last line."""
    stdout = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):  # library chatter must not mix with the answer
            result = measure(json.loads(argv[0]))
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the parent as a message
        print(json.dumps({"error": str(exc) or type(exc).__name__}), file=stdout, flush=True)
        return 1
    print(json.dumps(result), file=stdout, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
