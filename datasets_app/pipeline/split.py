"""Step g, split: train / validation / test, seeded, group-aware, stratified by category.

- Group-aware: every row of one group (`example.group`: a near-duplicate cluster with its augmented copies) lands
  in one split. Rows forced to train (augmented and replay rows) take their whole group with them.
- Ratios are met as closely as whole groups allow: groups are shuffled with the seed and dealt one by one to the
  split furthest behind its share so far (a running error that never exceeds about one group per split). With
  `stratify`, groups are dealt category by category, so every category is split in the same proportions.
  Each split with a ratio above 0 gets at least one group.
- A split too small to stratify (a category with fewer groups than there are splits to fill) is split without
  stratification, with a note; fewer groups than splits to fill is a `BuildError`.
- A pinned test split (rows of an earlier version's test split) is the test split verbatim: the other rows share
  train and validation in their ratio, and a row that is an exact or near duplicate of a pinned test row is
  dropped ("leaks_pinned_test").

`assign_splits` works on arrays (run.py keeps no Example objects in memory); `Split` runs it on a list.
"""

from collections.abc import Iterable

import numpy as np

from datasets_app.pipeline.leakage import ids_and_texts, text_index
from datasets_app.pipeline.recipe import SplitStep
from datasets_app.pipeline.types import SPLITS, BuildError, Example, StepStats

TRAIN, VALIDATION, TEST = range(3)


def ratios(cfg: SplitStep, pinned: bool) -> np.ndarray:
    r = np.array([cfg.train, cfg.validation, 0.0 if pinned else cfg.test])
    return r / r.sum()


def assign_splits(
    groups: np.ndarray, categories: np.ndarray, forced: np.ndarray, cfg: SplitStep, *, pinned: bool = False
) -> tuple[np.ndarray, list[str]]:
    """Split codes (TRAIN, VALIDATION, TEST) for rows with these groups, category codes and forced-to-train flags;
    and notes. Deterministic for equal inputs and seed."""
    share = ratios(cfg, pinned)
    to_fill = [s for s in range(3) if share[s] > 0]
    notes: list[str] = []
    group_ids, row_group = np.unique(groups, return_inverse=True)
    sizes = np.bincount(row_group)
    group_forced = np.bincount(row_group, weights=forced.astype(np.float64)) > 0
    first_row = np.full(len(group_ids), len(groups))
    np.minimum.at(first_row, row_group, np.arange(len(groups)))
    group_category = categories[first_row]
    free = np.flatnonzero(~group_forced)
    if len(groups) < len(to_fill) or len(free) < len(to_fill) - (TRAIN in to_fill and group_forced.any()):
        raise BuildError(
            f"{len(groups)} rows in {len(group_ids)} group{'s' * (len(group_ids) != 1)} cannot fill {len(to_fill)} splits "
            f"({', '.join(SPLITS[s] for s in to_fill)}): add rows or set a ratio to 0"
        )
    order = _deal_order(free, group_category, len(to_fill), cfg, notes)
    split_of = np.full(len(group_ids), TRAIN, dtype=np.uint8)
    _deal(order, sizes, share, forced_rows=int(sizes[group_forced].sum()), split_of=split_of)
    _fill_empty(order, to_fill, split_of, group_forced)
    codes = split_of[row_group]
    counts = np.bincount(codes, minlength=3)
    notes.insert(0, ", ".join(f"{counts[s]} {SPLITS[s]}" for s in range(3)) + " rows")
    return codes, notes


def _deal_order(
    free: np.ndarray, category: np.ndarray, splits: int, cfg: SplitStep, notes: list
) -> np.ndarray:
    """The free groups in dealing order: shuffled with the seed, by category when stratifying."""
    rank = np.random.default_rng(cfg.seed).permutation(len(free))
    if not cfg.stratify:
        return free[np.argsort(rank)]
    counts = np.bincount(category[free]) if len(free) else np.zeros(0, int)
    small = np.flatnonzero((counts > 0) & (counts < splits))
    if len(small):
        notes.append(
            f"not stratified: {len(small)} categor{'y has' if len(small) == 1 else 'ies have'} fewer groups "
            f"than the {splits} splits to fill"
        )
        return free[np.argsort(rank)]
    return free[np.lexsort((rank, category[free]))]


def _deal(
    order: np.ndarray, sizes: np.ndarray, share: np.ndarray, forced_rows: int, split_of: np.ndarray
) -> None:
    """Give each group to the split furthest behind its share of the free rows dealt so far."""
    free_rows = int(sizes[order].sum())
    total = free_rows + forced_rows
    targets = share * total
    targets[TRAIN] = max(0.0, targets[TRAIN] - forced_rows)  # forced rows already count as train
    if not free_rows:
        return
    want = (targets / targets.sum()).tolist() if targets.sum() else share.tolist()
    dealt, given = 0, [0.0, 0.0, 0.0]
    for group, size in zip(order.tolist(), sizes[order].tolist(), strict=True):
        dealt += size
        lag = [want[s] * dealt - given[s] if want[s] > 0 else -np.inf for s in range(3)]
        best = lag.index(max(lag))
        given[best] += size
        split_of[group] = best


def _fill_empty(order: np.ndarray, to_fill: list[int], split_of: np.ndarray, forced: np.ndarray) -> None:
    """Move one group into each split to fill that got none, from the split with the most free groups."""
    for s in to_fill:
        if s == TRAIN and forced.any() or np.any(split_of[order] == s):
            continue
        counts = np.bincount(split_of[order], minlength=3)
        donor = int(np.argmax(counts))
        split_of[order[np.flatnonzero(split_of[order] == donor)[-1]]] = s


class Split:
    """Step g on a list of rows (tests, small builds); `pinned_test` rows become the test split verbatim."""

    name = "split"

    def __init__(self, cfg: SplitStep, threshold: float = 0.8):
        self.cfg, self.threshold = cfg, threshold

    def __call__(
        self, examples: Iterable[Example], stats: StepStats, pinned_test: list[Example] | None = None
    ) -> list[Example]:
        rows = list(examples)
        stats.rows_in += len(rows)
        if pinned_test:
            rows = self._drop_leaks(rows, pinned_test, stats)
        if not rows:
            raise BuildError(
                f"no rows left after split: {stats.rows_in} rows in, {dict(stats.dropped)} dropped"
            )
        codes = {}
        categories = np.array([codes.setdefault(e.category, len(codes)) for e in rows], dtype=np.int64)
        groups = np.array([e.group if e.group >= 0 else -1 - i for i, e in enumerate(rows)], dtype=np.int64)
        forced = np.array([bool(e.augmented) or e.origin == "replay" for e in rows])
        splits, notes = assign_splits(groups, categories, forced, self.cfg, pinned=bool(pinned_test))
        for example, code in zip(rows, splits.tolist(), strict=True):
            example.split = SPLITS[code]
        for example in pinned_test or []:
            example.split = "test"
        stats.notes += notes
        out = rows + list(pinned_test or [])
        stats.rows_out += len(out)
        return out

    def _drop_leaks(self, rows: list[Example], pinned_test: list[Example], stats: StepStats) -> list[Example]:
        index = text_index(*ids_and_texts(pinned_test), self.threshold)
        kind, _ = index.match_texts(*ids_and_texts(rows))
        for example in (e for e, k in zip(rows, kind.tolist(), strict=True) if k):
            stats.drop(example, "leaks_pinned_test")
        stats.notes.append(f"test split: {len(pinned_test)} rows pinned from an earlier version")
        return [e for e, k in zip(rows, kind.tolist(), strict=True) if not k]
