"""The gate, table-driven: each item passing, failing and missing its fact; and policy validation."""

from datetime import UTC, datetime, timedelta

import pytest

from registry_app.gate import NO_REPORT, GateFacts, evaluate, validate_items

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def summary(delta=0.05, low=0.01, drop=0.01, leaked=0, forgetting_checked=True) -> dict:
    return {
        "metrics": [
            {"name": "accuracy", "label": "accuracy", "baseline": 0.8, "candidate": 0.8 + delta, "delta": delta,
             "low": low, "high": delta + 0.02, "p_value": 0.01},
            {"name": "macro_f1", "label": "macro F1", "baseline": 0.7, "candidate": 0.6, "delta": -0.1,
             "low": -0.2, "high": 0.0, "p_value": 0.2},
        ],
        "forgetting": {"checked": forgetting_checked, "drop": drop, "baseline": 0.5, "candidate": 0.5 - drop}
        if forgetting_checked else {"checked": False},
        "leakage": {"count": leaked, "checked": True},
    }  # fmt: skip


def facts(**overrides) -> GateFacts:
    values = GateFacts(
        summary=summary(), report_id=1, size_bytes=1000, latency_p95_ms=50.0, latency_source="bench",
        version_created_at=T0, candidate_finished_at=T0 + timedelta(hours=1),
        baseline_finished_at=T0 + timedelta(hours=1), report_computed_at=T0 + timedelta(hours=2),
    ).__dict__  # fmt: skip
    values.update(overrides)
    return GateFacts(**values)


CASES = [
    # (id, policy, facts, expected passed, detail fragment)
    ("gain passes", {"min_gain": 0.02}, facts(), True, "accuracy"),
    ("gain fails", {"min_gain": 0.1}, facts(), False, "accuracy"),
    ("gain on a chosen metric", {"metric": "macro_f1", "min_gain": 0.0}, facts(), False, "macro F1"),
    ("gain on an unknown metric", {"metric": "bleu", "min_gain": 0.0}, facts(), False, "no metric 'bleu'"),
    ("gain without report", {"min_gain": 0.0}, facts(summary=None), False, NO_REPORT),
    ("negative margin lets a small loss pass", {"metric": "macro_f1", "min_gain": -0.15}, facts(), True, ""),
    ("ci passes", {"ci_lower_above": 0.0}, facts(), True, "interval"),
    ("ci fails", {"ci_lower_above": 0.02}, facts(), False, "interval"),
    ("ci without report", {"ci_lower_above": 0.0}, facts(summary=None), False, NO_REPORT),
    ("forgetting passes", {"max_forgetting_drop": 0.05}, facts(), True, "general pack"),
    ("forgetting fails", {"max_forgetting_drop": 0.05}, facts(summary=summary(drop=0.2)), False, "general"),
    ("forgetting unchecked", {"max_forgetting_drop": 0.05},
     facts(summary=summary(forgetting_checked=False)), False, "not scored"),
    ("leakage passes", {"no_leakage": True}, facts(), True, "0 test example"),
    ("leakage fails", {"no_leakage": True}, facts(summary=summary(leaked=3)), False, "3 test example"),
    ("leakage without report", {"no_leakage": True}, facts(summary=None), False, NO_REPORT),
    ("latency passes", {"max_latency_p95_ms": 100}, facts(), True, "bench"),
    ("latency fails", {"max_latency_p95_ms": 10}, facts(), False, "bench"),
    ("latency missing", {"max_latency_p95_ms": 10}, facts(latency_p95_ms=None), False, "no latency"),
    ("size passes", {"max_size_bytes": 1000}, facts(), True, ""),
    ("size fails", {"max_size_bytes": 999}, facts(), False, ""),
    ("size missing", {"max_size_bytes": 999}, facts(size_bytes=None), False, "not known"),
    ("evaluations newer pass", {"evaluations_newer": True}, facts(), True, "evaluated"),
    ("candidate run older than the version", {"evaluations_newer": True},
     facts(candidate_finished_at=T0 - timedelta(hours=1)), False, "before the version"),
    ("report older than a run", {"evaluations_newer": True},
     facts(report_computed_at=T0 + timedelta(minutes=30)), False, "before one of its runs"),
    ("evaluations without report", {"evaluations_newer": True}, facts(summary=None), False, NO_REPORT),
]  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "given", "passed", "detail"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_gate_item_passes_fails_or_says_what_is_missing(policy, given, passed, detail):
    rows = evaluate(policy, given)
    assert len(rows) == 1
    assert rows[0]["passed"] is passed
    assert detail in rows[0]["detail"]
    assert {"key", "label", "threshold", "value", "passed", "detail"} <= set(rows[0])


def test_items_absent_null_or_false_are_not_checked():
    assert evaluate({}, facts()) == []
    assert evaluate({"min_gain": None, "no_leakage": False, "metric": "accuracy"}, facts(summary=None)) == []


def test_a_whole_policy_gives_one_row_per_item_in_a_fixed_order():
    policy = {"max_size_bytes": 10**9, "min_gain": 0.0, "no_leakage": True, "evaluations_newer": True}
    rows = evaluate(policy, facts())
    assert [r["key"] for r in rows] == ["min_gain", "no_leakage", "max_size_bytes", "evaluations_newer"]
    assert all(r["passed"] for r in rows)


def test_policy_validation_names_every_bad_item():
    cleaned, problems = validate_items(
        {
            "min_gain": "a lot",
            "max_latency_p95_ms": -5,
            "no_leakage": "yes",
            "colour": 1,
            "max_size_bytes": 10,
        }
    )
    assert set(problems) == {"min_gain", "max_latency_p95_ms", "no_leakage", "colour"}
    assert "unknown gate item" in problems["colour"][0]
    assert "0 or more" in problems["max_latency_p95_ms"][0]
    assert cleaned == {"max_size_bytes": 10}
