"""Leakage: rows of a test set found again, exactly or nearly, in the data a model is trained on.

`leakage_report(train_like, test, threshold)` compares any two sets of `Example`s: a version's test split against
its train and validation splits (zero by construction, shown anyway), or later a benchmark against the training
data of another model. The test side is indexed in memory (its exact ids, MinHash signatures and LSH band keys:
~600 bytes a row); the training side streams through in batches, so it may be as large as a whole corpus.
Rows are compared as the dedup step compares them (near.py): LSH bands of the one-permutation sketch propose
candidates, the notebook's MinHash signatures confirm them, computed for candidate rows only.

The report: `exact` = test rows with an exact duplicate (equal normalised fields) among the training rows, `near`
= further test rows with a near duplicate (MinHash Jaccard estimate ≥ threshold), `examples` = up to 5 pairs
`{"test": ref, "train": ref, "kind": "exact" | "near"}`, `checked_test` / `checked_train` = rows compared.
The same index (`NearIndex`) drops rows that leak into a pinned test split (split.py, run.py).
"""

from collections.abc import Callable, Iterable
from itertools import islice

import numpy as np

from datasets_app.pipeline.near import (
    BATCH,
    EXACT,
    NEAR,
    WINDOW,
    band_keys,
    exact_id,
    find_sorted,
    keyed_texts,
    many_signatures,
    similar,
    sketch,
)
from datasets_app.pipeline.types import Example

EXAMPLES_KEPT = 5
KINDS = {EXACT: "exact", NEAR: "near"}
Signatures = Callable[[np.ndarray], np.ndarray]  # row positions (sorted, unique) -> their MinHash signatures


class NearIndex:
    """A reference set of rows (exact ids and LSH band keys) in which other rows are looked up; the MinHash
    signatures of reference rows come from `signatures_of(positions)`, asked only for rows that are candidates of
    some lookup (`text_index` makes them all from the texts; a build's dedup step has already made most)."""

    def __init__(self, ids: np.ndarray, bands: np.ndarray, threshold: float, signatures_of: Signatures):
        self.threshold, self.signatures_of = threshold, signatures_of
        self.id_order = np.argsort(ids, kind="stable")
        self.sorted_ids = np.asarray(ids, dtype=np.uint64)[self.id_order]
        self.band_order = [np.argsort(bands[:, band], kind="stable") for band in range(bands.shape[1])]
        self.sorted_bands = [bands[order, band] for band, order in enumerate(self.band_order)]

    def __len__(self) -> int:
        return len(self.sorted_ids)

    def match(self, ids: np.ndarray, bands: np.ndarray, signatures_of: Signatures):
        """For each row: (kind, reference index): kind EXACT, NEAR or 0 (none, index -1); exact wins.

        `bands` are the rows' LSH band keys; `signatures_of(positions)` gives the MinHash signatures of the rows at
        those positions, asked only for rows that share a band with a reference row."""
        n = len(ids)
        kind, ref = np.zeros(n, dtype=np.uint8), np.full(n, -1, dtype=np.int64)
        if not n or not len(self):
            return kind, ref
        ids = np.asarray(ids, dtype=np.uint64)
        at, hit = find_sorted(self.sorted_ids, ids)
        kind[hit], ref[hit] = EXACT, self.id_order[at[hit]]
        rows, refs = self._candidates(bands, ~hit)
        if len(rows):
            involved, known = np.unique(rows), np.unique(refs)
            sigs, ref_sigs = signatures_of(involved), self.signatures_of(known)
            at_row, at_ref = np.searchsorted(involved, rows), np.searchsorted(known, refs)
            ok = similar(sigs[at_row], ref_sigs[at_ref], self.threshold)
            rows, refs = (
                rows[ok][::-1],
                refs[ok][::-1],
            )  # reversed: the smallest reference wins the assignment
            kind[rows], ref[rows] = NEAR, refs
        return kind, ref

    def match_texts(self, ids: np.ndarray, texts: list[str]):
        """`match` for rows whose prepared texts are at hand."""
        bands = band_keys(sketch(texts), self.threshold)
        return self.match(ids, bands, lambda rows: many_signatures([texts[r] for r in rows.tolist()]))

    def _candidates(self, bands: np.ndarray, open_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, reference) pairs sharing a band key, sorted, for the rows still open."""
        found = []
        for band, (order, sorted_keys) in enumerate(zip(self.band_order, self.sorted_bands, strict=True)):
            keys = bands[:, band]
            start = np.searchsorted(sorted_keys, keys)
            for offset in range(WINDOW):
                at = start + offset
                inside = at < len(sorted_keys)
                same = np.zeros(len(keys), dtype=bool)
                same[inside] = sorted_keys[at[inside]] == keys[inside]
                same &= open_rows
                if not same.any():
                    break
                rows = np.flatnonzero(same)
                found.append(rows.astype(np.int64) * len(self) + order[at[rows]])
        if not found:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        pairs = np.unique(np.concatenate(found))
        return pairs // len(self), pairs % len(self)


class LeakReport:
    """Accumulates matches of training rows, batch by batch, against a `NearIndex` of the test rows."""

    def __init__(self, index: NearIndex):
        self.index = index
        self.kind = np.zeros(len(index), dtype=np.uint8)  # the strongest match of each test row
        self.pairs: list[tuple[int, dict, int]] = []  # (test index, train ref, kind)
        self.checked_train = 0

    def add(self, kind: np.ndarray, ref: np.ndarray, refs) -> None:
        """Count a batch of training rows: `NearIndex.match`'s answer for them, and their refs (`refs[i]`)."""
        self.checked_train += len(kind)
        rows = np.flatnonzero(kind)
        strongest = np.where(self.kind == 0, 255, self.kind)  # EXACT (1) beats NEAR (2) beats none
        np.minimum.at(strongest, ref[rows], kind[rows])
        self.kind = np.where(strongest == 255, 0, strongest).astype(np.uint8)
        for row in rows[: EXAMPLES_KEPT - len(self.pairs)]:
            self.pairs.append((int(ref[row]), refs[row], int(kind[row])))

    def as_dict(self, test_refs) -> dict:
        return {
            "exact": int(np.count_nonzero(self.kind == EXACT)),
            "near": int(np.count_nonzero(self.kind == NEAR)),
            "examples": [
                {"test": test_refs[t], "train": train, "kind": KINDS[k]} for t, train, k in self.pairs
            ],
            "checked_test": len(self.index),
            "checked_train": self.checked_train,
        }


def ids_and_texts(examples: list[Example]) -> tuple[np.ndarray, list[str]]:
    """Exact ids and prepared near-duplicate texts of `examples`; sets each `example.key`."""
    ids, texts = [], []
    for example in examples:
        example.key, text = keyed_texts(example)
        ids.append(exact_id(example.key))
        texts.append(text)
    return np.array(ids, dtype=np.uint64), texts


def text_index(ids: np.ndarray, texts: list[str], threshold: float) -> NearIndex:
    """A NearIndex of rows whose prepared texts are at hand (`ids_and_texts`); their signatures are made here."""
    sigs = many_signatures(texts)
    return NearIndex(ids, band_keys(sketch(texts), threshold), threshold, lambda positions: sigs[positions])


def leakage_report(train_like: Iterable[Example], test: Iterable[Example], threshold: float = 0.8) -> dict:
    """How many `test` rows appear again in `train_like`, exactly or nearly (see the module docstring)."""
    test = list(test)
    return leak_matches(train_like, test, threshold).as_dict([example.ref for example in test])


def leak_matches(train_like: Iterable[Example], test: list[Example], threshold: float = 0.8) -> LeakReport:
    """The accumulated matches; ``.kind[i]`` is test row i's strongest match (0 none, EXACT, NEAR)."""
    index = text_index(*ids_and_texts(test), threshold)
    report = LeakReport(index)
    rows = iter(train_like)
    while batch := list(islice(rows, BATCH)):
        report.add(*index.match_texts(*ids_and_texts(batch)), [example.ref for example in batch])
    return report
