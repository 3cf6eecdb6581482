"""A bounded LRU cache of loaded model versions for the serving gateway; adapters share their base's weights.

    cache = ModelCache(capacity=2)
    served = cache.get(ServeSpec(key="version:12", path=".../adapter", task="causal_lm", fmt="peft_adapter",
                                 base_key="version:3", base_path=".../base"))
    served.chat([{"role": "user", "content": "hi"}], GenerateConfig(max_new_tokens=16))

Design:

- ``capacity`` counts resident weight sets (``served.Weights``): full models (HF or quantised folders) and the
  bases of adapters. Loading one more evicts the least recently used; using an adapter uses its base. An
  evicted weight set takes its adapters with it; a request already running on it finishes (it holds a
  reference), and the next ``get`` loads it again.
- A causal-LM adapter is not merged: its base is loaded once (the cache entry ``base_key``, also what a request
  for the base version itself gets), wrapped by ``peft.PeftModel`` at the first adapter, and each adapter is
  attached under its own name (``load_adapter``). Every forward pass runs under the weight set's lock after
  activating the asking version's adapter (none for the base), so requests on one base serialise and different
  bases run in parallel (served.py). A classifier adapter is loaded merged as its own weight set
  (workers.classify: its head and label count come from the adapter), so it shares nothing.
- Loads run outside the cache's lock, under a lock of their own key: concurrent ``get`` of one spec loads it
  once and all callers get the same Served; loads of different keys run in parallel; ``get`` of a resident
  model never waits for a load.
- Errors (missing folder, a folder that does not load, an adapter that does not fit its base) are ServeError
  naming the path; nothing is cached on failure.

Plain Python + torch: never imports django.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from pathlib import Path

from workers.serve.served import Served, Weights
from workers.serve.spec import ServeError, ServeSpec


class ModelCache:
    def __init__(self, capacity: int = 2, device: str | None = None):
        if capacity < 1:
            raise ServeError(f"capacity must be at least 1 (got {capacity})")
        self.capacity, self.device = capacity, device or None
        self._lock = threading.Lock()
        self._weights: OrderedDict[str, Weights] = OrderedDict()  # least recently used first
        self._served: dict[str, Served] = {}  # every resident served key (weight sets and adapters)
        self._used: OrderedDict[str, None] = OrderedDict()  # served keys, least recently used first
        self._key_locks: dict[str, threading.Lock] = {}

    def get(self, spec: ServeSpec) -> Served:
        """The loaded version, loading it (and an adapter's base) on first use; ServeError when it cannot."""
        if problems := spec.problems():
            raise ServeError("; ".join(problems))
        if served := self._resident(spec.key):
            return served
        if spec.fmt == "peft_adapter" and spec.task == "causal_lm":
            weights = self._weights_for(spec.base())
            with self._key_lock(spec.key):
                if served := self._resident(spec.key):
                    return served
                served = self._attach(weights, spec)
        else:
            served = self._weights_for(spec).served
        with self._lock:
            if served._weights.key in self._weights:  # not evicted meanwhile
                self._served[spec.key] = served
                self._touch(spec.key)
        return served

    def loaded(self) -> list[str]:
        """Resident keys (weight sets and adapters), most recently used last."""
        with self._lock:
            return [key for key in self._used if key in self._served]

    def evict(self, key: str) -> None:
        """Drop ``key``: a weight set with its adapters, or one adapter from its base. Unknown keys are ignored."""
        with self._lock:
            if key in self._weights:
                self._drop(key)
                return
            served = self._served.pop(key, None)
            self._used.pop(key, None)
        if served is not None and served._adapter is not None:
            weights = served._weights
            with weights.lock:
                name = weights.adapters.pop(key, None)
                if name is not None and len(weights.peft.peft_config) > 1:
                    weights.peft.delete_adapter(name)
                    weights.active = "\0"  # unknown: the next request activates its own

    # -- internals -------------------------------------------------------------------------------------------

    def _resident(self, key: str) -> Served | None:
        with self._lock:
            served = self._served.get(key)
            if served is not None:
                self._touch(key)
            return served

    def _touch(self, key: str) -> None:
        """Mark ``key`` used (call under _lock); using an adapter uses its base."""
        self._used[key] = None
        self._used.move_to_end(key)
        base = self._served[key]._weights.key
        if base in self._weights:
            self._weights.move_to_end(base)

    def _key_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _weights_for(self, spec: ServeSpec) -> Weights:
        with self._lock:
            if (weights := self._weights.get(spec.key)) is not None:
                self._weights.move_to_end(spec.key)
                return weights
        with self._key_lock(spec.key):
            with self._lock:
                if (weights := self._weights.get(spec.key)) is not None:
                    return weights
            weights = self._load(spec)  # slow: outside the cache's lock
            with self._lock:
                self._weights[spec.key] = weights
                self._served[spec.key] = weights.served
                self._touch(spec.key)
                while len(self._weights) > self.capacity:
                    self._drop(next(iter(self._weights)))
            return weights

    def _drop(self, key: str) -> None:
        """Forget a weight set and its adapters (call under _lock)."""
        weights = self._weights.pop(key)
        for served_key in [key, *weights.adapters]:
            self._served.pop(served_key, None)
            self._used.pop(served_key, None)

    def _load(self, spec: ServeSpec) -> Weights:
        from workers.compress.config import CompressError
        from workers.compress.load import load_model

        folder = Path(spec.path)
        if not folder.is_dir():
            raise ServeError(f"model folder {folder} does not exist or is not a folder")
        base_dir = spec.base_path if spec.fmt == "peft_adapter" else None
        try:
            model, tokenizer = load_model(folder, spec.task, base_dir=base_dir, device=self.device)
        except CompressError as exc:
            raise ServeError(str(exc)) from None
        model.requires_grad_(False)
        weights = Weights(spec.key, model, tokenizer, spec.task)
        weights.served = Served(spec.key, weights)
        return weights

    def _attach(self, weights: Weights, spec: ServeSpec) -> Served:
        """Attach a causal-LM adapter to its resident base under its own name (unmerged)."""
        from peft import PeftConfig

        folder = Path(spec.path)
        _check_adapter(folder)
        name = "a_" + re.sub(r"\W", "_", spec.key)
        with weights.lock:
            if spec.key in weights.adapters:
                return weights.adapter_served[spec.key]
            try:
                if PeftConfig.from_pretrained(str(folder)).is_prompt_learning:
                    raise ServeError(
                        f"adapter {folder} holds virtual tokens (prefix / prompt tuning): not served"
                    )
                if weights.peft is None:
                    from peft import PeftModel

                    weights.peft = PeftModel.from_pretrained(weights.model, folder, adapter_name=name)
                else:
                    weights.peft.load_adapter(folder, adapter_name=name)
            except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
                raise ServeError(f"adapter {folder} does not fit its base {spec.base_path}: {exc}") from None
            weights.model.requires_grad_(False)
            weights.active = "\0"  # unknown: the next request activates its own
            weights.adapters[spec.key] = name
            served = Served(spec.key, weights, adapter=name)
            weights.adapter_served[spec.key] = served
            return served


def _check_adapter(folder: Path) -> None:
    if not folder.is_dir():
        raise ServeError(f"adapter folder {folder} does not exist or is not a folder")
    if not (folder / "adapter_config.json").is_file():
        raise ServeError(f"adapter folder {folder} has no adapter_config.json")
    if not any(p.name.endswith(".safetensors") for p in folder.iterdir()):
        raise ServeError(f"adapter folder {folder} has no .safetensors weights (pickled weights are refused)")
