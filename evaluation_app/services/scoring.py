"""Per-example scores and the run's summary metrics, from predictions (plain data in, plain dicts out).

The primary per-example score (0..1), which wins/losses and the bootstrap read:
- classifier: 1 when the predicted label is the expected one;
- generation: the judge's correctness verdict mapped 1..5 → 0..1 when the run judged it, else max(exact match,
  chrF/100); the answer is *correct* at ``pass_threshold`` or above and when every rule of the run passes;
- general pack: 1 when the item's own check (a rule) passes.
"""

from evaluation_app.services.examples import EvalExample
from evaluation_app.services.target import Prediction


def example_row(
    example: EvalExample, pred: Prediction, *, classifier: bool, lang: str, rules: list, threshold: float
) -> dict:
    """The EvalResult fields of one task example, before judging."""
    from workers.evaluate.rules import apply_rules

    row = {"prediction": pred.text, "latency_ms": pred.latency_s * 1000, "prompt_tokens": pred.prompt_tokens,
           "new_tokens": pred.new_tokens, "probs": pred.probs or {}, "rules": [], "scores": {}}  # fmt: skip
    if classifier:
        right = pred.text == example.reference
        row["scores"] = {"correct": float(right), "prob_expected": (pred.probs or {}).get(example.reference)}
        row.update(score=float(right), correct=right)
        return row
    from workers.evaluate.metrics import example_generation_scores

    scores = example_generation_scores(pred.text, example.reference, lang=lang)
    if rules:
        row["rules"] = apply_rules(rules, pred.text)
        scores["rules_pass"] = float(all(r["passed"] for r in row["rules"]))
    row["scores"] = scores
    return finish_score(row, threshold)


def finish_score(row: dict, threshold: float, judge_correctness: float | None = None) -> dict:
    scores = row["scores"]
    if judge_correctness is not None:
        score = (judge_correctness - 1) / 4
    else:
        score = max(float(scores.get("exact", 0.0)), float(scores.get("chrf", 0.0)) / 100)
    row["score"] = score
    row["correct"] = score >= threshold and scores.get("rules_pass", 1.0) == 1.0
    return row


def pack_row(
    example: EvalExample, pred: Prediction, *, classifier: bool, lang: str, threshold: float
) -> dict:
    """A general-pack item: its own check decides; a general dataset's row is scored like a task example."""
    if example.check is None:
        return example_row(example, pred, classifier=classifier, lang=lang, rules=[], threshold=threshold)
    from workers.evaluate.rules import apply_rules

    checks = apply_rules([example.check], pred.text)
    passed = all(c["passed"] for c in checks)
    return {"prediction": pred.text, "latency_ms": pred.latency_s * 1000, "prompt_tokens": pred.prompt_tokens,
            "new_tokens": pred.new_tokens, "rules": checks, "scores": {"check": float(passed)},
            "score": float(passed), "correct": passed}  # fmt: skip


def noisy_score(example: EvalExample, pred: Prediction, *, classifier: bool, lang: str) -> float:
    if classifier:
        return float(pred.text == example.reference)
    from workers.evaluate.metrics import example_generation_scores

    scores = example_generation_scores(pred.text, example.reference, lang=lang)
    return max(float(scores.get("exact", 0.0)), float(scores.get("chrf", 0.0)) / 100)


def task_metrics(
    examples: list[EvalExample], rows: list[dict], *, classifier: bool, lang: str, labels: list[str]
) -> dict:
    n = len(rows)
    accuracy = sum(1 for r in rows if r["correct"]) / n if n else None
    if classifier:
        from workers.evaluate.metrics import classification_metrics

        probs = [r["probs"] for r in rows] if all(r["probs"] for r in rows) else None
        metrics = classification_metrics([e.reference for e in examples], [r["prediction"] for r in rows],
                                         labels=labels, probs=probs)  # fmt: skip
        return {**metrics, "macro_f1": metrics["f1_macro"], "micro_f1": metrics["f1_micro"], "n": n}
    from workers.evaluate.metrics import generation_metrics

    metrics = generation_metrics([r["prediction"] for r in rows], [e.reference for e in examples], lang=lang)
    mean = sum(r["score"] for r in rows) / n if n else None
    return {**metrics, "accuracy": accuracy, "mean_score": mean, "n": n}


def general_metrics(examples: list[EvalExample], rows: list[dict]) -> dict:
    by: dict[str, list[float]] = {}
    for example, row in zip(examples, rows, strict=True):
        by.setdefault(example.category or "(none)", []).append(row["score"])
    return {"score": sum(r["score"] for r in rows) / len(rows) if rows else None, "n": len(rows),
            "by_category": {name: sum(v) / len(v) for name, v in sorted(by.items())}}  # fmt: skip


def efficiency(preds: list[Prediction], resources: dict, wall_s: float) -> dict:
    from workers.evaluate.stats import latency_summary

    summary = latency_summary([p.latency_s for p in preds], [p.new_tokens for p in preds])
    return {"latency_p50_ms": summary["p50"] * 1000, "latency_p95_ms": summary["p95"] * 1000,
            "latency_mean_ms": summary["mean"] * 1000, "tokens_per_s": summary.get("tokens_per_s"),
            "examples_per_s": len(preds) / max(wall_s, 1e-9), **resources}  # fmt: skip
