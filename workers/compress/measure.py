"""Benchmarking a model version against its source on the same machine: size on disk, parameters, peak memory,
load time, latency p50/p95/mean at each batch size, throughput (and new tokens/s for a causal LM).

    src, out = benchmark_pair("models/minilm-ft", "runs/c1/model", "classification", texts=texts, rounds=3)
    compare(src, out)         # {"size_ratio": 0.26, "speedup": {"1": 1.9, "8": 2.4}, ...}
    benchmark("runs/c1/model", "classification", texts=texts)        # one model, in a fresh child process

What is timed: a classifier runs one forward pass per batch (texts tokenised once beforehand, right-padded as
workers.classify does); a causal LM generates ``max_new_tokens`` greedy tokens per row from the texts as chat
user messages (workers.generate.prompt_ids): prefill + KV-cache decode, the latency a serving user sees. It runs
workers.generate's decoding loop (``_Decoder``) on exactly one batch with eos ignored, so every model does the
same work: a compressed model that emits eos sooner would otherwise look faster, and ``generate()``'s near-tie
re-decoding (an exactness guarantee for evaluation) would add a random extra decode to some repeats. Batches are
the texts cycled to each batch size, the same for every model. Per batch size: ``warmup`` untimed calls, then
``repeats`` timed ones with the garbage collector off; p50/p95 are numpy's linear percentiles; throughput is
items/s at the largest batch (size / mean latency), tokens_per_s new tokens/s there.

Isolation (``isolate=True``): a fresh ``python -m workers.compress.measure`` child per model, so no warm cache or
allocator state carries over, and ``peak_memory_bytes`` (ru_maxrss, or torch.cuda.max_memory_allocated) is that
child's. ru_maxrss includes the Python + torch + transformers runtime (~400 MB), so ``model_memory_bytes`` is the
peak resident set from loading on minus the resident set just before (Linux's VmHWM, reset via
/proc/self/clear_refs: the import peak lies above what a small model adds, so ru_maxrss minus the pre-load value
read 0 for MiniLM). ``resident_bytes``: the resident set (CUDA: allocated) after the last timed call, i.e.
what serving holds once loading's transient peak is over. A failing child sends its message back (CompressError in the parent); one that dies silently
gives its exit code and stderr's end. In-process (``isolate=False``) memory figures are only upper bounds.

Parameters (``count_parameters``) count each weight once, quantised ones included: torch.ao dynamic Linear /
Embedding weights live packed, not as nn.Parameter, so their ``weight()`` and ``bias()`` are counted; torchao
tensor subclasses count their logical shape, bitsandbytes 4-bit ``quant_state.shape``. Size on disk: the folder's
bytes (plus the base folder's for an adapter, which serving also needs).

Noise, and why ``benchmark_pair`` alternates (ABBA... rounds of fresh children, per batch size the median of the
round p50s). Measured: all-MiniLM-L6-v2 + a random 3-label head (fp32, 87 MB) vs its int8_dynamic folder
(workers.compress.quantize; size 0.26, parameters 1.0), 8 probe texts, 2 threads, warmup 3, repeats 20, while
other suites kept this 2-core machine at load 3.5-7. One model's round p50 at batch 1 ranged 41-1112 ms. The
int8 speedup at batch 1 / batch 8 over 3 trials per protocol: one child each (A then B) 0.12-2.07 / 0.69-2.31;
three of A then three of B (medians) 0.13-3.06 / 1.08-1.99; alternated, 3 rounds, 0.84-1.70 / 1.04-1.45. So
alternating cut the spread (max/min) from 17x and 24x to 2.0x at batch 1, from 3.3x and 1.8x to 1.4x at batch 8,
but on a machine this loaded no protocol is stable: read speed ratios from an idle machine or more rounds.
Memory: the int8 folder peaks higher while loading (model_memory 2.2x fp32), resident 1.08x.
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
    seen: set[int] = set()
    total = 0
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                state = getattr(p, "quant_state", None)  # bitsandbytes 4-bit: the tensor holds packed bytes
                total += math.prod(state.shape if getattr(state, "shape", None) is not None else p.shape)
        if getattr(module, "_packed_params", None) is not None and callable(getattr(module, "weight", None)):
            bias = module.bias() if callable(getattr(module, "bias", None)) else None  # torch.ao dynamic
            total += module.weight().numel() + (bias.numel() if bias is not None else 0)
    return total


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


def _status_bytes(key: str, fallback=None) -> int | None:
    """A size from /proc/self/status (VmRSS, VmHWM); ``fallback()`` (or None) where there is no /proc."""
    try:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key + ":"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration, ValueError):
        return fallback() if fallback else None


def _reset_peak() -> int:
    """Reset Linux's peak resident set (VmHWM) to the current one, returned; without /proc the peak so far."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return _rss_bytes()
    return _status_bytes("VmRSS", _rss_bytes)


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
    before = 0 if device.type == "cuda" else _reset_peak()
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
    cuda = device.type == "cuda"
    resident = int(torch.cuda.memory_allocated(device)) if cuda else _status_bytes("VmRSS")
    model_peak = int(torch.cuda.max_memory_allocated(device)) if cuda else _status_bytes("VmHWM", _rss_bytes)
    peak = max(model_peak, resident or 0, 0 if cuda else _rss_bytes())  # ru_maxrss lags /proc by a few pages
    mean_s = latency[str(largest)]["mean_ms"] / 1000
    texts, new_tokens = request["texts"], request["max_new_tokens"] if task == "causal_lm" else None
    return {
        "model_path": str(path), "task": task, "size_bytes": size_on_disk(path, request.get("base_dir")),
        "parameters": count_parameters(model), "peak_memory_bytes": peak,
        "model_memory_bytes": max(0, model_peak - before),
        "resident_bytes": resident, "load_seconds": load_seconds, "latency": latency,
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
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {"TOKENIZERS_PARALLELISM": "false", **os.environ, "PYTHONPATH": path}
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
    pairs = [(k, source.get(k), compressed.get(k)) for k in ("texts_sha256", "max_new_tokens", "task")]
    for key, a, b in [*pairs, ("batch sizes", sorted(source["latency"]), sorted(compressed["latency"]))]:
        if a != b:
            raise ValueError(f"the two benchmarks differ in {key}: {a!r} vs {b!r}")

    def ratio(a, b):
        return a / b if a is not None and b else None

    return {
        "size_ratio": ratio(compressed["size_bytes"], source["size_bytes"]),
        "parameter_ratio": ratio(compressed["parameters"], source["parameters"]),
        "memory_ratio": ratio(compressed["peak_memory_bytes"], source["peak_memory_bytes"]),
        "model_memory_ratio": ratio(compressed.get("model_memory_bytes"), source.get("model_memory_bytes")),
        "resident_ratio": ratio(compressed.get("resident_bytes"), source.get("resident_bytes")),
        "speedup": {
            size: ratio(source["latency"][size]["p50_ms"], compressed["latency"][size]["p50_ms"])
            for size in sorted(source["latency"], key=int)
        },
        "throughput_ratio": ratio(compressed["throughput"], source["throughput"]),
        "tokens_per_s_ratio": ratio(compressed.get("tokens_per_s"), source.get("tokens_per_s")),
    }


# fmt: off
def benchmark_pair(
    source_path, compressed_path, task, *, source_base_dir=None, compressed_base_dir=None, rounds=3, **options
) -> tuple[dict, dict]:
    # fmt: on
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
        size: {k: statistics.median(r["latency"][size][k] for r in results) for k in ("p50_ms", "p95_ms", "mean_ms")}
        for size in results[0]["latency"]
    }  # fmt: skip
    for key in ("throughput", "tokens_per_s", "peak_memory_bytes", "model_memory_bytes", "resident_bytes",
                "load_seconds"):  # fmt: skip
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
