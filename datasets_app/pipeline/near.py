"""Step e, dedup: exact duplicates by key, near duplicates by MinHash, one row kept per cluster.

Near duplicates need the whole set, so the step has two halves:
- `Dedup.collect(examples, stats)` streams: it sets `example.key` (sha256 hex of the fields with every text
  normalised as `datasets_app.dedup.normalise` does: case, width, invisible characters and whitespace ignored),
  writes each row's near-duplicate text to `spool_dir/near_texts.utf8` and computes its LSH band keys in numpy
  batches. In memory stay an 8-byte exact id and the band keys (4 bytes a band, 17 bands at the default
  threshold): about 80 bytes a row.
- `Dedup.decide()` (after the last row) drops exact duplicates (equal exact id: the first 8 bytes of the key, a
  collision chance of 3e-8 at a million rows) and near duplicates: rows sharing an LSH band become candidate
  pairs; each is confirmed when the MinHash signatures of the two texts estimate a Jaccard similarity of at least
  the threshold; confirmed pairs are joined into clusters (connected components: a~b and b~c put a, b, c in one
  cluster). The earliest row of a cluster in input order is kept; `Decision.group` is its index, the cluster id.

The near-duplicate text of a row is every text but system prompts (shared by many unrelated rows, they would make
them look alike): user and assistant turns, instruction/input/output, the classification text, prompt + chosen +
rejected; normalised, spaces removed, cut into character 3-grams as the error notebook does.

Two sketches of a text, both over the notebook's 3-gram hashes (`datasets_app.dedup.shingle_hash`):
- `signatures`: the notebook's MinHash, 128 permutations of every 3-gram, equal to `dedup.signature` (a test holds
  them equal), computed a batch at a time in numpy (~18 µs a 230-character row). It decides: a pair is a near
  duplicate when at least threshold × 128 of its values agree.
- `sketch`: a one-permutation MinHash (Li, Owen & Zhang 2012) with optimal densification (Shrivastava 2017): a
  3-gram hash's top 7 bits pick one of 128 bins, each bin keeps its smallest value, empty bins borrow from other
  bins (~10 µs a row). Only its LSH bands are kept, to find candidate pairs: its Jaccard estimate is unbiased on
  random text but less precise than `signatures` for short texts (1.3x the spread at 10 3-grams) and off by a
  few hundredths on templated rows, so alone it decides only on overwhelming evidence:
A candidate pair sharing at least `sure_votes` of its bands (10 of 17 at 0.8; a pair 0.05 below the threshold
does that less than once in 10,000) is a near duplicate at once; the rows of the other candidate pairs get their
`signatures` computed from the text spool (7% of the rows in a million-row benchmark with 10% near duplicates).

LSH: `bands` × `rows` of the 128 sketch values, chosen to minimise 0.02 × false positives + 0.98 × false negatives
(recall first: a false candidate costs one comparison). Within a band, rows with equal keys are paired with their
next `WINDOW` neighbours in input order, not all with all, so a huge bucket (a template repeated 100k times)
costs linear work; chains of neighbours still join a cluster of mutual near duplicates.
"""

import hashlib
import mmap
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from math import comb
from pathlib import Path

import numpy as np

from datasets_app.dedup import _CODE_POINT_BITS, _GOLDEN, NUM_PERM, SEED, SHINGLE_SIZE, _fmix32, _permutations
from datasets_app.dedup import normalise as dedup_normalise
from datasets_app.pipeline.forked import map_in_two
from datasets_app.pipeline.recipe import DedupStep
from datasets_app.pipeline.types import Example, StepStats

BATCH = 4096
THREADS = 2
IN_FLIGHT = 4  # signature jobs queued ahead of the caller
MIN_SPLIT = 512  # a batch is halved between the threads when each half has at least this many rows
WINDOW = 6
COMPACT_PAIRS = 8_000_000  # candidate pairs held before duplicates across bands are merged (64 MB)
CHUNK_SHINGLES = 4096  # shingles hashed at once: a 128 × 4096 uint32 block (2 MB) stays in cache
FORK_MIN = 16_384  # texts from which a build's `many_signatures` signs half of them in a forked child
KEEP, EXACT, NEAR = 0, 1, 2
REASONS = {EXACT: "exact_duplicate", NEAR: "near_duplicate"}
_EMPTY = np.iinfo(np.uint32).max
_system_normalise = lru_cache(maxsize=256)(dedup_normalise)  # a build has a handful of system prompts
_BAND_MIX = np.uint64(0xFF51AFD7ED558CCD)  # MurmurHash3's 64-bit multiplier
_VALUE_BITS = 25  # 7 bits pick one of the 128 bins, 25 bits are the value
_VALUE_MASK = (1 << _VALUE_BITS) - 1
_MAX_TAG = (1 << (32 - _VALUE_BITS)) - 2  # keeps a tagged value below _EMPTY
_PROBES = np.random.default_rng(SEED).integers(0, NUM_PERM, size=(NUM_PERM, 1024))  # densification sequences


# ---- what is compared -------------------------------------------------------------------------------------------


def keyed_texts(example: Example) -> tuple[str, str]:
    """(sha256 hex of the normalised fields, the normalised near-duplicate text without spaces).

    The key hashes every field in name order, texts normalised, message roles kept: field name, role and text
    joined by \\x1f, entries by \\x1e (control characters that normalised text cannot hold)."""
    entries, near = [], []
    fields = example.fields
    for name in sorted(fields) if len(fields) > 1 else fields:
        value = fields[name]
        if isinstance(value, list):
            for m in value:
                role = m.get("role") or ""
                if role == "system":
                    text = _system_normalise(m.get("content") or "")
                else:
                    text = dedup_normalise(m.get("content") or "")
                    near.append(text)
                entries.append(f"{name}\x1f{role}\x1f{text}")
        else:
            text = dedup_normalise(value) if isinstance(value, str) else repr(value)
            entries.append(f"{name}\x1f{text}")
            near.append(text)
    key = hashlib.sha256("\x1e".join(entries).encode("utf-8", "surrogatepass")).hexdigest()
    return key, "".join(near).replace(" ", "")


def exact_id(key: str) -> int:
    """The 64-bit exact id of a key (its first 16 hex digits)."""
    return int(key[:16], 16)


# ---- MinHash signatures and sketches, a batch at a time --------------------------------------------------------


def find_sorted(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(at, found): for each of `keys`, its position in `sorted_keys` and whether it is there at all."""
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return at, sorted_keys[at] == keys


def prepare(texts: list[str]) -> list[str]:
    """Texts as `signatures` and `sketch` take them: normalised as the notebook does, spaces removed."""
    return [dedup_normalise(t).replace(" ", "") for t in texts]


def signatures(prepared: list[str]) -> np.ndarray:
    """(len(prepared), 128) uint32: row i equals `datasets_app.dedup.signature` of the text (already prepared)."""
    out = np.full((len(prepared), NUM_PERM), _EMPTY, dtype=np.uint32)
    rows = [i for i, text in enumerate(prepared) if text]
    if not rows:
        return out
    hashes, counts = _shingle_hashes(
        [prepared[i].rjust(SHINGLE_SIZE, "\0") for i in rows]
    )  # a short text: 1 gram
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    a, b = _permutations(NUM_PERM, SEED)
    a, b = a[:, None], b[:, None]
    block = np.empty((NUM_PERM, CHUNK_SHINGLES * 2), dtype=np.uint32)
    rows_arr, first = np.asarray(rows), 0
    while first < len(rows):
        # rows [first, last) hold about CHUNK_SHINGLES 3-grams (at least one row)
        last = max(first + 1, int(np.searchsorted(starts, starts[first] + CHUNK_SHINGLES, side="right")))
        lo, hi = starts[first], starts[last] if last < len(rows) else len(hashes)
        m = block[:, : hi - lo] if hi - lo <= block.shape[1] else np.empty((NUM_PERM, hi - lo), np.uint32)
        np.multiply(a, hashes[None, lo:hi], out=m)  # each permutation is h -> a*h + b mod 2**32
        m += b
        out[rows_arr[first:last]] = np.minimum.reduceat(m, starts[first:last] - lo, axis=1).T
        first = last
    return out


def many_signatures(prepared: list[str], fork_min: int = 0) -> np.ndarray:
    """`signatures` of any number of texts, BATCH at a time (so each batch's 3-gram arrays stay small). With
    `fork_min` > 0, from that many texts up, a forked child signs the first half of the batches on the other core
    (forked.map_in_two; numpy holds the GIL for much of the work: two threads gained only ~20%). Only a build
    forks (its worker process runs no other threads then); a web request never does."""
    batches = [prepared[lo : lo + BATCH] for lo in range(0, len(prepared), BATCH)]
    if not batches:
        return np.empty((0, NUM_PERM), dtype=np.uint32)
    if not fork_min or len(prepared) < fork_min:
        return np.concatenate([signatures(batch) for batch in batches])
    # the permutations are made (importing datasketch: ~0.8 s) once, before the child copies this process
    _permutations(NUM_PERM, SEED)
    return np.concatenate(map_in_two(signatures, batches))


def sketch(prepared: list[str]) -> np.ndarray:
    """(len(prepared), 128) uint32 one-permutation MinHash of the prepared texts, for LSH bands only."""
    out = np.full(len(prepared) * NUM_PERM, _EMPTY, dtype=np.uint32)
    rows = [i for i, text in enumerate(prepared) if text]
    if rows:
        hashes, counts = _shingle_hashes([prepared[i].rjust(SHINGLE_SIZE, "\0") for i in rows])
        slots = np.repeat(np.asarray(rows, dtype=np.int64) * NUM_PERM, counts) + (
            hashes >> np.uint32(_VALUE_BITS)
        )
        np.minimum.at(out, slots, hashes & np.uint32(_VALUE_MASK))
    out = out.reshape(len(prepared), NUM_PERM)
    _densify(out)
    return out


def _densify(sigs: np.ndarray) -> None:
    """Fill the empty bins of rows that have some (Shrivastava's optimal densification, ICML 2017): empty bin j
    takes the value of the first non-empty bin of a fixed random sequence of bins for j, tagged with the attempt
    number, so two rows agree on bin j about as often as their 3-gram sets overlap. Fully empty rows stay empty."""
    native = sigs != _EMPTY
    rows, bins = np.nonzero(~native & native.any(axis=1, keepdims=True))
    attempt = 0
    while len(rows):
        source = _PROBES[bins, attempt % _PROBES.shape[1]]
        found = native[rows, source]
        tag = np.uint32(min(attempt + 1, _MAX_TAG) << _VALUE_BITS)
        sigs[rows[found], bins[found]] = sigs[rows[found], source[found]] + tag
        rows, bins, attempt = rows[~found], bins[~found], attempt + 1


def _shingle_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every text's 3-gram hashes (as `dedup.shingle_hash`), concatenated, and how many each text has."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    points = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.uint64)
    keys = points[:-2] << np.uint64(2 * _CODE_POINT_BITS)
    keys |= points[1:-1] << np.uint64(_CODE_POINT_BITS)
    keys |= points[2:]
    ends = np.cumsum(lengths)[:-1]  # 3-grams starting in a text's last two characters cross into the next
    valid = np.ones(len(keys), dtype=bool)
    valid[ends - 1] = valid[ends - 2] = False
    keys = keys[valid]
    keys *= np.uint64(_GOLDEN)
    return _fmix32((keys >> np.uint64(32)).astype(np.uint32)), lengths - (SHINGLE_SIZE - 1)


# ---- LSH --------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def lsh_params(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows per band) minimising 0.02 × false-positive + 0.98 × false-negative probability mass."""
    xs = np.linspace(0, 1, 1001)
    below = xs < threshold
    best = (np.inf, 1, num_perm)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p = 1 - (1 - xs**rows) ** bands
            cost = 0.02 * np.trapezoid(np.where(below, p, 0), xs) + 0.98 * np.trapezoid(
                np.where(below, 0, 1 - p), xs
            )
            best = min(best, (cost, bands, rows))
    return best[1], best[2]


def band_keys(sigs: np.ndarray, threshold: float) -> np.ndarray:
    """(n, bands) uint32: a hash of each band of each signature."""
    bands, rows = lsh_params(threshold)
    out = np.empty((len(sigs), bands), dtype=np.uint32)
    for band in range(bands):
        h = np.zeros(len(sigs), dtype=np.uint64)
        for col in range(band * rows, (band + 1) * rows):
            h = (h + sigs[:, col]) * _BAND_MIX
        out[:, band] = h >> np.uint64(32)
    return out


def candidate_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) with i < j, unique: rows sharing a band key, each paired with its next WINDOW in its bucket.

    Pairs of all bands are made unique together, or as soon as they pass COMPACT_PAIRS (memory then follows the
    distinct pairs, not pairs × bands)."""
    n, found, held = len(keys), [], 0
    for band in range(keys.shape[1]):
        # key and row index in one uint64, sorted (4x a stable argsort): equal keys keep input order, so i < j below
        packed = (keys[:, band].astype(np.uint64) << np.uint64(32)) | np.arange(n, dtype=np.uint64)
        packed.sort()
        ordered, order = packed >> np.uint64(32), (packed & np.uint64(0xFFFFFFFF)).astype(np.int64)
        for distance in range(1, WINDOW + 1):
            same = ordered[distance:] == ordered[:-distance]
            if not same.any():
                break  # sorted: no equal pair at this distance means none further
            found.append(order[:-distance][same] * n + order[distance:][same])
            held += len(found[-1])
        if held > COMPACT_PAIRS:
            found = [np.unique(np.concatenate(found))]
            held = len(found[0])
    pairs = np.unique(np.concatenate(found)) if found else np.empty(0, np.int64)
    return pairs // max(n, 1), pairs % max(n, 1)


@lru_cache(maxsize=16)
def sure_votes(threshold: float) -> int:
    """How many equal LSH bands make a pair a near duplicate without computing its signatures: the fewest that a
    pair 0.05 below the threshold reaches less than once in 10,000 (10 of 17 bands at 0.8)."""
    bands, rows = lsh_params(threshold)
    p = max(threshold - 0.05, 0.0) ** rows

    def tail(k: int) -> float:
        return sum(comb(bands, x) * p**x * (1 - p) ** (bands - x) for x in range(k, bands + 1))

    return next((k for k in range(1, bands + 1) if tail(k) < 1e-4), bands + 1)


def band_votes(bands: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """How many LSH bands each pair (i, j) of rows of `bands` shares."""
    votes = np.zeros(len(i), dtype=np.int64)
    for lo in range(0, len(i), 65536):
        part = slice(lo, lo + 65536)
        votes[part] = np.count_nonzero(bands[i[part]] == bands[j[part]], axis=1)
    return votes


def similar(sigs_i: np.ndarray, sigs_j: np.ndarray, threshold: float) -> np.ndarray:
    """Whether each pair of signatures estimates a Jaccard similarity of at least `threshold`."""
    return np.count_nonzero(sigs_i == sigs_j, axis=1) >= threshold * NUM_PERM - 1e-9


def confirmed(i: np.ndarray, j: np.ndarray, sigs: np.ndarray, threshold: float) -> np.ndarray:
    """The mask of pairs (i, j) of rows of `sigs` whose signatures are similar (a chunk of pairs at a time)."""
    keep = np.zeros(len(i), dtype=bool)
    for lo in range(0, len(i), 65536):
        part = slice(lo, lo + 65536)
        keep[part] = similar(sigs[i[part]], sigs[j[part]], threshold)
    return keep


def clusters(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """For each of n rows, the smallest row index of its connected component under the edges (i, j)."""
    label = np.arange(n)
    while True:
        li, lj = label[i], label[j]
        low = np.minimum(li, lj)
        hooked = label.copy()
        np.minimum.at(hooked, li, low)  # every label is a root here: hook the larger root under the smaller
        np.minimum.at(hooked, lj, low)
        while not np.array_equal(jumped := hooked[hooked], hooked):  # pointer jumping to the roots
            hooked = jumped
        if np.array_equal(hooked, label):
            return label
        label = hooked


# ---- the step ---------------------------------------------------------------------------------------------------


@dataclass
class Decision:
    """Per collected row (in collect order): KEEP / EXACT / NEAR, and the cluster id (index of the kept row)."""

    verdict: np.ndarray  # uint8
    group: np.ndarray  # int64


class TextSpool:
    """The near-duplicate texts as UTF-8 in one file, read back by row index (offsets kept: 8 bytes a row)."""

    def __init__(self, path: Path):
        self.path = path
        self._file = path.open("wb")
        self._ends: list[np.ndarray] = []
        self._written = 0

    def write(self, texts: list[str]) -> None:
        data = [text.encode("utf-8", "surrogatepass") for text in texts]
        self._ends.append(self._written + np.cumsum([len(d) for d in data], dtype=np.int64))
        self._file.write(b"".join(data))
        self._written += sum(len(d) for d in data)

    def close(self) -> None:
        self._file.close()

    def fetch(self, rows: np.ndarray) -> list[str]:
        """The texts of `rows` (collect indexes), in that order."""
        if not self._file.closed:
            self._file.flush()
        if len(self._ends) > 1:
            self._ends = [np.concatenate(self._ends)]
        if not len(rows) or not self._written:
            return ["" for _ in rows]
        ends = self._ends[0]
        starts = np.concatenate([[0], ends[:-1]])[rows].tolist()
        with self.path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return [
                data[a:b].decode("utf-8", "surrogatepass")
                for a, b in zip(starts, ends[rows].tolist(), strict=True)
            ]


class Dedup:
    """Step e in two halves, `collect` then `decide` (see the module docstring).

    Sketches and band keys are computed by `THREADS` background threads while the caller goes on with the next
    rows (numpy releases the GIL while it hashes), at most `IN_FLIGHT` batches ahead; results are stored in
    submission order, so row numbers stay the collect order. A build makes the keys in its StepWorker process and
    hands them to `add` (stepworker.py); `collect` makes them here (replay rows, callers without a worker)."""

    name = "dedup"

    def __init__(self, cfg: DedupStep, spool_dir: Path):
        self.cfg = cfg
        self.spool = TextSpool(Path(spool_dir) / "near_texts.utf8")
        self.ids: list[np.ndarray] = []
        self.bands: list[np.ndarray] = []
        self.count = 0
        self._texts: list[str] = []
        self._ids: list[int] = []
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: deque[Future] = deque()
        # the rows decide signed (sorted) and their signatures, kept for the leakage check
        self._signed = (np.empty(0, np.int64), np.empty((0, NUM_PERM), np.uint32))

    def collect(self, examples: Iterable[Example], stats: StepStats) -> Iterator[Example]:
        """Yield every row unchanged but for `example.key`; rows are numbered in the order they pass here."""
        texts, ids = self._texts, self._ids
        for example in examples:
            example.key, text = keyed_texts(example)
            texts.append(text)
            ids.append(exact_id(example.key))
            if len(texts) >= BATCH:
                stats.rows_in += len(texts)
                self._submit()
                texts, ids = self._texts, self._ids
            yield example
        stats.rows_in += len(texts)
        self._submit()

    def add(self, keys: list[str], texts: list[str], stats: StepStats) -> None:
        """Rows whose `keyed_texts` were made elsewhere (a StepWorker), numbered in the order they come."""
        stats.rows_in += len(keys)
        self._texts += texts
        self._ids += [int(key[:16], 16) for key in keys]
        self._submit()

    def _submit(self) -> None:
        if not self._texts:
            return
        texts, ids, self._texts, self._ids = self._texts, self._ids, [], []
        self.spool.write(texts)
        if not THREADS:
            self._store(self._band_keys(texts, ids))
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="minhash")
        half = len(texts) // 2 if len(texts) >= 2 * MIN_SPLIT else len(texts)  # one half per thread
        for part in (slice(0, half), slice(half, None)):
            if texts[part]:
                self._in_flight.append(self._pool.submit(self._band_keys, texts[part], ids[part]))
        while len(self._in_flight) > IN_FLIGHT:
            self._store(self._in_flight.popleft().result())

    def _band_keys(self, texts: list[str], ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        return band_keys(sketch(texts), self.cfg.threshold), np.array(ids, dtype=np.uint64)

    def _store(self, result: tuple[np.ndarray, np.ndarray]) -> None:
        bands, ids = result
        self.bands.append(bands)
        self.ids.append(ids)
        self.count += len(ids)

    def close(self) -> None:
        self.finish()
        self.spool.close()

    def finish(self) -> None:
        """Wait for the band keys still being computed; stop the threads."""
        self._submit()
        while self._in_flight:
            self._store(self._in_flight.popleft().result())
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def all_ids(self) -> np.ndarray:
        self.finish()
        if len(self.ids) > 1:
            self.ids = [np.concatenate(self.ids)]
        return self.ids[0] if self.ids else np.empty(0, np.uint64)

    def all_bands(self) -> np.ndarray:
        self.finish()
        if len(self.bands) > 1:
            self.bands = [np.concatenate(self.bands)]
        return self.bands[0] if self.bands else np.empty((0, lsh_params(self.cfg.threshold)[0]), np.uint32)

    def texts(self, rows: np.ndarray) -> list[str]:
        """The prepared near-duplicate texts of `rows` (sorted, unique collect indexes)."""
        self.finish()
        return self.spool.fetch(rows)

    def signatures(self, rows: np.ndarray) -> np.ndarray:
        """The MinHash signatures of `rows` (sorted, unique collect indexes): those `decide` made are kept and
        reused (the leakage check asks again for rows near other rows); the others are made from the text spool."""
        signed, kept = self._signed
        out = np.empty((len(rows), NUM_PERM), dtype=np.uint32)
        at, have = find_sorted(signed, rows)
        out[have] = kept[at[have]]
        if not have.all():
            out[~have] = many_signatures(self.texts(rows[~have]), FORK_MIN)
        return out

    def decide(self) -> Decision:
        ids = self.all_ids()
        n = self.count
        verdict = np.full(n, KEEP, dtype=np.uint8)
        group = np.arange(n, dtype=np.int64)
        if self.cfg.exact and n:
            _, first = np.unique(ids, return_index=True)
            verdict[:] = EXACT
            verdict[first] = KEEP
        if self.cfg.near and n:
            rows = np.flatnonzero(verdict == KEEP)
            bands = self.all_bands()
            i, j = candidate_pairs(bands[rows])
            keep = band_votes(bands, rows[i], rows[j]) >= sure_votes(self.cfg.threshold)
            doubt = np.flatnonzero(~keep)  # the other pairs are confirmed by their signatures
            involved = np.unique(np.concatenate([i[doubt], j[doubt]]))  # positions in `rows`
            sigs = self.signatures(rows[involved])
            self._signed = (rows[involved], sigs)
            at_i, at_j = np.searchsorted(involved, i[doubt]), np.searchsorted(involved, j[doubt])
            keep[doubt] = confirmed(at_i, at_j, sigs, self.cfg.threshold)
            label = clusters(n, rows[i[keep]], rows[j[keep]])
            verdict[(label != group) & (verdict == KEEP)] = NEAR
            group = label
        return Decision(verdict=verdict, group=group)
