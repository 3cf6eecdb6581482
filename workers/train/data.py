"""Data for the engine: JSONL in, token arrays out, then a seeded plan of steps and their batches.

Reading names every bad line (all of them, up to a limit) before anything heavy happens. Tokenising gives
each causal example ``input_ids`` and ``targets`` where ``targets[t]`` is the token the model must predict
*after* position t (already shifted; -100 where no loss is taken). Because the shift happens per example,
an example never learns to predict its neighbour's first token however examples are laid out later.

How a micro-batch becomes tensors (the speed part); the layout is chosen once per run:

- ``packed`` (causal LM with lora / qlora / ia3 / full and ``packing=True``, sdpa or eager attention): the
  micro-batch's examples are laid first-fit-decreasing into rows no longer than its longest example,
  ``position_ids`` restart at 0 for each example, and there is *no* attention mask. From restarting positions
  transformers builds a block-diagonal causal mask, so an example never attends to another one; the engine
  proves this on the loaded model before training (``methods.packing_is_exact``: two sequences packed give the
  logits they give alone) and falls back to ``padded`` if not. Why rows capped at the longest example rather
  than one long row: a dense mask still pays for the masked cross-example blocks. Measured on CPU (1 thread,
  the bench model, micro-batches of 8 chat examples of 34-236 tokens): rows capped 3.1-3.6 s per 12
  micro-batches, one row per micro-batch 3.9-4.2 s, padding to the micro-batch's longest 5.1-6.4 s; capped rows
  compute 1.17 tokens per real token, padding 1.96.
- ``varlen`` (the same with a flash-attention implementation): one single row per micro-batch, no padding at
  all; flash attention turns restarting positions into cu_seqlens and never computes cross-example blocks.
- ``padded`` (prefix / prompt tuning, whose virtual tokens belong to each example; classification;
  ``packing=False``; the fallback): length-grouped batches as Hugging Face's ``group_by_length``: the epoch's
  permutation is cut into mega-batches of 50 steps, each sorted by length and cut into steps, and the steps
  are shuffled (seeded). Each micro-batch is right-padded to its own longest example, never to the dataset's.

Either way a step holds the same examples (``batch_size * grad_accum * processes``, the order a function of
seed and epoch only), so the step count, warm-up and schedules do not depend on the layout, and resuming needs
nothing but (epoch, step in epoch).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from workers.train.config import ConfigError, TrainError

IGNORE = -100
MAX_LISTED = 20  # bad lines named one by one; the rest are counted
ROLES = ("system", "user", "assistant", "tool")
GENERATION_TAG = re.compile(r"{%-?\s*generation\s*-?%}")
MEGABATCH_STEPS = 50
ALPACA_PROMPT = "### Instruction:\n{instruction}\n\n"
ALPACA_INPUT = "### Input:\n{input}\n\n"
ALPACA_RESPONSE = "### Response:\n"


# -- reading ---------------------------------------------------------------------------------------------


def read_records(path: str | Path, task: str, field: str) -> list[dict]:
    """Parse and check a JSONL file; ConfigError({field: ["line 3: ...", ...]}) lists every bad line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError({field: [f"{path} does not exist"]}) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError({field: [f"{path} cannot be read: {exc}"]}) from None
    records, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            problems.append(f"line {number}: not JSON ({exc.msg})")
            continue
        if error := _record_problem(record, task):
            problems.append(f"line {number}: {error}")
        else:
            records.append(record)
    if not records and not problems:
        problems.append(f"{path} holds no examples")
    if problems:
        shown = problems[:MAX_LISTED]
        if len(problems) > MAX_LISTED:
            shown.append(f"... and {len(problems) - MAX_LISTED} more bad lines")
        raise ConfigError({field: shown})
    return records


def _record_problem(record, task: str) -> str | None:
    if not isinstance(record, dict):
        return "must be a JSON object"
    if task == "chat":
        messages = record.get("messages")
        if not isinstance(messages, list) or not messages:
            return "needs a non-empty list 'messages'"
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                return f"messages[{i}] needs a role ({', '.join(ROLES)}) and a string content"
        if not any(m["role"] == "assistant" for m in messages):
            return "has no assistant message to learn from"
    elif task == "instruction":
        if not isinstance(record.get("instruction"), str) or not record["instruction"].strip():
            return "needs a non-empty string 'instruction'"
        if not isinstance(record.get("output"), str) or not record["output"]:
            return "needs a non-empty string 'output'"
        for key in ("input", "system"):
            if record.get(key) is not None and not isinstance(record[key], str):
                return f"'{key}' must be a string"
    else:
        if not isinstance(record.get("text"), str) or not record["text"].strip():
            return "needs a non-empty string 'text'"
        if isinstance(record.get("label"), bool) or not isinstance(record.get("label"), str | int):
            return "needs a 'label' (string or integer)"
    return None


# -- tokenising ------------------------------------------------------------------------------------------


@dataclass
class Examples:
    """Tokenised examples in flat arrays: example i is ids[offsets[i]:offsets[i+1]].

    Causal LM: ``targets`` has the same layout (the next token to predict, or -100). Classification:
    ``classes[i]`` is example i's label id and ``targets`` is None.
    """

    ids: np.ndarray
    offsets: np.ndarray
    targets: np.ndarray | None = None
    classes: np.ndarray | None = None
    dropped: int = 0  # examples left with nothing to learn after truncation

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def fingerprint(self) -> str:
        """Changes when the examples or their order change; a resumed run refuses different data."""
        digest = hashlib.blake2b(np.ascontiguousarray(self.ids).tobytes(), digest_size=8)
        digest.update(np.ascontiguousarray(self.offsets).tobytes())
        return f"{len(self)}:{digest.hexdigest()}"

    @classmethod
    def build(cls, sequences, classes=None, dropped: int = 0) -> Examples:
        """From a list of (ids, targets) pairs (causal) or of ids (classification, with ``classes``)."""
        if classes is None:
            ids = [np.asarray(i, dtype=np.int32) for i, _ in sequences]
            tgt = [np.asarray(t, dtype=np.int32) for _, t in sequences]
        else:
            ids, tgt = [np.asarray(i, dtype=np.int32) for i in sequences], None
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum([len(i) for i in ids], out=offsets[1:])
        return cls(
            ids=np.concatenate(ids) if ids else np.zeros(0, np.int32),
            offsets=offsets,
            targets=None if tgt is None else (np.concatenate(tgt) if tgt else np.zeros(0, np.int32)),
            classes=None if classes is None else np.asarray(classes, dtype=np.int64),
            dropped=dropped,
        )


def tokenize(records: list[dict], tokenizer, task: str, max_seq_len: int, labels: list[str] | None = None):
    """Records → Examples. Causal tasks learn only the answer: assistant turns, or the instruction's output."""
    if task == "classification":
        index = {name: i for i, name in enumerate(labels or [])}
        texts = [r["text"] for r in records]
        encoded = tokenizer(texts, truncation=True, max_length=max_seq_len, add_special_tokens=True)[
            "input_ids"
        ]
        return Examples.build(encoded, classes=[index[str(r["label"])] for r in records])
    if task == "chat":
        conversations = [r["messages"] for r in records]
    elif tokenizer.chat_template:
        conversations = [instruction_to_chat(r) for r in records]
    else:
        conversations = None
    pairs = (
        _chat_pairs(conversations, tokenizer)
        if conversations is not None
        else [_plain_prompt_pair(r, tokenizer) for r in records]
    )
    kept, dropped = [], 0
    for ids, learn in pairs:
        ids, learn = ids[:max_seq_len], learn[:max_seq_len]
        targets = [IGNORE] * len(ids)
        for t in range(len(ids) - 1):
            if learn[t + 1]:
                targets[t] = ids[t + 1]
        if any(t != IGNORE for t in targets):
            kept.append((ids, targets))
        else:
            dropped += 1
    if not kept:
        raise ConfigError(
            {"max_seq_len": [f"all {dropped} examples lose every target token at {max_seq_len} tokens"]}
        )
    return Examples.build(kept, dropped=dropped)


def instruction_to_chat(record: dict) -> list[dict]:
    """Alpaca → chat: optional system, user = instruction (+ blank line + input), assistant = output."""
    user = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
    messages = [{"role": "system", "content": record["system"]}] if record.get("system") else []
    return [*messages, {"role": "user", "content": user}, {"role": "assistant", "content": record["output"]}]


def _plain_prompt_pair(record: dict, tokenizer) -> tuple[list[int], list[int]]:
    """No chat template: the Alpaca prompt, then the output and end-of-sequence, learned."""
    prompt = (record.get("system") + "\n\n" if record.get("system") else "") + ALPACA_PROMPT.format(**record)
    if record.get("input"):
        prompt += ALPACA_INPUT.format(**record)
    prompt_ids = tokenizer(prompt + ALPACA_RESPONSE, add_special_tokens=True)["input_ids"]
    answer_ids = tokenizer(record["output"], add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        answer_ids = [*answer_ids, tokenizer.eos_token_id]
    return prompt_ids + answer_ids, [0] * len(prompt_ids) + [1] * len(answer_ids)


def _chat_pairs(conversations: list[list[dict]], tokenizer, chunk: int = 256):
    """Token ids and the assistant mask of each conversation through the tokenizer's chat template."""
    if not tokenizer.chat_template:
        raise TrainError("task 'chat' needs a tokenizer with a chat template; this base model's has none")
    pairs = []
    if GENERATION_TAG.search(tokenizer.chat_template):  # {% generation %} marks what the assistant says
        for start in range(0, len(conversations), chunk):
            enc = tokenizer.apply_chat_template(
                conversations[start : start + chunk],
                tokenize=True,
                return_dict=True,
                return_assistant_tokens_mask=True,
            )
            pairs += list(zip(enc["input_ids"], enc["assistant_masks"], strict=True))
        return pairs
    return [_mask_by_prefixes(c, tokenizer) for c in conversations]


def _mask_by_prefixes(messages: list[dict], tokenizer) -> tuple[list[int], list[int]]:
    """For templates without {% generation %}: an assistant turn is what rendering it adds to the prompt."""

    def render(msgs, prompt=False) -> list[int]:
        out = tokenizer.apply_chat_template(
            msgs, tokenize=True, add_generation_prompt=prompt, return_dict=True
        )
        return list(out["input_ids"])

    ids = render(messages)
    learn = [0] * len(ids)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start, end = len(render(messages[:i], prompt=True)), len(render(messages[: i + 1]))
        for t in range(start, min(end, len(ids))):
            learn[t] = 1
    return ids, learn


# -- the plan: which examples each step, micro-batch and process takes --------------------------------------


class StepPlan:
    """Seeded order of examples per epoch, cut into steps of ``global_batch`` examples.

    ``batches(epoch, step_in_epoch, rank, world)`` gives this process's micro-batches for one step. The last
    step of an epoch may be smaller; a remainder smaller than the number of processes is skipped.
    """

    def __init__(
        self, lengths: np.ndarray, *, batch_size: int, grad_accum: int, world: int, seed: int, grouped: bool
    ):
        self.lengths, self.seed, self.grouped = lengths, seed, grouped
        self.batch_size, self.grad_accum, self.world = batch_size, grad_accum, world
        self.global_batch = batch_size * grad_accum * world
        n = len(lengths)
        full, rest = divmod(n, self.global_batch)
        self.steps_per_epoch = full + (1 if rest >= world else 0)
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def _epoch_steps(self, epoch: int) -> list[np.ndarray]:
        if self._cache and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))
        g = self.global_batch
        if self.grouped:
            mega = g * MEGABATCH_STEPS
            chunks = [order[i : i + mega] for i in range(0, len(order), mega)]
            order = np.concatenate([c[np.argsort(-self.lengths[c], kind="stable")] for c in chunks])
        steps = [order[i : i + g] for i in range(0, len(order), g)][: self.steps_per_epoch]
        if self.grouped and len(steps) > 1:  # shuffle whole steps; a short last step stays last
            last = steps.pop() if len(steps[-1]) < g else None
            steps = [steps[i] for i in rng.permutation(len(steps))] + ([last] if last is not None else [])
        self._cache = (epoch, steps)
        return steps

    def step_examples(self, epoch: int, step_in_epoch: int) -> np.ndarray:
        """All processes' examples of one step."""
        return self._epoch_steps(epoch)[step_in_epoch]

    def batches(self, epoch: int, step_in_epoch: int, rank: int = 0) -> list[np.ndarray]:
        mine = np.array_split(self.step_examples(epoch, step_in_epoch), self.world)[rank]
        return [mb for mb in np.array_split(mine, min(self.grad_accum, len(mine))) if len(mb)]


# -- collation -------------------------------------------------------------------------------------------


@dataclass
class Batch:
    """Tensors for one forward pass.

    ``targets`` (causal) is shaped like ``input_ids``; ``target_example`` says which of the micro-batch's
    examples each real target belongs to (for per-example losses). Classification has ``classes`` instead.
    ``tokens`` counts real (non-padding) input tokens.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    position_ids: torch.Tensor | None
    targets: torch.Tensor | None
    classes: torch.Tensor | None
    target_example: torch.Tensor | None
    tokens: int
    n_targets: int

    def to(self, device) -> Batch:
        move = {
            k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
            for k, v in vars(self).items()
        }
        return Batch(**move)


LAYOUTS = ("packed", "varlen", "padded")


def collate(data: Examples, index: np.ndarray, pad_id: int, layout: str) -> Batch:
    """Tensors for the examples ``index`` laid out as ``layout`` (one of LAYOUTS)."""
    seqs = [data.ids[data.offsets[i] : data.offsets[i + 1]].astype(np.int64) for i in index]
    tokens = int(sum(len(s) for s in seqs))
    if data.classes is not None:
        ids, mask = _pad(seqs, pad_id)
        classes = torch.as_tensor(data.classes[index])
        return Batch(ids, mask, None, None, classes, torch.arange(len(index)), tokens, len(index))
    tgts = [data.targets[data.offsets[i] : data.offsets[i + 1]].astype(np.int64) for i in index]
    if layout in ("packed", "varlen"):
        return _packed(seqs, tgts, pad_id, tokens, single_row=layout == "varlen")
    ids, mask = _pad(seqs, pad_id)
    targets = _pad(tgts, IGNORE)[0]
    example = torch.arange(len(seqs)).unsqueeze(1).expand_as(targets)[targets != IGNORE]
    return Batch(ids, mask, None, targets, None, example, tokens, int((targets != IGNORE).sum()))


def _pad(seqs: list[np.ndarray], fill: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded to the longest of these sequences, and the mask of real positions."""
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), fill, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        out[row, : len(s)] = torch.from_numpy(s)
        mask[row, : len(s)] = 1
    return out, mask


def pack_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: example positions grouped into rows of at most ``capacity`` tokens."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


def _packed(seqs, tgts, pad_id: int, tokens: int, *, single_row: bool) -> Batch:
    lengths = [len(s) for s in seqs]
    capacity = sum(lengths) if single_row else max(lengths)
    rows = pack_rows(lengths, capacity)
    width = max(sum(lengths[i] for i in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    owner = torch.full((len(rows), width), -1, dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for i in sorted(row):  # keep the micro-batch's order inside a row
            n = lengths[i]
            ids[r, at : at + n] = torch.from_numpy(seqs[i])
            pos[r, at : at + n] = torch.arange(n)
            targets[r, at : at + n] = torch.from_numpy(tgts[i])
            owner[r, at : at + n] = i
            at += n
        pos[r, at:] = torch.arange(width - at)  # padding is a segment of its own, learned from by nobody
    real = targets != IGNORE
    return Batch(ids, None, pos, targets, None, owner[real], tokens, int(real.sum()))


def steps_for(config, steps_per_epoch: int, n_examples: int, world: int) -> int:
    """Total optimizer steps of the run."""
    if steps_per_epoch == 0:
        raise ConfigError(
            {"train_file": [f"{n_examples} examples cannot give each of {world} processes one"]}
        )
    if config.max_steps:
        return int(config.max_steps)
    return int(config.epochs) * steps_per_epoch
