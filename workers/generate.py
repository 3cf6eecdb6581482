"""Batched generation for evaluation: length-sorted dynamic batches, KV cache, greedy or seeded sampling, stops.

    model, tokenizer = load_causal("runs/7/adapter", base_dir="base-models/smollm2")   # merged for speed
    prompts = [prompt_ids(tokenizer, example["messages"]) for example in examples]
    outputs = generate(model, tokenizer, prompts, GenerateConfig(max_new_tokens=64, stop=["\\n\\n"]))
    nll = reference_nll(model, tokenizer, prompts, references)     # (sum of NLL, tokens) -> perplexity

How a call runs: prompts are sorted by length (longest first, so a batch that does not fit in memory fails
first), cut into batches of at most ``max_batch_size`` rows whose padded ``(longest prompt + max_new_tokens) *
rows`` stays under ``max_batch_tokens``, left-padded, and decoded by our own loop over ``model(...)`` with a
``DynamicCache``: one prefill (``logits_to_keep=1``), then one token per row and step, the attention mask grown
by a column, position ids continuing each row's own count (``cumsum(mask) - 1``, so padding takes no position).
A row that ends (eos of the model's generation config, a stop sequence, or ``max_new_tokens``) leaves the batch
at once: its cache rows are dropped (``batch_select_indices``), so the last steps of a batch do not pay for
rows that are done. Results come back in the order of the prompts.

Greedy output is identical to per-example ``model.generate(ids, do_sample=False, max_new_tokens=N)``. Padding
and batching change the floating-point reductions (other matmul shapes, a materialised attention mask instead
of ``is_causal``), so batched logits differ from single-row ones in the last bits; measured on CPU in fp32 (see
bench/RESULTS.md, "eval"): at most ~2e-5 on the tiny model's logits and ~1e-4 on SmolLM2-135M's, and a flip
of the argmax happens only where the two best logits are that close. Bucketing by exact prompt length would
not remove this (a batch of rows still reduces in other shapes than one row) and would cut batches to 2-3 rows
on varied lengths. So the batched pass records, per row, the smallest margin between its two best logits over
all its steps; a row whose margin fell under ``TIE_MARGIN`` (1e-3 in fp32, 0.25 in 16-bit: 10-50x the
measured drift) is decoded again alone, unpadded, by the same loop, which does exactly the operations of
Hugging Face's greedy search for one row (bit-identical, checked in the tests and the benchmark). Few rows
need it: 0-2% on the tiny random model, ~1% on SmolLM2.

Sampling (``do_sample``) uses one ``torch.Generator`` per example seeded ``seed + index``, drawing exactly one
sample per step, so an example's tokens depend neither on its batch nor on the batch size.
"""

from __future__ import annotations

import math
import os
import resource
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from workers.train.config import ConfigError
from workers.train.config import _coerce as coerce_value
from workers.train.data import ALPACA_PROMPT, ALPACA_RESPONSE

TIE_RTOL = {
    torch.float32: 1e-4,
    torch.float64: 1e-10,
}  # near-tie: gap of the two best < rtol * max(1, |best|)
TIE_RTOL_16BIT = 2e-2


class GenerateError(RuntimeError):
    """Generation cannot run (missing folder, missing base for an adapter, bad prompt); the message says why."""


class GenerationStopped(RuntimeError):
    """The progress callback answered "stop"."""


@dataclass
class GenerateConfig:
    """How to decode. Plain values only, so it round-trips through JSON."""

    max_new_tokens: int = 128
    """New tokens at most per example."""
    do_sample: bool = False
    """False: greedy (argmax); True: sample from the softmax of logits / temperature, within top_p."""
    temperature: float = 1.0
    """Softmax temperature when sampling, > 0."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p, in (0, 1]."""
    seed: int = 0
    """Sampling is seeded per example (seed + example index), so results do not depend on batch composition."""
    stop: list[str] = field(default_factory=list)
    """Stop sequences: an example ends when its text contains one; the text is cut before it."""
    max_batch_size: int = 32
    """Rows at most in a batch."""
    max_batch_tokens: int = 16384
    """Cap on (longest prompt + max_new_tokens) * rows of a batch; a longer prompt still runs, alone."""

    def problems(self) -> dict[str, list[str]]:
        p: dict[str, list[str]] = {}
        for f in fields(self):
            _, error = coerce_value(getattr(self, f.name), f.type)
            if error:
                p.setdefault(f.name, []).append(error)

        def bad(name: str, message: str) -> None:
            if name not in p:
                p.setdefault(name, []).append(message)

        for name in ("max_new_tokens", "max_batch_size", "max_batch_tokens"):
            if name not in p and getattr(self, name) < 1:
                bad(name, f"must be at least 1 (got {getattr(self, name)})")
        if "temperature" not in p and not (math.isfinite(self.temperature) and self.temperature > 0):
            bad("temperature", f"must be a positive number (got {self.temperature})")
        if "top_p" not in p and not 0 < self.top_p <= 1:
            bad("top_p", f"must be in (0, 1] (got {self.top_p})")
        if "seed" not in p and self.seed < 0:
            bad("seed", f"must not be negative (got {self.seed})")
        if "stop" not in p and any(not s for s in self.stop):
            bad("stop", "stop sequences must not be empty strings")
        return p

    def validate(self) -> None:
        """Raise ConfigError naming every problem."""
        if problems := self.problems():
            raise ConfigError(problems)

    @classmethod
    def from_dict(cls, data: dict) -> GenerateConfig:
        """Build from JSON-like values; unknown keys and wrong types are reported with the other problems."""
        if not isinstance(data, dict):
            raise ConfigError({"config": [f"must be an object (got {type(data).__name__})"]})
        problems: dict[str, list[str]] = {}
        known = {f.name: f for f in fields(cls)}
        for key in data:
            if key not in known:
                problems.setdefault(str(key), []).append("is not a known setting")
        values = {}
        for name, f in known.items():
            if name in data:
                value, error = coerce_value(data[name], f.type)
                if error:
                    problems.setdefault(name, []).append(error)
                else:
                    values[name] = value
        config = cls(**values)
        for name, msgs in config.problems().items():
            if name in values:
                problems.setdefault(name, []).extend(msgs)
        if problems:
            raise ConfigError(problems)
        return config


@dataclass
class Generation:
    text: str  # decoded new tokens, special tokens skipped, cut at the first stop sequence
    token_ids: list[int]  # the new tokens kept (through the eos, or the token that completed a stop sequence)
    prompt_tokens: int
    new_tokens: int
    latency_s: float  # from the start of its batch to the step that finished this example
    finish_reason: str  # "stop" (eos or stop sequence) | "length"


# -- loading ---------------------------------------------------------------------------------------------


def _check_folder(path: Path, what: str, weights: str) -> None:
    if not path.is_dir():
        raise GenerateError(f"{what} {path} does not exist or is not a folder")
    if not any(p.name.endswith(".safetensors") for p in path.iterdir()):
        raise GenerateError(f"{what} {path} has no {weights} (only safetensors weights are loaded)")


def load_causal(model_dir: str, *, base_dir: str | None = None, device: str | None = None):
    """(model, tokenizer) from a Hugging Face folder, or a PEFT adapter folder merged over ``base_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(model_dir)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    adapter = (folder / "adapter_config.json").is_file()
    if adapter:
        if not base_dir:
            raise GenerateError(f"{folder} is a PEFT adapter: its base model folder (base_dir) is required")
        _check_folder(folder, "adapter folder", "adapter_model.safetensors")
        base = Path(base_dir)
        _check_folder(base, "base model folder", ".safetensors weights")
    else:
        _check_folder(folder, "model folder", ".safetensors weights")
        base = folder
    has_tokenizer = any((folder / n).is_file() for n in ("tokenizer.json", "tokenizer_config.json"))
    tokenizer = AutoTokenizer.from_pretrained(folder if has_tokenizer else base, trust_remote_code=False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs = {"trust_remote_code": False, "use_safetensors": True, "dtype": dtype}
    try:
        model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, folder)
            if model.peft_config["default"].is_prompt_learning:
                raise GenerateError(
                    f"{folder} holds virtual tokens (prefix / prompt tuning), which cannot be merged"
                )
            model = model.merge_and_unload()
    except (OSError, ValueError) as exc:
        raise GenerateError(f"cannot load {folder}: {exc}") from None
    return model.to(device).eval(), tokenizer


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """The prompt as the model saw it in training, ending where the assistant's answer starts.

    Trailing assistant messages (the reference answer) are left out. With a chat template: the template with
    ``add_generation_prompt=True``; without one: the Alpaca prompt of workers.train.data from the system message
    and the last user message.
    """
    messages = list(messages)
    while messages and messages[-1].get("role") == "assistant":
        messages.pop()
    if not messages:
        raise GenerateError("a prompt needs at least one message before the answer")
    if tokenizer.chat_template:
        out = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(out["input_ids"])
    system = next((m["content"] for m in messages if m.get("role") == "system"), "")
    user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    text = (system + "\n\n" if system else "") + ALPACA_PROMPT.format(instruction=user) + ALPACA_RESPONSE
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])


# -- generation ------------------------------------------------------------------------------------------


def plan_batches(lengths: list[int], config: GenerateConfig) -> list[list[int]]:
    """Indices sorted by length (longest first, ties by index) and cut under both batch caps."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        if batches:
            current = batches[-1]
            longest = lengths[current[0]]
            rows = len(current) + 1
            if (
                rows <= config.max_batch_size
                and (longest + config.max_new_tokens) * rows <= config.max_batch_tokens
            ):
                current.append(i)
                continue
        batches.append([i])
    return batches


def eos_ids(model, tokenizer) -> set[int]:
    """The tokens that end an answer: the generation config's eos (as generate uses), else the tokenizer's."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = model.config.eos_token_id if model.config.eos_token_id is not None else tokenizer.eos_token_id
    return set(eos if isinstance(eos, list) else [eos] if eos is not None else [])


def tie_rtol(model) -> float:
    dtype = next(model.parameters()).dtype
    return TIE_RTOL.get(dtype, TIE_RTOL_16BIT)


def generate(
    model, tokenizer, prompts: list[list[int]], config: GenerateConfig, *, progress=None
) -> list[Generation]:
    """One Generation per prompt, in the order of the prompts; see the module docstring for how."""
    config.validate()
    for i, p in enumerate(prompts):
        if not p:
            raise GenerateError(f"prompt {i} is empty")
    results: list[Generation | None] = [None] * len(prompts)
    decoder = _Decoder(model, tokenizer, config)
    done = 0
    for batch in plan_batches([len(p) for p in prompts], config):
        outputs, ties = decoder.run([prompts[i] for i in batch], batch)
        for row in ties:  # a near-tie of the two best logits: decode alone, unpadded, as generate would
            outputs[row] = decoder.run([prompts[batch[row]]], [batch[row]])[0][0]
        for i, out in zip(batch, outputs, strict=True):
            results[i] = out
        done += len(batch)
        if progress is not None and progress(done, len(prompts)) == "stop":
            raise GenerationStopped(f"stopped after {done} of {len(prompts)} examples")
    return results  # type: ignore[return-value]


class _Decoder:
    """The decoding loop of one batch, with what stays the same from batch to batch."""

    def __init__(self, model, tokenizer, config: GenerateConfig):
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.device = next(model.parameters()).device
        self.eos = eos_ids(model, tokenizer)
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos, default=0)
        self.margin = tie_rtol(model) if not config.do_sample else None

    @torch.inference_mode()
    def run(self, prompts: list[list[int]], indices: list[int]) -> tuple[list[Generation], list[int]]:
        """Decode ``prompts`` (example ``indices``) together; returns the outputs and the rows with a near-tie."""
        from transformers import DynamicCache

        started = time.perf_counter()
        cfg, rows = self.config, len(prompts)
        width = max(len(p) for p in prompts)
        ids = torch.full((rows, width), self.pad, dtype=torch.long)
        mask = torch.zeros((rows, width), dtype=torch.long)
        for r, p in enumerate(prompts):
            ids[r, width - len(p) :] = torch.as_tensor(p)
            mask[r, width - len(p) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        generators = None
        if cfg.do_sample:
            generators = [torch.Generator(self.device).manual_seed(cfg.seed + i) for i in indices]
        cache = DynamicCache(config=self.model.config)
        logits = self._forward(ids, mask, positions, cache, prefill=True)
        new: list[list[int]] = [[] for _ in range(rows)]
        outputs: list[Generation | None] = [None] * rows
        margins = [math.inf] * rows
        alive = list(range(rows))  # original row of each row still in the batch
        for step in range(cfg.max_new_tokens):
            chosen = self._choose(logits, alive, generators, margins)
            keep = []
            for k, (r, token) in enumerate(zip(alive, chosen, strict=True)):
                new[r].append(token)
                finished = self._finish(new[r], token, step + 1 == cfg.max_new_tokens)
                if finished is None:
                    keep.append(k)
                    continue
                text, reason = finished
                outputs[r] = Generation(
                    text, new[r], len(prompts[r]), len(new[r]), time.perf_counter() - started, reason
                )
            if not keep:
                break
            tokens = torch.as_tensor(chosen, device=self.device)[:, None]
            if len(keep) < len(alive):
                index = torch.as_tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                tokens, mask, positions = tokens[index], mask[index], positions[index]
                alive = [alive[k] for k in keep]
            mask = torch.cat([mask, mask.new_ones((len(alive), 1))], dim=1)
            positions = positions[:, -1:] + 1
            logits = self._forward(tokens, mask, positions, cache, prefill=False)
        ties = [r for r in range(rows) if rows > 1 and self.margin is not None and margins[r] < self.margin]
        return outputs, ties  # type: ignore[return-value]

    def _forward(self, ids, mask, positions, cache, *, prefill: bool) -> torch.Tensor:
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1, :].float()

    def _choose(self, logits: torch.Tensor, alive: list[int], generators, margins: list[float]) -> list[int]:
        if generators is None:
            top = logits.topk(2, dim=-1).values if logits.shape[-1] > 1 else None
            if top is not None:
                gaps = (top[:, 0] - top[:, 1]) / top[:, 0].abs().clamp(min=1.0)
                for k, gap in enumerate(gaps.tolist()):
                    margins[alive[k]] = min(margins[alive[k]], gap)
            return logits.argmax(dim=-1).tolist()
        probs = torch.softmax(logits / self.config.temperature, dim=-1)
        if self.config.top_p < 1:
            probs = _top_p(probs, self.config.top_p)
        return [int(torch.multinomial(probs[k], 1, generator=generators[r])) for k, r in enumerate(alive)]

    def _finish(self, new: list[int], token: int, last: bool) -> tuple[str, str] | None:
        """(text, finish_reason) when this row is done after ``token``, else None."""
        stops = self.config.stop
        if token in self.eos:
            return self._text(new), "stop"
        if stops:
            text = self._text(new)
            cut = min((p for p in (text.find(s) for s in stops) if p >= 0), default=-1)
            if cut >= 0:
                return text[:cut], "stop"
        return (self._text(new), "length") if last else None

    def _text(self, new: list[int]) -> str:
        return self.tokenizer.decode(new, skip_special_tokens=True)


def _top_p(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero the tail outside the nucleus (the most likely token always stays), renormalised by multinomial."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    outside = sorted_probs.cumsum(-1) - sorted_probs > top_p
    sorted_probs = sorted_probs.masked_fill(outside, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs)


# -- reference likelihood ---------------------------------------------------------------------------------


@torch.inference_mode()
def reference_nll(
    model, tokenizer, prompts: list[list[int]], references: list[list[int]], *, max_batch_size: int = 16
) -> list[tuple[float, int]]:
    """Per example: (sum of the reference tokens' negative log-likelihood given the prompt, their count).

    Rows are left-padded so that every reference ends at the last column; only the last (longest reference + 1)
    positions get logits (``logits_to_keep``), so the vocabulary projection never covers the prompts.
    """
    if len(prompts) != len(references):
        raise GenerateError(f"{len(prompts)} prompts but {len(references)} references")
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    results: list[tuple[float, int]] = [(0.0, 0)] * len(prompts)
    todo = [i for i in range(len(prompts)) if references[i]]
    for i in todo:
        if not prompts[i]:
            raise GenerateError(f"prompt {i} is empty")
    todo.sort(key=lambda i: -(len(prompts[i]) + len(references[i])))
    for start in range(0, len(todo), max(1, max_batch_size)):
        batch = todo[start : start + max(1, max_batch_size)]
        seqs = [prompts[i] + references[i] for i in batch]
        width, keep = max(map(len, seqs)), max(len(references[i]) for i in batch) + 1
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, seq in enumerate(seqs):
            ids[r, width - len(seq) :] = torch.as_tensor(seq)
            mask[r, width - len(seq) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=keep
        ).logits
        for r, i in enumerate(batch):
            n = len(references[i])
            row = logits[r, keep - 1 - n : keep - 1].float().log_softmax(-1)
            target = torch.as_tensor(references[i], device=device)
            results[i] = (float(-row.gather(-1, target[:, None]).sum()), n)
    return results


# -- measuring -------------------------------------------------------------------------------------------


def peak_memory_bytes(device) -> int:
    """Peak memory so far: allocated on a CUDA device, else this process's peak resident set."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def folder_size_bytes(path) -> int:
    """Bytes of all files under ``path`` (links not followed)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total
