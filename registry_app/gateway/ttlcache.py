"""A small per-process cache with a time to live, cleared at once by saves and deletes of the models it follows.

The gateway's hot path keeps what a model name serves (routing) and a client token's row (auth) this way:
a read within ``ttl`` seconds answers from memory; a save or delete of a followed model in this process clears
everything at once (and again on commit, when the change becomes visible to other connections), while other
processes see a change within ``ttl``. ``None`` (not found) is never kept, so unknown keys cannot fill it.
"""

import threading
import time
from collections.abc import Callable, Hashable

from django.db import transaction
from django.db.models.signals import post_delete, post_save


class TtlCache:
    def __init__(self, name: str, ttl: Callable[[], float], max_items: int = 1000):
        self.name, self.ttl, self.max_items = name, ttl, max_items
        self._items: dict[Hashable, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], object]):
        """The kept value for ``key`` when fresh, else ``load()`` (kept unless None)."""
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and now - hit[0] < self.ttl():
            return hit[1]
        value = load()
        if value is not None:
            with self._lock:
                if len(self._items) >= self.max_items:
                    self._items.clear()
                self._items[key] = (now, value)
        return value

    def clear(self, **_) -> None:
        with self._lock:
            self._items.clear()

    def _on_change(self, **_) -> None:
        self.clear()
        transaction.on_commit(self.clear)

    def follow(self, *models) -> None:
        """Clear on every save or delete of ``models`` in this process."""
        for model in models:
            uid = f"gateway-{self.name}-{model.__name__}"
            post_save.connect(self._on_change, sender=model, dispatch_uid=f"{uid}-save", weak=False)
            post_delete.connect(self._on_change, sender=model, dispatch_uid=f"{uid}-delete", weak=False)
