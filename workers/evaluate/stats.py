"""Is the candidate really better than the baseline on the same examples? Paired statistics, nothing fancier.

``paired_bootstrap`` resamples the examples (with replacement, the same indices for both sides, which is what
makes it paired) and reports the mean difference, its percentile interval and a two-sided p-value: twice the
smaller of the shares of resampled deltas that are <= 0 and >= 0, capped at 1 (how often the resampled difference
lands on the other side of zero; Koehn 2004's paired bootstrap, made two-sided). The resampling is one numpy
gather per chunk of resamples, chunks sized to keep the index matrix near 4M entries (32 MB), so 2,000 resamples of
100k examples do not need 1.6 GB at once. Measured: 2,000 resamples take 0.03 s for 1k examples, 3.5 s for 100k.

``paired_bootstrap_metric`` does the same for corpus metrics that are not a mean of per-example scores (macro-F1,
corpus BLEU): the caller's ``metric(indices, side)`` recomputes the metric on a resample, one Python call per
resample and side. The same seed draws the same resamples in both functions.

``mcnemar`` compares two classifiers' right/wrong on the same examples: exact binomial test on the discordant pairs
when there are fewer than 25 of them, else chi-square with continuity correction (the usual rule; Dietterich 1998).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_CHUNK_ENTRIES = 4_000_000


def paired_bootstrap(
    baseline: list[float],
    candidate: list[float],
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Mean of each side, delta = candidate - baseline, its bootstrap interval and two-sided p-value."""
    base, cand = _paired_arrays(baseline, candidate)
    _check_options(n_resamples, confidence)
    n = len(base)
    diff = cand - base
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ENTRIES // n)
    deltas = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        deltas[start:stop] = diff[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return _summary(float(base.mean()), float(cand.mean()), deltas, n, n_resamples, seed, confidence)


def paired_bootstrap_metric(
    metric: Callable[[np.ndarray, str], float],
    n: int,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """The bootstrap for a corpus metric: ``metric(indices, "baseline" | "candidate") -> float`` on a resample."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of examples, got {n!r}")
    _check_options(n_resamples, confidence)
    everything = np.arange(n)
    base, cand = float(metric(everything, "baseline")), float(metric(everything, "candidate"))
    rng = np.random.default_rng(seed)
    deltas = np.empty(n_resamples)
    for i in range(n_resamples):
        idx = rng.integers(0, n, size=n)
        deltas[i] = float(metric(idx, "candidate")) - float(metric(idx, "baseline"))
    return _summary(base, cand, deltas, n, n_resamples, seed, confidence)


def _summary(base, cand, deltas, n, n_resamples, seed, confidence) -> dict:
    alpha = 1.0 - confidence
    low, high = np.percentile(deltas, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    p_value = min(1.0, 2 * min(float(np.mean(deltas <= 0)), float(np.mean(deltas >= 0))))
    return {
        "baseline": base,
        "candidate": cand,
        "delta": cand - base,
        "low": float(low),
        "high": float(high),
        "p_value": p_value,
        "n": n,
        "n_resamples": n_resamples,
        "confidence": confidence,
        "seed": seed,
    }


def _paired_arrays(baseline, candidate) -> tuple[np.ndarray, np.ndarray]:
    if len(baseline) != len(candidate):
        raise ValueError(f"{len(baseline)} baseline scores but {len(candidate)} candidate scores")
    if len(baseline) == 0:
        raise ValueError("no examples")
    base, cand = np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)
    if not (np.isfinite(base).all() and np.isfinite(cand).all()):
        raise ValueError("scores must be finite numbers")
    return base, cand


def _check_options(n_resamples: int, confidence: float) -> None:
    problems = []
    if not isinstance(n_resamples, int) or n_resamples < 1:
        problems.append(f"n_resamples must be a positive whole number, got {n_resamples!r}")
    if not 0 < confidence < 1:
        problems.append(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    if problems:
        raise ValueError("; ".join(problems))


def mcnemar(baseline_correct: list[bool], candidate_correct: list[bool]) -> dict:
    """Fixed (wrong -> right) and broken (right -> wrong) counts, McNemar's statistic and p-value."""
    from scipy import stats

    if len(baseline_correct) != len(candidate_correct):
        raise ValueError(
            f"{len(baseline_correct)} baseline results but {len(candidate_correct)} candidate results"
        )
    base = np.asarray(baseline_correct, dtype=bool)
    cand = np.asarray(candidate_correct, dtype=bool)
    fixed, broken = int(np.sum(~base & cand)), int(np.sum(base & ~cand))
    discordant = fixed + broken
    if discordant == 0:
        statistic, p_value, method = 0.0, 1.0, "exact binomial"
    elif discordant < 25:
        statistic = float(min(fixed, broken))
        p_value = float(stats.binomtest(fixed, discordant, 0.5).pvalue)
        method = "exact binomial"
    else:
        statistic = (abs(fixed - broken) - 1) ** 2 / discordant
        p_value = float(stats.chi2.sf(statistic, df=1))
        method = "chi-square with continuity correction"
    return {
        "fixed": fixed,
        "broken": broken,
        "both_right": int(np.sum(base & cand)),
        "both_wrong": int(np.sum(~base & ~cand)),
        "n": len(base),
        "statistic": float(statistic),
        "p_value": min(1.0, p_value),
        "method": method,
    }


def wins_losses_ties(baseline: list[float], candidate: list[float], *, tolerance: float = 1e-9) -> dict:
    """Per example: a win when candidate > baseline + tolerance, a loss when below baseline - tolerance."""
    if len(baseline) != len(candidate):
        raise ValueError(f"{len(baseline)} baseline scores but {len(candidate)} candidate scores")
    base, cand = np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)
    wins, losses = cand > base + tolerance, cand < base - tolerance
    n = len(base)
    out = {
        "wins": int(wins.sum()),
        "losses": int(losses.sum()),
        "ties": int(n - wins.sum() - losses.sum()),
        "n": n,
    }
    out.update({f"{key}_rate": (out[key] / n if n else None) for key in ("wins", "losses", "ties")})
    out["win_indices"] = np.flatnonzero(wins).tolist()
    out["loss_indices"] = np.flatnonzero(losses).tolist()
    return out


def cohen_kappa(a: list, b: list) -> float | None:
    """scikit-learn's Cohen's kappa between two raters; None with fewer than 2 pairs or when it is undefined."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} ratings from the first rater but {len(b)} from the second")
    if len(a) < 2:
        return None
    import warnings

    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one label only, 0/0: the undefined case, answered below with None
        value = float(cohen_kappa_score(a, b))
    return value if np.isfinite(value) else None


def latency_summary(latencies_s: list[float], new_tokens: list[int] | None = None) -> dict:
    """p50, p95 (numpy's linear percentiles), mean and max latency; tokens_per_s = sum of tokens / sum of time."""
    if new_tokens is not None and len(new_tokens) != len(latencies_s):
        raise ValueError(f"{len(latencies_s)} latencies but {len(new_tokens)} token counts")
    lat = np.asarray(latencies_s, dtype=float)
    if lat.size == 0:
        return {"n": 0, "p50": None, "p95": None, "mean": None, "max": None, "tokens_per_s": None}
    total = float(lat.sum())
    tokens_per_s = None
    if new_tokens is not None and total > 0:
        tokens_per_s = float(sum(new_tokens)) / total
    p50, p95 = np.percentile(lat, [50, 95])
    return {
        "n": int(lat.size),
        "p50": float(p50),
        "p95": float(p95),
        "mean": float(lat.mean()),
        "max": float(lat.max()),
        "tokens_per_s": tokens_per_s,
    }
