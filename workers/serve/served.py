"""One servable model version: chat / complete, whole or streamed, over weights that may be shared.

A ``Weights`` is one resident weight set (a full model, or a base with PEFT adapters attached under their own
names, unmerged) with one lock: every forward pass on it runs under that lock, after making the asking
version's adapter the active one (``Weights.activate``), so requests on one base serialise and different bases
run in parallel. Whole answers hold the lock for the whole decode (``workers.generate.generate`` on one
prompt). Streams take it per step (prefill, then one token), never across a ``yield``: a slow or vanished
client never blocks the others, and requests for other adapters of the same base interleave with the stream.

Streaming is the loop of workers.generate.decode on one unpadded row, step by step, reusing its ``_Decoder``
(forward, greedy / seeded sampling choice, eos and stop sequences), so its tokens are those of
``generate(model, tokenizer, [prompt], config)`` (tests/workers/test_serve.py checks greedy). Deltas hold back
an incomplete UTF-8 character and any tail that could begin a stop sequence, so the deltas concatenate to the
final ``Generation.text``.

Classifiers answer with the label of the last user message (chat) or of the prompt (complete): ``text`` the
label, ``prompt_tokens`` its tokens, ``new_tokens`` 1, ``finish_reason`` "stop".
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator

import torch

from workers.generate.config import GenerateConfig, GenerateError, Generation
from workers.serve.spec import ServeError
from workers.train.config import ConfigError


class Weights:
    """One resident weight set: the model that runs, its tokenizer, its lock, and its PEFT wrapper if any."""

    def __init__(self, key: str, model, tokenizer, task: str):
        self.key, self.model, self.tokenizer, self.task = key, model, tokenizer, task
        self.lock = threading.RLock()
        self.peft = (
            None  # the PeftModel wrapping ``model`` once an adapter is attached (model is changed in place)
        )
        self.served: Served | None = None  # the version these weights are (set by the cache)
        self.adapters: dict[str, str] = {}  # served key -> PEFT adapter name
        self.adapter_served: dict[str, Served] = {}  # served key -> its Served
        self.active: str | None = None  # PEFT adapter name now active, None: the plain base, "\0": unknown
        self.queue: list[_Pending] = []  # whole-answer requests waiting for the lock (micro-batching)
        self.queue_lock = threading.Lock()
        self.leading = False  # a thread is decoding a batch of the queue

    def activate(self, adapter: str | None) -> None:
        """Make ``adapter`` (None: the base alone) the one that runs; call under ``lock``."""
        if self.peft is None or self.active == adapter:
            return
        if adapter is None:
            self.peft.base_model.disable_adapter_layers()
        else:
            if adapter not in self.peft.peft_config:
                raise ServeError(f"adapter {adapter} is no longer loaded on {self.key} (it was evicted)")
            self.peft.base_model.enable_adapter_layers()
            self.peft.set_adapter(adapter)
        self.active = adapter


MAX_BATCH = 32  # requests at most decoded together (micro-batching); 1 turns it off


class _Pending:
    """A queued whole-answer request; ``result`` is its Generation (or exception) once a batch has run it."""

    def __init__(self, ids: list[int], config: GenerateConfig, adapter: str | None):
        self.ids, self.config, self.adapter = ids, config, adapter
        self.result: Generation | Exception | None = None
        self.wake = threading.Event()  # set: its result is in, or it is its turn to lead

    def matches(self, other: _Pending) -> bool:
        """Greedy requests of one version decode together when the settings greedy decoding reads agree (seed,
        temperature and top_p do not matter to it)."""
        a, b = self.config, other.config
        greedy = not a.do_sample and not b.do_sample
        same = (a.max_new_tokens, a.stop, a.max_batch_size, a.max_batch_tokens) == (
            b.max_new_tokens, b.stop, b.max_batch_size, b.max_batch_tokens
        )  # fmt: skip
        return greedy and same and self.adapter == other.adapter


class Served:
    """A version ready to answer; obtained from ModelCache.get, safe to call from many threads."""

    def __init__(self, key: str, weights: Weights, adapter: str | None = None):
        self.key, self.task = key, weights.task
        self._weights, self._adapter = weights, adapter

    def __repr__(self) -> str:
        return f"<Served {self.key} ({self.task}) on {self._weights.key}>"

    @contextlib.contextmanager
    def _running(self):
        w = self._weights
        with w.lock, torch.inference_mode():
            w.activate(self._adapter)
            yield w.model

    # -- whole answers ---------------------------------------------------------------------------------------

    def chat(self, messages: list[dict], config: GenerateConfig) -> Generation:
        if self.task == "classification":
            return self._classify(_last_user(messages))
        return self._generate(self._chat_ids(messages), config)

    def complete(self, prompt: str, config: GenerateConfig) -> Generation:
        if self.task == "classification":
            return self._classify(_text(prompt, "prompt"))
        return self._generate(self._prompt_ids(prompt), config)

    def _generate(self, ids: list[int], config: GenerateConfig) -> Generation:
        """Queue the request; the oldest queued request's thread leads (``_lead``), the others sleep until their
        result is in or their turn to lead comes."""
        _check(config)
        w, mine = self._weights, _Pending(ids, config, self._adapter)
        with w.queue_lock:
            w.queue.append(mine)
        while True:
            with w.queue_lock:
                if mine.result is not None:
                    break
                lead = not w.leading and w.queue[0] is mine  # first come, first led
                w.leading = w.leading or lead
                mine.wake.clear()
            if lead:
                self._lead(mine)
            else:
                mine.wake.wait()
        if isinstance(mine.result, Exception):
            raise mine.result
        return mine.result

    def _lead(self, mine: _Pending) -> None:
        """Once the weights are free, decode ``mine`` with every request queued meanwhile for the same version and
        settings (greedy only: a sampled row keeps its seed by running alone), hand each its result, and wake the
        oldest still queued to lead next."""
        from workers.generate.decode import generate

        w, batch = self._weights, [mine]
        try:
            with self._running() as model:
                with w.queue_lock:
                    batch += [p for p in w.queue if p is not mine and p.matches(mine)][: MAX_BATCH - 1]
                outputs = generate(model, w.tokenizer, [p.ids for p in batch], mine.config)
        except GenerateError as exc:
            outputs = [ServeError(str(exc))] * len(batch)
        except Exception as exc:  # noqa: BLE001 (every request of the batch gets it: none hangs)
            outputs = [exc] * len(batch)
        with w.queue_lock:
            for p, out in zip(batch, outputs, strict=True):
                w.queue.remove(p)
                p.result = out
                p.wake.set()
            w.leading = False
            if w.queue:
                w.queue[0].wake.set()

    def _classify(self, text: str) -> Generation:
        from workers.classify import ClassifyError, classify

        try:
            with self._running() as model:
                (result,) = classify(model, self._weights.tokenizer, [text])
        except ClassifyError as exc:
            raise ServeError(str(exc)) from None
        index = list(result.probs).index(result.label)
        return Generation(result.label, [index], result.tokens, 1, result.latency_s, "stop")

    # -- streams -----------------------------------------------------------------------------------------------

    def stream_chat(self, messages: list[dict], config: GenerateConfig) -> Iterator[str | Generation]:
        """Text deltas as tokens are decoded, then the final Generation as the last item."""
        if self.task == "classification":
            return self._stream_label(_last_user(messages))
        return self._stream(self._chat_ids(messages), config)

    def stream_complete(self, prompt: str, config: GenerateConfig) -> Iterator[str | Generation]:
        if self.task == "classification":
            return self._stream_label(_text(prompt, "prompt"))
        return self._stream(self._prompt_ids(prompt), config)

    def _stream_label(self, text: str) -> Iterator[str | Generation]:
        result = self._classify(text)  # checked before the first item, like the prompt of a stream
        return iter([result.text, result])

    def _stream(self, ids: list[int], config: GenerateConfig) -> Iterator[str | Generation]:
        _check(config)
        return self._decode_steps(ids, config)

    def _decode_steps(self, prompt: list[int], config: GenerateConfig) -> Iterator[str | Generation]:
        from transformers import DynamicCache

        from workers.generate.decode import _Decoder

        w, started = self._weights, time.perf_counter()
        decoder = _Decoder(w.model, w.tokenizer, config)
        device = decoder.device
        tokens = torch.as_tensor([prompt], device=device)
        mask = torch.ones_like(tokens)
        positions = torch.arange(len(prompt), device=device)[None, :]
        generators = [torch.Generator(device).manual_seed(config.seed)] if config.do_sample else None
        cache = DynamicCache(config=w.model.config)
        new: list[int] = []
        sent = ""
        for step in range(config.max_new_tokens):
            with self._running():
                logits = decoder._forward(tokens, mask, positions, cache, prefill=step == 0)
                token = decoder._choose(logits, [0], generators, [math.inf])[0]
            new.append(token)
            finished = decoder._finish(new, token, step + 1 == config.max_new_tokens)
            if finished is not None:
                text, reason = finished
                if len(text) > len(sent) and text.startswith(sent):
                    yield text[len(sent) :]
                latency = time.perf_counter() - started
                yield Generation(text, new, len(prompt), len(new), latency, reason)
                return
            settled = _settled(decoder._text(new), config.stop)
            if len(settled) > len(sent) and settled.startswith(sent):
                yield settled[len(sent) :]
                sent = settled
            tokens = torch.as_tensor([[token]], device=device)
            mask = torch.cat([mask, mask.new_ones((1, 1))], dim=1)
            positions = positions[:, -1:] + 1

    # -- prompts -----------------------------------------------------------------------------------------------

    def _chat_ids(self, messages: list[dict]) -> list[int]:
        from workers.generate.loading import prompt_ids

        _check_messages(messages)
        try:
            ids = prompt_ids(self._weights.tokenizer, messages)
        except GenerateError as exc:
            raise ServeError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 (the chat template's own errors: jinja, KeyError...)
            raise ServeError(f"messages do not fit the model's chat template: {exc}") from None
        if not ids:
            raise ServeError("messages give an empty prompt")
        return ids

    def _prompt_ids(self, prompt: str) -> list[int]:
        ids = list(self._weights.tokenizer(_text(prompt, "prompt"), add_special_tokens=True)["input_ids"])
        if not ids:
            raise ServeError("prompt is empty")
        return ids


def _check(config: GenerateConfig) -> None:
    try:
        config.validate()
    except ConfigError as exc:
        raise ServeError(str(exc)) from None


def _text(value, what: str) -> str:
    if not isinstance(value, str):
        raise ServeError(f"{what} must be a string (got {type(value).__name__})")
    return value


def _check_messages(messages) -> None:
    if not isinstance(messages, list) or not messages:
        raise ServeError("messages must be a non-empty list")
    for i, m in enumerate(messages):
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("role"), str)
            or not isinstance(m.get("content"), str)
        ):
            raise ServeError(f"messages[{i}] must be an object with a string role and a string content")


def _last_user(messages: list[dict]) -> str:
    _check_messages(messages)
    text = next((m["content"] for m in reversed(messages) if m["role"] == "user"), None)
    if text is None:
        raise ServeError("messages hold no user message to classify")
    return text


def _settled(text: str, stops: list[str]) -> str:
    """``text`` without what may still change: an incomplete UTF-8 character, a tail that may begin a stop."""
    text = text.rstrip("\ufffd")
    hold = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), hold, -1):
            if text.endswith(stop[:n]):
                hold = n
                break
    return text[: len(text) - hold]
