"""Run a dataset version's build steps: `run_pipeline(examples, recipe, ...) -> PipelineResult`.

1. Stream, a batch of rows at a time: normalise -> filter -> sensitive -> integrity -> dedup keys in two other
   processes (stepworker.py) while this one reads the next batches, then the sketches here and the batch written
   to `spool_dir/rows.jsonl`. Replay rows (a seeded sample of round(ratio × task rows) from
   `replay`, marked origin "replay") follow the task rows through dedup.collect into the spool.
2. dedup.decide: which rows are kept, their cluster ids.
3. split, on arrays: rows leaking into a pinned test split are dropped, the rest assigned train / validation /
   test. Splitting comes before augmenting, so only train rows are augmented and no variant of a test row can
   reach training (augmented and replay rows are train rows).
4. augment (when a ratio is above 0): one pass over the spool makes the copies of the picked train rows into
   `spool_dir/copies.jsonl`.
5. leakage of test against train + validation, on the signatures already computed (augmented copies, made from
   train rows, are not compared).

`PipelineResult.examples` applies the decisions while it reads the spool (iterable again, `len()` known), so no
second copy of the rows is written; it stays valid while `spool_dir` exists, which the caller owns and removes.
Rows come in input order, each followed by its augmented copies, then the replay rows, then the pinned test rows:
the same input and recipe give the same rows in the same order. Every step's StepStats is complete on return.

Memory: one batch of Example objects at a time, plus per row about 100 bytes of numpy arrays (exact id, LSH band
keys, category code, replay flag, dedup verdict and cluster id, split code); near-duplicate texts are a
memory-mapped file. Speed and memory at a million rows: bench/dataset_build.py, recorded in bench/RESULTS.md.
"""

import gc
import random
import time
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path

import numpy as np
import orjson

from datasets_app.pii import SensitiveWords
from datasets_app.pipeline.augment import KINDS, Augmenter, Translate
from datasets_app.pipeline.filters import Filter
from datasets_app.pipeline.forked import map_in_two
from datasets_app.pipeline.integrity import Integrity
from datasets_app.pipeline.leakage import LeakReport, NearIndex, ids_and_texts, text_index
from datasets_app.pipeline.near import EXACT, KEEP, NEAR, REASONS, Decision, Dedup, keyed_texts
from datasets_app.pipeline.normalise import Normalise
from datasets_app.pipeline.recipe import Recipe
from datasets_app.pipeline.sensitive import Sensitive
from datasets_app.pipeline.split import TEST, TRAIN, VALIDATION, assign_splits
from datasets_app.pipeline.stepworker import IN_FLIGHT, Processed, StepWorkers, spool_row
from datasets_app.pipeline.tokens import TokenCounter
from datasets_app.pipeline.types import DROPPED_EXAMPLES_KEPT, SPLITS, BuildError, Example, StepStats

BATCH = 4096
CHUNK = 65536  # rows of signatures read at once from the memory map
REPORT_EVERY = 100_000  # rows between progress reports while streaming
DROPPED = 255  # split code of a row that is not in the output
Progress = Callable[[float, str], object]


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector paused while a batch is made: rows are acyclic, and its passes over the
    thousands of new dicts of a batch cost a third of the time of reading one back."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class RowSpool:
    """Rows in a file, one JSON line of row tuples a batch (orjson: a quarter of pickle's time; fields and refs are
    JSON by construction); batch offsets are kept, so single rows can be fetched again."""

    def __init__(self, path: Path):
        self.path, self.count, self.offsets, self.firsts = path, 0, [], []
        self._file = path.open("wb")

    def write_line(self, line: bytes, count: int) -> None:
        """A batch already encoded as `write` would (stepworker.Processed.line)."""
        if count:
            self.offsets.append(self._file.tell())
            self.firsts.append(self.count)
            self._file.write(line)
            self.count += count

    def write(self, rows: list[Example]) -> None:
        if rows:
            self.offsets.append(self._file.tell())
            self.firsts.append(self.count)
            self._file.write(orjson.dumps([spool_row(e) for e in rows]) + b"\n")
            self.count += len(rows)

    def close(self) -> None:
        self._file.close()

    def batches(self) -> Iterator[tuple[int, list[Example]]]:
        """(index of the first row, rows) for each batch, in order."""
        with self.path.open("rb") as f:
            for first, line in zip(self.firsts, f, strict=True):
                with gc_paused():
                    rows = [Example(*row) for row in orjson.loads(line)]
                yield first, rows

    def fetch(self, indexes: Iterable[int]) -> dict[int, Example]:
        found, batch, rows = {}, -1, []
        with self.path.open("rb") as f:
            for index in sorted(set(indexes)):
                if bisect_right(self.firsts, index) - 1 != batch:  # each batch is read and parsed once
                    batch = bisect_right(self.firsts, index) - 1
                    f.seek(self.offsets[batch])
                    rows = orjson.loads(f.readline())
                found[index] = Example(*rows[index - self.firsts[batch]])
        return found


class BuiltExamples:
    """The built rows in order (see the module docstring): iterable more than once, with a length."""

    def __init__(self, rows: RowSpool, split_code: np.ndarray, group: np.ndarray, copies: RowSpool | None,
                 copy_sources: np.ndarray, pinned: list[Example]):  # fmt: skip
        self.rows, self.split_code, self.group, self.pinned = rows, split_code, group, pinned
        self.copies, self.copy_sources = copies, copy_sources
        self.count = int(np.count_nonzero(split_code != DROPPED)) + len(copy_sources) + len(pinned)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Example]:
        copies = self._copies()
        pending = next(copies, None)
        for first, batch in self.rows.batches():
            for index, example in enumerate(batch, first):
                code = self.split_code[index]
                if code == DROPPED:
                    continue
                example.split, example.group = SPLITS[code], int(self.group[index])
                yield example
                while pending is not None and pending[0] == index:
                    yield pending[1]
                    pending = next(copies, None)
        yield from self.pinned

    def _copies(self) -> Iterator[tuple[int, Example]]:
        if self.copies is not None:
            copies = (copy for _, batch in self.copies.batches() for copy in batch)
            yield from zip(self.copy_sources.tolist(), copies, strict=True)


@dataclass
class PipelineResult:
    examples: BuiltExamples  # the final rows, in order, with split set
    steps: list[StepStats]  # in the order they ran
    leakage: dict  # leakage.leakage_report's shape: test against train + validation


def run_pipeline(
    examples: Iterable[Example],
    recipe: Recipe,
    *,
    spool_dir: Path,
    words: SensitiveWords | None = None,
    pinned_test: list[Example] | None = None,
    replay: list[Example] | None = None,
    progress: Progress | None = None,
    backtranslate: Translate | None = None,
    total: int | None = None,
) -> PipelineResult:
    """Build the rows of a dataset version (see the module docstring). `total`, when known, is the number of input
    rows, for progress fractions; `progress` may raise to cancel. `backtranslate(text, language)` replaces the
    recipe's endpoint. Raises BuildError when a step leaves no rows or the data cannot be split."""
    build = _Build(recipe, Path(spool_dir), words, progress or (lambda fraction, message: None), total)
    try:
        build.stream(examples)
        build.add_replay(replay or [])
        decision = build.decide()
        split_code = build.split(decision, pinned_test or [])
        copies, copy_sources = build.augment(decision, split_code, backtranslate)
        leakage = build.leakage(split_code, pinned_test or [])
    finally:
        build.close()
    built = BuiltExamples(build.rows, split_code, decision.group, copies, copy_sources, build.pinned)
    build.report(1.0, f"{len(built)} rows built")
    order = ["normalise", "filter", "sensitive", "integrity", "replay", "dedup", "split", "augment"]
    return PipelineResult(built, [build.stats[n] for n in order if n in build.stats], leakage)


class _Build:
    def __init__(self, recipe: Recipe, spool_dir: Path, words, report: Progress, total: int | None):
        spool_dir.mkdir(parents=True, exist_ok=True)
        s = recipe.steps
        self.recipe, self.spool_dir, self.report, self.total = recipe, spool_dir, report, total
        self.counter = TokenCounter(s.filter.tokenizer)
        self.stream_steps = [Normalise(s.normalise), Filter(s.filter, self.counter), Sensitive(s.sensitive, words),
                             Integrity(s.integrity)]  # fmt: skip
        self.stats = {
            name: StepStats(name) for name in ("normalise", "filter", "sensitive", "integrity", "dedup")
        }
        self.dedup = Dedup(s.dedup, spool_dir)
        self.rows = RowSpool(spool_dir / "rows.jsonl")
        self.categories: dict[str, int] = {}
        self.category_codes, self.replayed = array("i"), array("b")
        self.pinned: list[Example] = []

    def close(self) -> None:
        self.dedup.close()
        self.rows.close()

    def _timed(self, name: str, step, batch: list[Example]) -> list[Example]:
        started = time.perf_counter()
        out = list(step(batch, self.stats[name]))
        self.stats[name].seconds += time.perf_counter() - started
        return out

    def stream(self, examples: Iterable[Example]) -> None:
        """Read the sources here while StepWorkers run the per-row steps in other processes (stepworker.py)."""
        rows, seen, reported = iter(examples), 0, 0
        with StepWorkers(self.stream_steps, keyed_texts) as worker:
            while True:
                with gc_paused():  # the source's rows too: reading them makes as many dicts as the steps do
                    batch = list(islice(rows, BATCH))
                if not batch:
                    break
                seen += len(batch)
                self._check_task_type(batch, "source")
                worker.submit(batch)
                while worker.pending > IN_FLIGHT:
                    self._spool_processed(worker.receive())
                if seen - reported >= REPORT_EVERY:
                    reported = seen
                    self.report(0.6 * min(1.0, seen / self.total) if self.total else 0.0, f"{seen} rows read")
            while worker.pending:
                self._spool_processed(worker.receive())
        for name in ("normalise", "filter", "sensitive", "integrity"):
            if not self.stats[name].rows_out:
                raise BuildError(self._nothing_left(name))

    def _spool_processed(self, done: Processed) -> None:
        for name, stats in done.stats.items():
            self.stats[name].merge(stats)
        started = time.perf_counter()
        self.dedup.add(done.keys, done.texts, self.stats["dedup"])
        self.rows.write_line(done.line, len(done.keys))
        codes = self.categories
        self.category_codes.extend([codes.setdefault(c, len(codes)) for c in done.categories])
        self.replayed.extend(done.replays)
        self.stats["dedup"].seconds += time.perf_counter() - started

    def _check_task_type(self, batch: list[Example], what: str) -> None:
        for example in batch:
            if example.task_type != self.recipe.task_type:
                raise BuildError(f"a {what} row is a {example.task_type} row, the recipe builds "
                                 f"{self.recipe.task_type} rows: {example.ref}")  # fmt: skip

    def _spool(self, batch: list[Example]) -> None:
        batch = self._timed("dedup", self.dedup.collect, batch)
        self.rows.write(batch)
        codes = self.categories
        self.category_codes.extend([codes.setdefault(e.category, len(codes)) for e in batch])
        self.replayed.extend([e.origin == "replay" for e in batch])

    def _nothing_left(self, name: str) -> str:
        if name == "normalise":
            return "no rows left after reading the sources: they hold no rows"
        counts = "; ".join(_counts(s) for s in self.stats.values() if s.rows_in or s.name == name)
        return f"no rows left after {name}: {counts}"

    def add_replay(self, replay: list[Example]) -> None:
        cfg, task_rows = self.recipe.sources.replay, self.stats["integrity"].rows_out
        if cfg is None:
            return
        stats = self.stats["replay"] = StepStats("replay", rows_in=len(replay))
        want = round(cfg.ratio * task_rows)
        picked = random.Random(self.recipe.steps.split.seed).sample(
            range(len(replay)), min(want, len(replay))
        )
        rows = [replace(replay[i], origin="replay", split="", group=-1) for i in sorted(picked)]
        for row in rows:
            row.tokens = row.tokens or self.counter.count(row)
        self._check_task_type(rows, "replay")
        for start in range(0, len(rows), BATCH):
            self._spool(rows[start : start + BATCH])
        stats.rows_out = len(rows)
        short = f"; only {len(replay)} available" if want > len(replay) else ""
        stats.notes.append(
            f"{len(rows)} replay rows added for {task_rows} task rows (ratio {cfg.ratio:g}){short}"
        )

    def decide(self) -> Decision:
        self.report(0.6, f"{self.stats['dedup'].rows_in} rows read; removing duplicates")
        stats, started = self.stats["dedup"], time.perf_counter()
        self.rows.close()
        decision = self.dedup.decide()
        for verdict in (EXACT, NEAR):
            self._record_drops(stats, np.flatnonzero(decision.verdict == verdict), REASONS[verdict])
        stats.rows_out = int(np.count_nonzero(decision.verdict == KEEP))
        stats.seconds += time.perf_counter() - started
        return decision

    def _record_drops(self, stats: StepStats, indexes: np.ndarray, reason: str) -> None:
        if not len(indexes):
            return
        shown = self.rows.fetch(indexes[:DROPPED_EXAMPLES_KEPT].tolist())
        for example in shown.values():
            stats.drop(example, reason)
        stats.dropped[reason] += len(indexes) - len(shown)

    def split(self, decision: Decision, pinned: list[Example]) -> np.ndarray:
        """The split code of each spooled row; DROPPED for rows not in the output."""
        self.report(0.65, "splitting")
        stats = self.stats["split"] = StepStats("split")
        started = time.perf_counter()
        kept = np.flatnonzero(decision.verdict == KEEP)
        stats.rows_in = len(kept) + len(pinned)
        if pinned:
            leaking = kept[self._leaking(kept, pinned)]
            self._record_drops(stats, leaking, "leaks_pinned_test")
            kept = np.setdiff1d(kept, leaking)
            stats.notes.append(f"test split: {len(pinned)} rows pinned from an earlier version")
            self.pinned = [replace(e, split="test", group=self.dedup.count + i) for i, e in enumerate(pinned)]
        if not len(kept):
            raise BuildError(
                f"no rows left after split: all {stats.rows_in - len(pinned)} rows repeat a pinned test row"
            )
        categories = np.frombuffer(self.category_codes, dtype=np.int32)[kept]
        forced = np.frombuffer(self.replayed, dtype=np.int8)[kept] > 0
        codes, notes = assign_splits(
            decision.group[kept], categories, forced, self.recipe.steps.split, pinned=bool(pinned)
        )
        stats.notes += notes
        split_code = np.full(self.dedup.count, DROPPED, dtype=np.uint8)
        split_code[kept] = codes
        stats.rows_out = len(kept) + len(pinned)
        stats.seconds += time.perf_counter() - started
        return split_code

    def _leaking(self, rows: np.ndarray, pinned: list[Example]) -> np.ndarray:
        index = text_index(*ids_and_texts(pinned), self.recipe.steps.dedup.threshold)
        out = np.zeros(len(rows), dtype=bool)
        for lo in range(0, len(rows), CHUNK):
            out[lo : lo + CHUNK] = self._match(index, rows[lo : lo + CHUNK])[0] > 0
        return out

    def _match(self, index: NearIndex, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`index.match` for spooled rows (sorted indexes); signatures are computed for candidates only."""
        ids, bands = self.dedup.all_ids(), self.dedup.all_bands()
        return index.match(ids[rows], bands[rows], lambda positions: self.dedup.signatures(rows[positions]))

    def augment(
        self, decision: Decision, split_code: np.ndarray, backtranslate
    ) -> tuple[RowSpool | None, np.ndarray]:
        """Copies of the picked train rows, spooled, and the index of each copy's source row."""
        cfg = self.recipe.steps
        stats = self.stats["augment"] = StepStats("augment", rows_in=self.stats["split"].rows_out)
        stats.rows_out = stats.rows_in
        if not any(getattr(cfg.augment, kind).ratio > 0 for kind in KINDS):
            return None, np.empty(0, np.int64)
        self.report(0.7, "augmenting train rows")
        started, augmenter = time.perf_counter(), Augmenter(cfg.augment, cfg.split.seed, backtranslate)
        train = np.flatnonzero((split_code == TRAIN) & (np.frombuffer(self.replayed, dtype=np.int8) == 0))
        picked: dict[int, list[tuple[int, str]]] = {}  # row index -> [(train position, kind)]
        for kind, positions in augmenter.plan(len(train)).items():
            for position in sorted(positions):
                picked.setdefault(int(train[position]), []).append((position, kind))
        copies, sources = RowSpool(self.spool_dir / "copies.jsonl"), []
        for first, batch in self.rows.batches():
            jobs, job_rows = [], []
            for index in (i for i in range(first, first + len(batch)) if i in picked):
                example = batch[index - first]
                example.split, example.group = "train", int(decision.group[index])
                jobs += [(position, example, kind) for position, kind in picked[index]]  # in KINDS order
                job_rows += [index] * len(picked[index])
            if jobs:
                made = self._made(augmenter.copies(jobs))
                copies.write([copy for _, copy in made])
                sources += [job_rows[at] for at, _ in made]
        copies.close()
        stats.rows_out += copies.count
        stats.notes += augmenter.notes()
        stats.seconds = time.perf_counter() - started
        return copies, np.array(sources, dtype=np.int64)

    def _made(self, results: list[list[Example]]) -> list[tuple[int, Example]]:
        made = []
        for at, copies in enumerate(results):
            for copy in copies:
                copy.key, _ = keyed_texts(copy)
                copy.tokens = self.counter.count(copy)
                made.append((at, copy))
        return made

    def leakage(self, split_code: np.ndarray, pinned: list[Example]) -> dict:
        self.report(0.95, "measuring leakage of test into train and validation")
        threshold = self.recipe.steps.dedup.threshold
        test = np.flatnonzero(split_code == TEST)
        if pinned:
            index = text_index(*ids_and_texts(pinned), threshold)
        else:
            ids, bands = self.dedup.all_ids()[test], self.dedup.all_bands()[test]
            index = NearIndex(ids, bands, threshold, lambda at: self.dedup.signatures(test[at]))
        report = LeakReport(index)
        train_like = np.flatnonzero((split_code == TRAIN) | (split_code == VALIDATION))
        parts = [train_like[lo : lo + CHUNK] for lo in range(0, len(train_like), CHUNK)]
        # each part is matched on its own: the first half of them in a forked child, on the other core
        for part, (kind, ref) in zip(
            parts, map_in_two(lambda rows: self._match(index, rows), parts), strict=True
        ):
            report.add(kind, ref, _LazyRefs(self.rows, part))
        return report.as_dict([e.ref for e in pinned] if pinned else _LazyRefs(self.rows, test))


class _LazyRefs:
    """refs[i] = the ref of spooled row rows[i], read only when asked (the leakage report shows ≤ 5)."""

    def __init__(self, spool: RowSpool, rows: np.ndarray):
        self.spool, self.rows = spool, rows

    def __getitem__(self, i: int) -> dict:
        index = int(self.rows[i])
        return self.spool.fetch([index])[index].ref


def _counts(stats: StepStats) -> str:
    dropped = ", ".join(f"{reason} {n}" for reason, n in stats.dropped.most_common())
    return f"{stats.name} {stats.rows_in} in, {stats.rows_out} out" + (f" ({dropped})" if dropped else "")
