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
rows that are done (measured on SmolLM2, 32 prompts x 48 tokens of which only 5 ended early: the difference
was lost in the noise of this shared 2-core machine, 25-97 s per run either way; kept because it bounds the
work when many rows end early). Results come back in the order of the prompts.

Greedy output is identical to per-example ``model.generate(ids, do_sample=False, max_new_tokens=N)``. Run on
one unpadded row, this loop does exactly Hugging Face's greedy search: its logits are bit for bit the same
(measured: max difference 0.0 on the tiny model, 128 prompts, and on SmolLM2-135M, 24 prompts, 32 tokens each).
Batched and left-padded, the floating-point reductions change (other matmul shapes, a materialised attention
mask instead of ``is_causal``), so logits differ in the last bits: measured on CPU in fp32, at most 3.6e-7 on
the tiny model's logits (|best| ~0.4) and 1.3e-4 on SmolLM2's (|best| ~14), i.e. ~1e-5 of the best logit.
An argmax can flip only where the two best logits are that close; the smallest gaps seen were 4e-6 (tiny) and
1.4e-3 (SmolLM2). Bucketing by exact prompt length would not remove the drift (a batch of rows still reduces in
other shapes than one row) and cuts batches to 2-3 rows on varied lengths. So the batched pass records, per
row, the smallest gap between its two best logits over all its steps, relative to ``max(1, |best|)``; a row
whose gap fell under ``TIE_RTOL`` (1e-4 in fp32: ~10x SmolLM2's measured drift, ~300x the tiny model's;
2e-2 in 16-bit, not measured here: no GPU was lent) is decoded again alone, unpadded, by the same loop, which
makes it bit-identical. Cost: ~5% of rows on the tiny random model (flat logits), ~1 in 24 on SmolLM2.

Sampling (``do_sample``) uses one ``torch.Generator`` per example seeded ``seed + index``, drawing exactly one
sample per step, so an example's tokens depend neither on its batch nor on the batch size.
"""

from __future__ import annotations

import math
import time

import torch

from workers.generate.config import GenerateConfig, GenerateError, Generation, GenerationStopped

TIE_RTOL = {
    torch.float32: 1e-4,
    torch.float64: 1e-10,
}  # near-tie: gap of the two best < rtol * max(1, |best|)
TIE_RTOL_16BIT = 2e-2


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
