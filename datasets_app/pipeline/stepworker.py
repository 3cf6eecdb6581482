"""The per-row steps of a build (normalise, filter, sensitive, integrity) and dedup's keys, in other processes.

`StepWorkers(steps, key)` forks `WORKERS` children (see forked.py for why a bare fork), each with its own copy of
the steps. The caller `submit`s batches of Examples in input order, dealt to the children in turn, and
`receive`s, in the same order, what the rest of the build needs of each batch's surviving rows:

    Processed.line   the rows as RowSpool stores them (one JSON line of row tuples), written to the spool as is
    Processed.keys / texts / categories / replays   each row's exact key, near-duplicate text, category and
                     whether it is a replay row (for dedup, the split's strata and the replay flags)
    Processed.stats  what each step did to this batch (StepStats by step name, "dedup" holding the keys' time):
                     merged in order (StepStats.merge), they are what one process running every batch gives

An exception in a child is raised by `receive` in the caller. The caller reads the sources and computes the
sketches meanwhile: two threads of the caller per child write batches to and read results from the pipes, so
neither side waits for the other to drain a pipe; at most `IN_FLIGHT` batches are queued ahead. Two children,
because one was the stream's bottleneck: the steps cost a row more than reading it does here (measured in
bench/RESULTS.md).
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

IN_FLIGHT = 4  # two a child
WORKERS = 2
_HEADER = struct.Struct("<cQ")  # kind, payload length
_ROWS, _ERROR = b"R", b"E"


@dataclass
class Processed:
    line: bytes
    keys: list[str]
    texts: list[str]
    categories: list[str]
    replays: list[bool]
    stats: dict[str, StepStats]


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


class StepWorkers:
    """`count` StepWorker children taking the batches in turn (see the module docstring)."""

    def __init__(self, steps: list, key: Callable[[Example], tuple[str, str]], count: int = WORKERS):
        self.workers: list[StepWorker] = []
        try:  # every child is forked before any thread starts, and closes the pipes of those forked before it
            for _ in range(count):
                others = [fd for worker in self.workers for fd in worker.fds()]
                self.workers.append(StepWorker(steps, key, close=others))
        except BaseException:
            self.close()
            raise
        for worker in self.workers:
            worker.start()
        self.sent = self.received = 0

    @property
    def pending(self) -> int:
        return self.sent - self.received

    def submit(self, batch: list[Example]) -> None:
        self.workers[self.sent % len(self.workers)].submit(batch)
        self.sent += 1

    def receive(self) -> Processed:
        done = self.workers[self.received % len(self.workers)].receive()
        self.received += 1
        return done

    def close(self) -> None:
        for worker in self.workers:
            worker.close()

    def __enter__(self) -> "StepWorkers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StepWorker:
    """One child running the steps on the batches it is sent, in order; `start()` starts the caller's threads."""

    def __init__(
        self, steps: list, key: Callable[[Example], tuple[str, str]], close: list[int] | None = None
    ):
        from_parent, to_child = os.pipe()  # (read end, write end)
        from_child, to_parent = os.pipe()
        serve = lambda: _serve(steps, key, from_parent, to_parent)  # noqa: E731
        self.pid = fork_child(serve, close=(to_child, from_child, *(close or ())))
        os.close(from_parent)
        os.close(to_parent)
        self._out, self._in = os.fdopen(to_child, "wb"), os.fdopen(from_child, "rb")
        self._outbox: queue.Queue = queue.Queue()
        self._inbox: queue.Queue = queue.Queue()
        self._threads = [threading.Thread(target=self._send, daemon=True, name="steps-send"),
                         threading.Thread(target=self._receive, daemon=True, name="steps-receive")]  # fmt: skip
        self._done = False

    def fds(self) -> list[int]:
        """This side's ends of the child's pipes (a child forked later must not hold them open)."""
        return [self._out.fileno(), self._in.fileno()]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, batch: list[Example]) -> None:
        self._outbox.put((_ROWS, orjson.dumps([spool_row(e) for e in batch])))

    def receive(self) -> Processed:
        kind, payload = self._inbox.get()
        if kind == _ERROR:
            raise pickle.loads(payload)
        if kind != _ROWS:
            raise ChildDied("the step process ended without an answer (killed, or out of memory?)")
        return Processed(*pickle.loads(payload))

    def _send(self) -> None:
        try:
            while (item := self._outbox.get()) is not None:
                kind, payload = item
                self._out.write(_HEADER.pack(kind, len(payload)))
                self._out.write(payload)
                self._out.flush()
        except (BrokenPipeError, ValueError):  # the child is gone or we closed: `receive` reports it
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
        # the sender stops at None (or a broken pipe), the receiver at end of file; unstarted ones are not alive
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=5)
        for pipe in (self._out, self._in):
            with contextlib.suppress(OSError):
                pipe.close()


def _serve(steps: list, key, read: int, write: int) -> None:
    """The child's loop: a batch in, its steps run, the surviving rows and the batch's StepStats out."""
    gc.disable()  # rows are acyclic; the child lives for one build
    inbox, out = os.fdopen(read, "rb"), os.fdopen(write, "wb")

    def answer(kind: bytes, value: object) -> None:
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_HEADER.pack(kind, len(payload)))
        out.write(payload)
        out.flush()

    try:
        while header := inbox.read(_HEADER.size):
            _, size = _HEADER.unpack(header)
            batch = [Example(*row) for row in orjson.loads(inbox.read(size))]
            stats = {step.name: StepStats(step.name) for step in steps}
            for step in steps:
                started = time.perf_counter()
                batch = list(step(batch, stats[step.name]))
                stats[step.name].seconds += time.perf_counter() - started
            started = time.perf_counter()
            done = _processed(batch, key)
            # the keys are dedup's work
            stats["dedup"] = StepStats("dedup", seconds=time.perf_counter() - started)
            answer(_ROWS, (*done, stats))
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
