"""The numbers of a comparison report, from paired results (baseline, candidate) of the same examples.

Per metric: both means, the delta and its paired bootstrap 95% interval (resampling examples, so the pairing is
kept); accuracy adds McNemar's test on the discordant pairs; macro-F1 (classifiers) is a corpus metric and is
bootstrapped as a whole. Then wins/losses/ties, breakdowns by category and tag, the error cases' outcomes, efficiency
deltas, the forgetting check on the general pack, leakage and judge errors.
"""

from collections import defaultdict

import numpy as np
from django.conf import settings

from evaluation_app.models import CaseOutcome, ComparisonReport, EvalResult, Pack

Pair = tuple[EvalResult, EvalResult]
# per-example score names compared when both runs have them: name -> (label, where the value lives)
EXAMPLE_METRICS = {
    "score": "primary score",
    "exact": "exact match",
    "chrf": "chrF (sentence)",
    "bleu": "BLEU (sentence)",
    "rougeL": "ROUGE-L",
    "rules_pass": "all rules pass",
}
EFFICIENCY = (
    ("latency_p50_ms", False), ("latency_p95_ms", False), ("tokens_per_s", True),
    ("peak_memory_bytes", False), ("model_size_bytes", False),
)  # fmt: skip


def report_summary(report: ComparisonReport, pairs: dict[str, list[Pair]]) -> dict:
    from workers.evaluate.stats import wins_losses_ties

    task = pairs.get(Pack.TASK, [])
    base_scores, cand_scores = _scores(task, "score")
    outcomes = wins_losses_ties(base_scores, cand_scores) if task else {"wins": 0, "losses": 0, "ties": 0}
    accuracy, mcnemar = _accuracy(task)
    classifier = report.baseline.model_version.model.task == "classification"
    return {
        "examples": len(task),
        "metrics": [
            *([accuracy] if accuracy else []),
            *(_macro_f1(task) if classifier else []),
            *([] if classifier else _example_metrics(task)),
            *_judge_metrics(task),
        ],  # fmt: skip
        "mcnemar": mcnemar,
        "outcomes": {"win": outcomes["wins"], "loss": outcomes["losses"], "tie": outcomes["ties"]},
        "cases": _cases(task),
        "by_category": _breakdown(task, lambda r: [r.category or "(none)"]),
        "by_tag": _breakdown(task, lambda r: r.tags or []),
        "efficiency": _efficiency(report),
        "forgetting": _forgetting(report, pairs.get(Pack.GENERAL, [])),
        "leakage": _leakage(report),
        "judge_errors": {
            "baseline": sum(1 for b, _ in task if b.judge_error),
            "candidate": sum(1 for _, c in task if c.judge_error),
        },
        "robustness": {
            "baseline_drop": (report.baseline.metrics or {}).get("robustness", {}).get("drop"),
            "candidate_drop": (report.candidate.metrics or {}).get("robustness", {}).get("drop"),
        },
    }


def _value(result: EvalResult, name: str):
    if name == "score":
        return result.score
    return (result.scores or {}).get(name)


def _scores(pairs: list[Pair], name: str) -> tuple[list[float], list[float]]:
    kept = [(_value(b, name), _value(c, name)) for b, c in pairs]
    kept = [(float(x), float(y)) for x, y in kept if x is not None and y is not None]
    return [x for x, _ in kept], [y for _, y in kept]


def _row(name: str, label: str, boot: dict, method: str, higher_is_better: bool = True) -> dict:
    low, high = boot["low"], boot["high"]
    return {"name": name, "label": label, "baseline": boot["baseline"], "candidate": boot["candidate"],
            "delta": boot["delta"], "low": low, "high": high, "p_value": boot.get("p_value"), "n": boot.get("n"),
            "method": method, "higher_is_better": higher_is_better,
            "significant": bool(low > 0 or high < 0)}  # fmt: skip


def _accuracy(task: list[Pair]) -> tuple[dict | None, dict | None]:
    from workers.evaluate.stats import mcnemar, paired_bootstrap

    known = [(b, c) for b, c in task if b.correct is not None and c.correct is not None]
    if not known:
        return None, None
    a, b = [bool(x.correct) for x, _ in known], [bool(y.correct) for _, y in known]
    test = mcnemar(a, b)
    boot = paired_bootstrap([float(x) for x in a], [float(y) for y in b], n_resamples=_resamples())
    row = _row("accuracy", "accuracy", boot, "McNemar + paired bootstrap")
    row["p_value"] = test["p_value"]
    return row, test


def _macro_f1(task: list[Pair]) -> list[dict]:
    """Classifiers: macro-F1 is a corpus metric, so each resample recomputes it over the drawn examples."""
    if not task:
        return []
    from sklearn.metrics import f1_score

    from workers.evaluate.stats import paired_bootstrap_metric

    truth = np.array([b.reference for b, _ in task], dtype=object)
    preds = {"baseline": np.array([b.prediction for b, _ in task], dtype=object),
             "candidate": np.array([c.prediction for _, c in task], dtype=object)}  # fmt: skip

    def metric(indices: np.ndarray, side: str) -> float:
        return float(f1_score(truth[indices], preds[side][indices], average="macro", zero_division=0))

    boot = paired_bootstrap_metric(metric, len(task), n_resamples=min(_resamples(), 1000))
    return [_row("macro_f1", "macro F1", boot, "paired bootstrap (corpus metric)")]


def _example_metrics(task: list[Pair]) -> list[dict]:
    from workers.evaluate.stats import paired_bootstrap

    rows = []
    for name, label in EXAMPLE_METRICS.items():
        a, b = _scores(task, name)
        if a:
            rows.append(
                _row(name, label, paired_bootstrap(a, b, n_resamples=_resamples()), "paired bootstrap")
            )
    return rows


def _judge_metrics(task: list[Pair]) -> list[dict]:
    from workers.evaluate.stats import paired_bootstrap

    rubrics = sorted({k for b, _ in task for k in (b.judge or {}) if k != "pairwise"})
    rows = []
    for rubric in rubrics:
        pairs = [((b.judge or {}).get(rubric, {}).get("score"), (c.judge or {}).get(rubric, {}).get("score"))
                 for b, c in task]  # fmt: skip
        kept = [(float(x), float(y)) for x, y in pairs if x is not None and y is not None]
        if kept:
            boot = paired_bootstrap([x for x, _ in kept], [y for _, y in kept], n_resamples=_resamples())
            rows.append(_row(f"judge_{rubric}", f"judge: {rubric} (1-5)", boot, "paired bootstrap"))
    return rows


def case_outcome_of(baseline: EvalResult, candidate: EvalResult) -> str:
    """For an example that came from an error case: did the candidate fix it, or break it?"""
    if not (baseline.case_id or candidate.case_id):
        return ""
    before, after = bool(baseline.correct), bool(candidate.correct)
    if after:
        return CaseOutcome.STILL_RIGHT if before else CaseOutcome.FIXED
    return CaseOutcome.NEWLY_BROKEN if before else CaseOutcome.STILL_WRONG


def _cases(task: list[Pair]) -> dict:
    counts = dict.fromkeys(CaseOutcome.values, 0)
    for b, c in task:
        if outcome := case_outcome_of(b, c):
            counts[outcome] += 1
    return counts


def _breakdown(task: list[Pair], groups) -> list[dict]:
    sums: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for b, c in task:
        for name in groups(b):
            entry = sums[str(name)]
            entry[0] += 1
            entry[1] += b.score or 0.0
            entry[2] += c.score or 0.0
    rows = [{"name": name, "n": n, "baseline": sb / n, "candidate": sc / n, "delta": (sc - sb) / n}
            for name, (n, sb, sc) in sums.items()]  # fmt: skip
    return sorted(rows, key=lambda r: (r["delta"], r["name"]))


def _efficiency(report: ComparisonReport) -> list[dict]:
    base = (report.baseline.metrics or {}).get("efficiency", {})
    cand = (report.candidate.metrics or {}).get("efficiency", {})
    rows = []
    for name, higher_is_better in EFFICIENCY:
        b, c = base.get(name), cand.get(name)
        if b is None or c is None:
            continue
        rows.append({"name": name, "baseline": b, "candidate": c, "delta": c - b,
                     "ratio": (c / b) if b else None, "higher_is_better": higher_is_better})  # fmt: skip
    return rows


def _forgetting(report: ComparisonReport, general: list[Pair]) -> dict:
    threshold = report.forgetting_threshold
    if not general:
        return {"checked": False, "threshold": threshold, "flagged": False,
                "note": "no general-capability pack was scored by both runs"}  # fmt: skip
    by_category = []
    for row in _breakdown(general, lambda r: [r.category or "(none)"]):
        drop = row["baseline"] - row["candidate"]
        by_category.append({"name": row["name"], "n": row["n"], "baseline": row["baseline"],
                            "candidate": row["candidate"], "drop": drop, "flagged": drop > threshold})  # fmt: skip
    base = sum(b.score or 0.0 for b, _ in general) / len(general)
    cand = sum(c.score or 0.0 for _, c in general) / len(general)
    return {"checked": True, "threshold": threshold, "n": len(general), "baseline": base, "candidate": cand,
            "drop": base - cand, "flagged": base - cand > threshold,
            "by_category": sorted(by_category, key=lambda r: r["name"])}  # fmt: skip


def _leakage(report: ComparisonReport) -> dict:
    leak = report.candidate.leakage or {}
    exact, near = int(leak.get("exact", 0)), int(leak.get("near", 0))
    return {"count": exact + near, "exact": exact, "near": near, "checked": bool(leak.get("checked")),
            "examples": leak.get("examples", [])[:50], "training_versions": leak.get("training_versions", []),
            "note": leak.get("note", "")}  # fmt: skip


def _resamples() -> int:
    return settings.EVAL_BOOTSTRAP_RESAMPLES
