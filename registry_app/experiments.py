"""The numbers of a deployment's A/B experiment, from the gateway's request log (ServedResponse) and the feedback
on it, over a window (the last 7 days unless ``?days=`` says otherwise, at most 90).

Per variant: requests, latency p50/p95 (ms), error rate (status ≥ 500 or an error recorded, over requests),
negative-feedback rate (thumbs down over feedback, with the feedback count) and cache hit rate (cached answers over
requests). Counts are computed in the database (one grouped query for requests, one for feedback, one for the
daily series); percentiles in Python over the newest ``LATENCY_SAMPLE`` latencies of each variant, so a busy
deployment costs a bounded read (the page says when the sample is smaller than the request count). While a
deployment is stopped the gateway logs its traffic as "production"; that counts in the production arm's row.

Each candidate is tested against the production variant on both rates (lower is better for both): Fisher's exact
test when a cell of the 2×2 table expects fewer than 5 (small counts), else the two-sided two-proportion z-test
with a pooled variance. The verdict reads "candidate better/worse at p<0.05", "no significant difference at
p<0.05", or "too few … to tell" while an arm has fewer than ``MIN_FEEDBACK`` ratings (``MIN_REQUESTS``
requests for the error rate). The helpers below the queries are pure and tested table by table.
"""

import math
from datetime import timedelta

from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from registry_app.gateway.routing import PRODUCTION as STOPPED_LABEL
from registry_app.models import Alias, Deployment, Feedback, ModelVersion, Rating, ServedResponse

WINDOW_DAYS = 7
MAX_DAYS = 90
LATENCY_SAMPLE = 20_000
MIN_REQUESTS = 50
MIN_FEEDBACK = 20
ALPHA = 0.05
FISHER_BELOW = 5  # smallest expected cell count for the z-test's normal approximation


# --- pure helpers ---------------------------------------------------------------------------------------


def window_days(raw) -> int:
    """``?days=`` as a whole number of days from 1 to MAX_DAYS; the default for anything else."""
    try:
        days = int(str(raw).strip())
    except (TypeError, ValueError):
        return WINDOW_DAYS
    return min(max(days, 1), MAX_DAYS)


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def percentile(values, q: float) -> float | None:
    """The q-th percentile (0..100, linear interpolation between ranks, as numpy's default); None when empty."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def proportion_test(x1: int, n1: int, x2: int, n2: int) -> dict:
    """Two-sided test of x1/n1 against x2/n2: {"p": float | None, "method": "fisher" | "z" | None}."""
    from scipy import stats

    if n1 <= 0 or n2 <= 0:
        return {"p": None, "method": None}
    pooled = (x1 + x2) / (n1 + n2)
    expected = min(n1 * pooled, n1 * (1 - pooled), n2 * pooled, n2 * (1 - pooled))
    if expected < FISHER_BELOW:
        _, p = stats.fisher_exact([[x1, n1 - x1], [x2, n2 - x2]], alternative="two-sided")
        return {"p": float(p), "method": "fisher"}
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (x2 / n2 - x1 / n1) / se
    return {"p": float(2 * stats.norm.sf(abs(z))), "method": "z"}


def verdict(
    *, p: float | None, base_rate, cand_rate, base_n: int, cand_n: int, minimum: int, what: str
) -> str:
    """A plain reading of a test where lower rates are better."""
    if min(base_n, cand_n) < minimum or p is None:
        return f"too few {what} to tell"
    if p < ALPHA:
        return "candidate better at p<0.05" if cand_rate < base_rate else "candidate worse at p<0.05"
    return "no significant difference at p<0.05"


def compare(base: dict, cand: dict) -> dict:
    """Candidate row against production row, on negative feedback and on errors."""
    feedback = proportion_test(base["down"], base["feedback"], cand["down"], cand["feedback"])
    errors = proportion_test(base["errors"], base["requests"], cand["errors"], cand["requests"])
    return {
        "label": cand["label"],
        "feedback": {**feedback, "verdict": verdict(
            p=feedback["p"], base_rate=base["negative_rate"], cand_rate=cand["negative_rate"],
            base_n=base["feedback"], cand_n=cand["feedback"], minimum=MIN_FEEDBACK, what="feedback")},
        "errors": {**errors, "verdict": verdict(
            p=errors["p"], base_rate=base["error_rate"], cand_rate=cand["error_rate"],
            base_n=base["requests"], cand_n=cand["requests"], minimum=MIN_REQUESTS, what="requests")},
    }  # fmt: skip


# --- queries --------------------------------------------------------------------------------------------


def production_version(deployment: Deployment) -> ModelVersion | None:
    return ModelVersion.objects.filter(model_id=deployment.model_id, alias=Alias.PRODUCTION).first()


def production_label(variants) -> str | None:
    """The production arm: the variant following the alias, else the one pinned to production, else the first."""
    for test in (lambda v: v.version_id is None, lambda v: v.version and v.version.alias == Alias.PRODUCTION):
        for v in variants:
            if test(v):
                return v.label
    return variants[0].label if variants else None


def _shown_labels(variants, prod: str | None):
    """Logged label -> the row it counts in. A stopped deployment's traffic is logged as "production" (the
    gateway's label for it); it counts in the production arm's row when no variant has that label."""
    labels = {v.label for v in variants}

    def shown(logged: str) -> str:
        return prod if logged == STOPPED_LABEL and logged not in labels and prod else logged

    return shown


def _logged_as(label: str, prod: str | None, shown) -> list[str]:
    return [label, STOPPED_LABEL] if label == prod and shown(STOPPED_LABEL) == prod else [label]


def _add(row: dict, **counts) -> None:
    for key, n in counts.items():
        row[key] += n


def _empty_row(label: str) -> dict:
    return {"label": label, "requests": 0, "errors": 0, "cached": 0, "feedback": 0, "down": 0}


def deployment_stats(deployment: Deployment, *, days: int = WINDOW_DAYS, now=None) -> dict:
    """Everything the A/B dashboard shows about ``deployment`` over the last ``days`` days."""
    now = now or timezone.now()
    since = now - timedelta(days=days)
    variants = list(deployment.variants.select_related("version__model"))
    total_weight = sum(v.weight for v in variants) or 1
    served = ServedResponse.objects.filter(deployment=deployment, created_at__gte=since, created_at__lt=now)
    prod = production_label(variants)
    shown = _shown_labels(variants, prod)
    rows = {v.label: _empty_row(v.label) for v in variants}
    for c in served.values("variant").annotate(
        n=Count("pk"), err=Count("pk", filter=Q(status_code__gte=500) | ~Q(error="")),
        hit=Count("pk", filter=Q(cached=True)),
    ):  # fmt: skip
        row = rows.setdefault(shown(c["variant"]), _empty_row(shown(c["variant"])))
        _add(row, requests=c["n"], errors=c["err"], cached=c["hit"])
    ratings = Feedback.objects.filter(response__deployment=deployment, response__created_at__gte=since,
                                      response__created_at__lt=now)  # fmt: skip
    for c in ratings.values("response__variant").annotate(
        n=Count("pk"), down=Count("pk", filter=Q(rating=Rating.DOWN))
    ):
        row = rows.setdefault(shown(c["response__variant"]), _empty_row(shown(c["response__variant"])))
        _add(row, feedback=c["n"], down=c["down"])
    by_label = {v.label: v for v in variants}
    for label, row in rows.items():
        latencies = list(served.filter(variant__in=_logged_as(label, prod, shown)).order_by("-created_at")
                         .values_list("latency_ms", flat=True)[:LATENCY_SAMPLE])  # fmt: skip
        variant = by_label.get(label)
        row.update(
            variant=variant, removed=variant is None, is_production=label == prod,
            share=100 * variant.weight / total_weight if variant else None,
            p50_ms=percentile(latencies, 50), p95_ms=percentile(latencies, 95), sampled=len(latencies),
            error_rate=rate(row["errors"], row["requests"]), cache_hit_rate=rate(row["cached"], row["requests"]),
            negative_rate=rate(row["down"], row["feedback"]),
        )  # fmt: skip
    ordered = sorted(rows.values(), key=lambda r: (r["removed"], not r["is_production"], r["label"]))
    base = rows.get(prod)
    tests = [
        compare(base, r) for r in ordered if base is not None and r["label"] != prod and not r["removed"]
    ]
    return {"since": since, "now": now, "days": days, "production": prod, "variants": ordered, "tests": tests,
            "production_version": production_version(deployment), "daily": _daily(served, since, now)}  # fmt: skip


def _daily(served, since, now) -> dict:
    """{"days": [date, …], "series": {label: [requests per day, …]}} with zero-filled days."""
    first, last = timezone.localdate(since), timezone.localdate(now)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    index = {d: i for i, d in enumerate(days)}
    series: dict[str, list[int]] = {}
    for c in served.annotate(day=TruncDate("created_at")).values("day", "variant").annotate(n=Count("pk")):
        if c["day"] in index:
            series.setdefault(c["variant"], [0] * len(days))[index[c["day"]]] = c["n"]
    return {"days": days, "series": dict(sorted(series.items()))}


# --- chart ----------------------------------------------------------------------------------------------

COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#64748b")


def daily_chart(daily: dict, *, title: str = "Requests per day and variant") -> SafeString:
    """One line per variant over the days, drawn as inline SVG like evaluation_app.charts; '' when no data."""
    days, series = daily.get("days") or [], daily.get("series") or {}
    if not days or not series:
        return mark_safe("")
    left, top, plot_w, plot_h, width = 50, 12, 520, 180, 680
    height = top + plot_h + 34
    peak = max(max(values) for values in series.values()) or 1

    def px(i: int) -> float:
        return left + (i / (len(days) - 1) if len(days) > 1 else 0.5) * plot_w

    def py(n: int) -> float:
        return top + plot_h - n / peak * plot_h

    body = [f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#cbd5e1"/>',
            f'<text x="{left - 4}" y="{top + 10}" font-size="10" text-anchor="end" fill="#64748b">{peak}</text>',
            f'<text x="{left - 4}" y="{top + plot_h}" font-size="10" text-anchor="end" fill="#64748b">0</text>',
            f'<text x="{left}" y="{top + plot_h + 14}" font-size="10" fill="#64748b">{days[0]:%m-%d}</text>',
            f'<text x="{left + plot_w}" y="{top + plot_h + 14}" font-size="10" text-anchor="end" '
            f'fill="#64748b">{days[-1]:%m-%d}</text>']  # fmt: skip
    for k, (label, values) in enumerate(series.items()):
        colour, name = COLOURS[k % len(COLOURS)], escape(label or "(none)")
        points = " ".join(f"{px(i):.1f},{py(n):.1f}" for i, n in enumerate(values))
        body.append(f'<polyline class="series" data-variant="{name}" points="{points}" fill="none" '
                    f'stroke="{colour}" stroke-width="1.5"><title>{name}</title></polyline>'
                    f'<text x="{left + plot_w + 8}" y="{top + 12 + 14 * k}" font-size="11" fill="{colour}">'
                    f"{name}</text>")  # fmt: skip
    head = (f'<svg class="chart-svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>')  # fmt: skip
    return mark_safe(head + "".join(body) + "</svg>")  # labels escaped above
