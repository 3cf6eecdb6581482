"""The per-row steps of a build (normalise, filter, sensitive, integrity) and dedup's keys, in a second process.

`StepWorker(steps, stats, key)` forks a child (see forked.py for why a bare fork) that owns the steps and their
StepStats from then on. The caller `submit`s batches of Examples in input order and `receive`s, in the same
order, what the rest of the build needs of each batch's surviving rows:

    Processed.line   the rows as RowSpool stores them (one JSON line of row tuples), written to the spool as is
    Processed.keys / texts / categories / replays   each row's exact key, near-duplicate text, category and
                     whether it is a replay row (for dedup, the split's strata and the replay flags)

`finish()` returns the steps' StepStats, the same as if the steps had run in the caller (one process runs every
batch in order, so the first dropped examples, counts and notes are identical). An exception in the child is
raised by `receive`/`finish` in the caller. The caller reads the sources and computes the sketches meanwhile:
two threads of the caller write batches to and read results from the pipes, so neither process waits for the
other to drain a pipe; at most `IN_FLIGHT` batches are queued ahead.
"""

import contextlib
import gc
import os
import pickle
import queue
import signal
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from datasets_app.pipeline.forked import ChildDied, fork_child
from datasets_app.pipeline.types import Example, StepStats

IN_FLIGHT = 3
_HEADER = struct.Struct("<cQ")  # kind, payload length
_ROWS, _DONE, _STATS, _ERROR = b"R", b"D", b"S", b"E"


@dataclass
class Processed:
    line: bytes
    keys: list[str]
    texts: list[str]
    categories: list[str]
    replays: list[bool]


def spool_row(e: Example) -> tuple:
    """An Example as RowSpool stores it (`Example(*row)` makes it again)."""
    return (
        e.task_type,
        e.fields,
        e.origin,
        e.ref,
        e.category,
        e.augmented,
        e.group,
        e.tokens,
        e.split,
        e.key,
    )


class StepWorker:
    def __init__(self, steps: list, stats: dict[str, StepStats], key: Callable[[Example], tuple[str, str]]):
        from_parent, to_child = os.pipe()  # (read end, write end)
        from_child, to_parent = os.pipe()
        serve = lambda: _serve(steps, stats, key, from_parent, to_parent)  # noqa: E731
        self.pid = fork_child(serve, close=(to_child, from_child))
        os.close(from_parent)
        os.close(to_parent)
        self._out, self._in = os.fdopen(to_child, "wb"), os.fdopen(from_child, "rb")
        self._outbox: queue.Queue = queue.Queue()
        self._inbox: queue.Queue = queue.Queue()
        self._threads = [threading.Thread(target=self._send, daemon=True, name="steps-send"),
                         threading.Thread(target=self._receive, daemon=True, name="steps-receive")]  # fmt: skip
        for thread in self._threads:
            thread.start()
        self.pending, self._done = 0, False

    def submit(self, batch: list[Example]) -> None:
        self._outbox.put((_ROWS, orjson.dumps([spool_row(e) for e in batch])))
        self.pending += 1

    def receive(self) -> Processed:
        kind, value = self._next()
        if kind != _ROWS:
            raise ChildDied(f"the step process answered {kind!r}")
        self.pending -= 1
        return Processed(*value)

    def finish(self) -> dict[str, StepStats]:
        """The steps' StepStats, once every submitted batch was received."""
        assert not self.pending, "receive every batch first"
        self._outbox.put((_DONE, b""))
        kind, stats = self._next()
        self.close()
        return stats

    def _next(self) -> tuple[bytes, object]:
        kind, payload = self._inbox.get()
        if kind == _ERROR:
            raise pickle.loads(payload)
        if kind is None:
            raise ChildDied("the step process ended without an answer (killed, or out of memory?)")
        return kind, pickle.loads(payload)

    def _send(self) -> None:
        try:
            while (item := self._outbox.get()) is not None:
                kind, payload = item
                self._out.write(_HEADER.pack(kind, len(payload)))
                self._out.write(payload)
                self._out.flush()
        except (BrokenPipeError, ValueError):  # the child is gone or we closed: `_next` reports it
            pass

    def _receive(self) -> None:
        try:
            while header := self._in.read(_HEADER.size):
                kind, size = _HEADER.unpack(header)
                self._inbox.put((kind, self._in.read(size)))
        except (OSError, ValueError, struct.error):
            pass
        self._inbox.put((None, b""))

    def close(self) -> None:
        """Stop the child (at once, if it is still working) and the threads."""
        if self._done:
            return
        self._done = True
        self._outbox.put(None)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        for (
            thread
        ) in self._threads:  # the sender stops at None (or a broken pipe), the receiver at end of file
            thread.join(timeout=5)
        for pipe in (self._out, self._in):
            with contextlib.suppress(OSError):
                pipe.close()

    def __enter__(self) -> "StepWorker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _serve(steps: list, stats: dict[str, StepStats], key, read: int, write: int) -> None:
    """The child's loop: a batch in, its steps run, the surviving rows out; the StepStats at the end."""
    gc.disable()  # rows are acyclic; the child lives for one build
    inbox, out = os.fdopen(read, "rb"), os.fdopen(write, "wb")

    def answer(kind: bytes, value: object) -> None:
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_HEADER.pack(kind, len(payload)))
        out.write(payload)
        out.flush()

    try:
        while header := inbox.read(_HEADER.size):
            kind, size = _HEADER.unpack(header)
            if kind == _DONE:
                answer(_STATS, stats)
                return
            batch = [Example(*row) for row in orjson.loads(inbox.read(size))]
            for step in steps:
                started = time.perf_counter()
                batch = list(step(batch, stats[step.name]))
                stats[step.name].seconds += time.perf_counter() - started
            started = time.perf_counter()
            answer(_ROWS, _processed(batch, key))
            stats["dedup"].seconds += time.perf_counter() - started  # the keys were dedup's work
    except BaseException as e:  # noqa: BLE001 — raised again in the parent
        try:
            answer(_ERROR, e)
        except Exception:
            answer(_ERROR, RuntimeError(repr(e)))


def _processed(batch: list[Example], key) -> tuple:
    keys, texts = [], []
    for example in batch:
        example.key, text = key(example)
        keys.append(example.key)
        texts.append(text)
    line = orjson.dumps([spool_row(e) for e in batch]) + b"\n" if batch else b""
    return line, keys, texts, [e.category for e in batch], [e.origin == "replay" for e in batch]
