"""The promotion gate: pure functions over plain facts (no database access, no writes).

A family's GatePolicy.items maps an item key to its threshold; a key that is absent or null is not checked. ``metric``
is not a check but a setting: the primary metric the gain items read (default: the report's first metric).
``evaluate(items, facts)`` answers one row per checked item: {key, label, threshold, shown, value, passed, detail}.
A fact that is missing (no comparison with production yet, no latency measured) fails its item and says what is
missing, so a gate can never pass by lack of evidence. The facts are gathered by registry_app.selectors.gate_facts.

``min_gain`` and ``ci_lower_above`` may be negative: a compressed version is usually held to a non-inferiority
margin (e.g. the gain's lower bound above −0.01), not to a gain.
"""

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class GateItem:
    key: str
    label: str
    kind: str  # "number" | "flag" | "metric"
    shown: str  # how the threshold is shown, "{}" replaced by the threshold
    minimum: float | None = None  # lowest allowed threshold (None: any number)
    help: str = ""


ITEMS: tuple[GateItem, ...] = (
    GateItem("metric", "Primary metric", "metric", "{}",
             help="the report metric the gain items read (empty: the report's first metric)"),
    GateItem("min_gain", "Gain over production", "number", "candidate − production ≥ {}",
             help="on the primary metric; negative allows a small loss (non-inferiority)"),
    GateItem("ci_lower_above", "Lower bound of the gain's 95% interval", "number", "low > {}",
             help="paired bootstrap interval of the gain on the primary metric"),
    GateItem("max_forgetting_drop", "Forgetting (general-pack drop)", "number", "drop ≤ {}", minimum=0.0,
             help="baseline − candidate score on the general-capability pack; fails if it was not scored"),
    GateItem("no_leakage", "No test leakage", "flag", "no test example seen in training",
             help="the candidate's test examples were not in its training data"),
    GateItem("max_latency_p95_ms", "Latency p95 (ms)", "number", "≤ {} ms", minimum=0.0,
             help="from the candidate's efficiency suite, else its newest benchmark at batch 1"),
    GateItem("max_size_bytes", "Size on disk (bytes)", "number", "≤ {} bytes", minimum=0.0),
    GateItem("evaluations_newer", "Evaluations newer than the version", "flag",
             "evaluated after the version was made",
             help="the candidate run finished after the version was created, the report after both runs"),
)  # fmt: skip
BY_KEY = {item.key: item for item in ITEMS}
CHECKS = tuple(item for item in ITEMS if item.kind != "metric")
NO_REPORT = "no comparison with production yet"


@dataclass
class GateFacts:
    """What the gate reads about a version; None means not known."""

    summary: dict | None = None  # the comparison report's summary (evaluation_app.services.report_stats)
    report_id: int | None = None
    baseline_label: str = ""  # the version the report compared with, e.g. "support-bot v3"
    size_bytes: int | None = None
    latency_p95_ms: float | None = None
    latency_source: str = ""
    version_created_at: datetime | None = None
    candidate_finished_at: datetime | None = None
    baseline_finished_at: datetime | None = None
    report_computed_at: datetime | None = None
    notes: list[str] = field(default_factory=list)


def validate_items(items) -> tuple[dict, dict[str, list[str]]]:
    """(cleaned items, problems by key): unknown keys, wrong types and thresholds below an item's minimum."""
    if not isinstance(items, dict):
        return {}, {"items": ["must be an object mapping gate item keys to thresholds"]}
    cleaned, problems = {}, {}
    for key, value in items.items():
        item = BY_KEY.get(key)
        if item is None:
            problems[str(key)] = [f"unknown gate item {key!r}; known: {', '.join(BY_KEY)}"]
            continue
        if value is None or value == "":
            continue
        if item.kind == "metric":
            if not isinstance(value, str) or len(value) > 100:
                problems[key] = ["must be a metric name (text up to 100 characters)"]
            else:
                cleaned[key] = value.strip()
        elif item.kind == "flag":
            if not isinstance(value, bool):
                problems[key] = ["must be true or false"]
            elif value:
                cleaned[key] = True
        elif isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            problems[key] = ["must be a number"]
        elif item.minimum is not None and value < item.minimum:
            problems[key] = [f"must be {item.minimum:g} or more (got {value:g})"]
        else:
            cleaned[key] = value
    return cleaned, problems


def primary_metric(items: dict, summary: dict | None) -> str | None:
    if items.get("metric"):
        return items["metric"]
    metrics = (summary or {}).get("metrics") or []
    return metrics[0].get("name") if metrics and isinstance(metrics[0], dict) else None


def _metric_row(items: dict, facts: GateFacts) -> tuple[dict | None, str]:
    """The primary metric's report row, or (None, what is missing)."""
    if facts.summary is None:
        return None, NO_REPORT
    name = primary_metric(items, facts.summary)
    if name is None:
        return None, "the comparison report has no metric"
    for row in facts.summary.get("metrics") or []:
        if isinstance(row, dict) and row.get("name") == name:
            return row, f"on {row.get('label') or name}"
    return None, f"the comparison report has no metric {name!r}"


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _check_min_gain(x, items, facts):
    row, detail = _metric_row(items, facts)
    delta = _number(row.get("delta")) if row else None
    if delta is None:
        return None, False, detail if row is None else f"{detail}: no gain computed"
    return delta, delta >= x, f"{detail}: {row.get('candidate')} vs {row.get('baseline')}"


def _check_ci_lower_above(x, items, facts):
    row, detail = _metric_row(items, facts)
    low = _number(row.get("low")) if row else None
    if low is None:
        return None, False, detail if row is None else f"{detail}: no confidence interval computed"
    return low, low > x, f"{detail}: 95% interval [{low:.4g}, {_number(row.get('high')) or 0:.4g}]"


def _check_max_forgetting_drop(x, items, facts):
    if facts.summary is None:
        return None, False, NO_REPORT
    forgetting = facts.summary.get("forgetting") or {}
    drop = _number(forgetting.get("drop"))
    if not forgetting.get("checked") or drop is None:
        return None, False, "the general-capability pack was not scored by both runs"
    return drop, drop <= x, f"general pack: {forgetting.get('baseline')} → {forgetting.get('candidate')}"


def _check_no_leakage(x, items, facts):
    if facts.summary is None:
        return None, False, NO_REPORT
    leakage = facts.summary.get("leakage")
    count = _number((leakage or {}).get("count"))
    if count is None:
        return None, False, "the comparison report has no leakage check"
    detail = f"{int(count)} test example(s) found in the training data"
    if not leakage.get("checked"):
        detail += " (the training data could not be checked)"
    return int(count), count == 0, detail


def _check_max_latency_p95_ms(x, items, facts):
    if facts.latency_p95_ms is None:
        return None, False, "no latency measured for this version (efficiency suite or benchmark)"
    return facts.latency_p95_ms, facts.latency_p95_ms <= x, facts.latency_source


def _check_max_size_bytes(x, items, facts):
    if not facts.size_bytes:
        return None, False, "the version's size is not known"
    return facts.size_bytes, facts.size_bytes <= x, ""


def _check_evaluations_newer(x, items, facts):
    if facts.summary is None:
        return None, False, NO_REPORT
    times = (facts.version_created_at, facts.candidate_finished_at, facts.baseline_finished_at,
             facts.report_computed_at)  # fmt: skip
    if any(t is None for t in times):
        return None, False, "the runs or the report have no finish time"
    created, candidate, baseline, computed = times
    if candidate <= created:
        return False, False, "the candidate run finished before the version was created"
    if computed < max(candidate, baseline):
        return False, False, "the report was computed before one of its runs finished"
    return True, True, f"candidate evaluated {candidate:%Y-%m-%d %H:%M}, report {computed:%Y-%m-%d %H:%M}"


CHECKERS = {
    "min_gain": _check_min_gain,
    "ci_lower_above": _check_ci_lower_above,
    "max_forgetting_drop": _check_max_forgetting_drop,
    "no_leakage": _check_no_leakage,
    "max_latency_p95_ms": _check_max_latency_p95_ms,
    "max_size_bytes": _check_max_size_bytes,
    "evaluations_newer": _check_evaluations_newer,
}


def shown(item: GateItem, threshold) -> str:
    return item.shown.replace("{}", f"{threshold:g}" if _number(threshold) is not None else str(threshold))


def evaluate(policy_items: dict, facts: GateFacts) -> list[dict]:
    """One row per checked item, in ITEMS order."""
    items = policy_items if isinstance(policy_items, dict) else {}
    rows = []
    for item in CHECKS:
        threshold = items.get(item.key)
        if threshold is None or threshold is False:
            continue
        value, passed, detail = CHECKERS[item.key](threshold, items, facts)
        rows.append({"key": item.key, "label": item.label, "threshold": threshold,
                     "shown": shown(item, threshold), "value": value, "passed": bool(passed),
                     "detail": detail})  # fmt: skip
    return rows


def failed(rows: list[dict]) -> list[dict]:
    return [row for row in rows if not row.get("passed")]
