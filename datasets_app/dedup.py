"""Duplicate detection for the error notebook: exact fingerprints and MinHash near-duplicate groups.

Pure Python (no Django). Cases are chat conversations (`messages`, a list of `{"role", "content"}`) plus the
`bad_output` the product gave, in Chinese, English or both.

Exact duplicates: `fingerprint(messages, bad_output)` is the sha256 of the normalised contents with their roles
and the normalised bad output, so cases that differ only in whitespace, case, full-width forms (`ＡＢＣ`) or
invisible characters (zero-width spaces, BOM) share a fingerprint; a changed word, a swapped role or a reordered
conversation does not.

Near duplicates: a case's near-duplicate text is its normalised *user* contents plus its bad output
(`near_duplicate_text`). System prompts are left out because many cases share one, which would make unrelated
cases look alike; assistant turns are left out because the bad output is the answer under review.
`signature(text)` is a 128-value MinHash (datasketch's "affine32" scheme, uint32, 512 bytes stored) of the text's
character 3-grams, and `group_near_duplicates` finds groups of cases whose estimated Jaccard similarity reaches a
threshold with datasketch's `MinHashLSH`.

Shingles are character 3-grams of the normalised text with all spaces removed. Characters rather than words,
because Chinese has no spaces to split words on; spaces removed because their use between Chinese and Latin text
is inconsistent (`使用Python` / `使用 Python`) and carries nothing in Chinese. One fixed size for every text,
because switching to 2-grams for short texts would make a short text and its slightly longer edit incomparable;
a text shorter than 3 characters is its own single shingle. A one-character edit changes at most 3 shingles, so a
60-character Chinese paragraph keeps a Jaccard similarity near 0.9 and a 40-word English text about 0.95.

Signatures are computed with numpy rather than by feeding `MinHash.update_batch`, for speed (about 4x: the
default hash, sha1 of each shingle in a Python loop, dominates). The hashing is the same as a datasketch
`MinHash(num_perm, seed, hashfunc=shingle_hash)` updated with `shingles(text)`, and a test holds the two equal.
Changing the normalisation, the shingles or `shingle_hash` changes every signature: recompute stored ones.
"""

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

SHINGLE_SIZE = 3
NUM_PERM = 128
SEED = 1
# datasketch's default (and only 32-bit) permutation scheme since 2.0.0: hash values are uint32.
SCHEME = "affine32"
# Invisible characters removed by `normalise`: format characters (category Cf: zero-width space and joiners,
# soft hyphen, bidi marks, BOM, ...) and control characters (Cc) that are not whitespace (tabs and newlines are
# whitespace and become spaces instead). A test pins this list to `unicodedata`.
INVISIBLE_RANGES = (
    "\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e"
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"
)
_INVISIBLE = re.compile(f"[{INVISIBLE_RANGES}]")
# The characters changed by NFKC that are common in our texts (full-width punctuation, ellipsis, no-break and
# ideographic spaces): replaced by plain `str.replace` first, so that `unicodedata.normalize` usually finds the text
# already normalised and returns at C speed instead of taking its slow full path (~40x slower for Chinese).
_COMMON_NFKC = tuple((char, unicodedata.normalize("NFKC", char)) for char in "，！？：；（）～％…\u3000\xa0")
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_CODE_POINT_BITS = 21  # every code point is below 2**21, so three of them pack into one uint64 without loss


def _nfkc(text: str) -> str:
    if unicodedata.is_normalized("NFKC", text):
        return text
    for char, replacement in _COMMON_NFKC:
        text = text.replace(char, replacement)
    return unicodedata.normalize("NFKC", text)


def normalise(text: str) -> str:
    """The canonical form of a text: NFKC, casefolded, invisible characters removed, whitespace runs as one space.

    Removing invisible characters with the regex is the slow step, so it runs only for a text that holds some:
    `str.isprintable()` (C speed) is false for every Cc and Cf character and for every whitespace but U+0020.
    """
    folded = _nfkc(text).casefold()
    if folded.isprintable():  # the only whitespace is " "
        return " ".join(folded.split()) if "  " in folded else folded.strip(" ")
    collapsed = " ".join(folded.split())
    if collapsed.isprintable():
        return collapsed
    # Remove before NFKC: a removed joiner may let a combining mark compose with its base.
    return " ".join(_nfkc(_INVISIBLE.sub("", text)).casefold().split())


_normalise_role = lru_cache(maxsize=64)(normalise)  # a handful of distinct roles, normalised once


def fingerprint(messages: list[dict], bad_output: str) -> str:
    """sha256 (hex) of the normalised roles and contents, in order, and the normalised bad output.

    Every message counts, whatever its role; keys other than `role` and `content` are ignored and a missing or
    None content counts as empty. Role and content are joined by \\x1f, messages by \\x1e, the bad output
    follows \\x1d: control characters that normalised text cannot contain, so the serialisation is unambiguous.
    """
    conversation = "\x1e".join(
        [f"{_normalise_role(m['role'])}\x1f{normalise(m.get('content') or '')}" for m in messages]
    )
    canonical = f"{conversation}\x1d{normalise(bad_output)}"
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def near_duplicate_text(messages: list[dict], bad_output: str) -> str:
    """The text compared for near duplicates: the normalised user contents, then the normalised bad output."""
    parts = [m.get("content") or "" for m in messages if m["role"] == "user"]
    parts.append(bad_output)
    return normalise(" ".join(parts))


def _shingle_text(text: str) -> str:
    return normalise(text).replace(" ", "")


def shingles(text: str) -> set[bytes]:
    """The character 3-grams (UTF-8) of the normalised text without spaces; a shorter text is its own shingle."""
    text = _shingle_text(text)
    if len(text) < SHINGLE_SIZE:
        return {text.encode("utf-8", "surrogatepass")} if text else set()
    return {
        text[i : i + SHINGLE_SIZE].encode("utf-8", "surrogatepass")
        for i in range(len(text) - SHINGLE_SIZE + 1)
    }


def shingle_hash(shingle: bytes) -> int:
    """The 32-bit hash of one shingle, for datasketch's `hashfunc`: `signature` computes the same, vectorised.

    The shingle's code points (left-padded with 0, which normalised text never holds) packed into 63 bits, times
    the 64-bit golden-ratio constant, high 32 bits (Fibonacci hashing); datasketch then mixes it (MurmurHash3's
    finaliser) before its permutations.
    """
    key = 0
    for char in shingle.decode("utf-8", "surrogatepass"):
        key = (key << _CODE_POINT_BITS) | ord(char)
    return ((key * _GOLDEN) & _MASK64) >> 32


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser: datasketch's pre-mix of every input hash in the affine schemes."""
    h ^= h >> 16
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> 13
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> 16
    return h


@lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from datasketch import MinHash  # imported late: it pulls in scipy (~2 s), which ingest never needs

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme=SCHEME).permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def signature(text: str, num_perm: int = NUM_PERM, seed: int = SEED) -> np.ndarray:
    """The MinHash of `shingles(text)`: `num_perm` uint32 values. Compare only signatures made with one seed."""
    text = _shingle_text(text)
    a, b = _permutations(num_perm, seed)
    if not text:
        return np.full(num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)  # datasketch's empty MinHash
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.uint64)
    if len(points) < SHINGLE_SIZE:
        points = np.concatenate([np.zeros(SHINGLE_SIZE - len(points), dtype=np.uint64), points])
    n = len(points) - SHINGLE_SIZE + 1
    keys = points[:n].copy()
    for offset in range(1, SHINGLE_SIZE):
        keys <<= _CODE_POINT_BITS
        keys |= points[offset : offset + n]
    keys *= np.uint64(_GOLDEN)
    hashes = _fmix32((keys >> 32).astype(np.uint32))
    # Each permutation is h -> a*h + b mod 2**32 (uint32 arithmetic wraps); keep the minimum over the shingles.
    matrix = np.multiply.outer(hashes, a)
    matrix += b
    return matrix.min(axis=0)


def signature_bytes(sig: np.ndarray) -> bytes:
    """A signature as little-endian uint32 bytes (512 for 128 permutations), for a BinaryField."""
    return np.asarray(sig, dtype="<u4").tobytes()


def signature_from_bytes(data: bytes) -> np.ndarray:
    """The signature stored by `signature_bytes`."""
    if len(data) % 4:
        raise ValueError(f"a signature is a whole number of uint32 values, got {len(data)} bytes")
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


def group_near_duplicates(
    items: Iterable[tuple[int, bytes]], threshold: float = 0.8, num_perm: int = NUM_PERM
) -> dict[int, int]:
    """Group cases whose signatures (as `signature_bytes`) estimate a Jaccard similarity >= `threshold`.

    Returns `{case_id: group_id}` for the cases in groups of two or more, the group id being the smallest case id
    in the group. Groups are connected components: a~b and b~c put a, b and c in one group even if a and c
    differ more. LSH proposes candidate pairs and each is confirmed on the full signatures; the LSH bands are
    tuned for recall (a false candidate costs one comparison, a missed one loses a duplicate).
    """
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    ids: list[int] = []
    blobs: list[bytes] = []
    for case_id, data in items:
        if len(data) != 4 * num_perm:
            raise ValueError(f"case {case_id}: signature has {len(data)} bytes, expected {4 * num_perm}")
        ids.append(case_id)
        blobs.append(data)
    if len(set(ids)) != len(ids):
        raise ValueError("case ids must be unique")
    if len(ids) < 2:
        return {}
    matrix = np.frombuffer(b"".join(blobs), dtype="<u4").reshape(len(ids), num_perm)
    from datasketch import LeanMinHash, MinHashLSH

    sketches = [LeanMinHash(seed=SEED, hashvalues=row, scheme=SCHEME) for row in matrix]
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.1, 0.9))
    with lsh.insertion_session() as session:
        for index, sketch in enumerate(sketches):
            session.insert(index, sketch, check_duplication=False)

    parent = list(range(len(ids)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    min_agreeing = threshold * num_perm
    for index, sketch in enumerate(sketches):
        candidates = np.array([other for other in lsh.query(sketch) if other > index], dtype=np.intp)
        if not len(candidates):
            continue
        agreeing = np.count_nonzero(matrix[candidates] == matrix[index], axis=1)
        for other in candidates[agreeing >= min_agreeing]:
            parent[find(int(other))] = find(index)

    members: dict[int, list[int]] = {}
    for index, case_id in enumerate(ids):
        members.setdefault(find(index), []).append(case_id)
    groups = {}
    for group in members.values():
        if len(group) > 1:
            group_id = min(group)
            groups.update((case_id, group_id) for case_id in group)
    return dict(sorted(groups.items()))
