"""The A/B numbers: pure helpers table by table, then the per-variant stats and verdicts on crafted request-log
and feedback rows (figures worked out by hand), and the dashboard that shows them."""

import itertools
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from scipy import stats as scipy_stats

from registry_app.experiments import (
    MIN_FEEDBACK,
    daily_chart,
    deployment_stats,
    percentile,
    proportion_test,
    verdict,
    window_days,
)
from registry_app.models import Deployment, Feedback, ModelVersion, RegisteredModel, ServedResponse

IDS = itertools.count()


@pytest.mark.parametrize(
    ("raw", "days"),
    [(None, 7), ("3", 3), (" 14 ", 14), ("0", 1), ("-2", 1), ("500", 90), ("abc", 7), ("2.5", 7)],
)
def test_the_window_is_a_whole_number_of_days_within_bounds(raw, days):
    assert window_days(raw) == days


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([], 50, None), ([7], 95, 7.0), ([1, 2, 3, 4], 50, 2.5), ([4, 1, 3, 2], 0, 1.0), ([1, 2, 3, 4], 100, 4.0),
     (list(range(10, 101, 10)), 95, 95.5), ([5, 5, 5, 50], 95, 43.25)],
)  # fmt: skip
def test_percentiles_interpolate_between_ranks(values, q, expected):
    assert percentile(values, q) == (pytest.approx(expected) if expected is not None else None)


def test_percentiles_agree_with_numpy():
    import numpy as np

    values = [((i * 7919) % 1000) / 3 for i in range(997)]
    for q in (50, 95, 99):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


PROPORTIONS = [
    # x1, n1, x2, n2, method, p (hand-worked z-test: pooled 0.125, se 0.01479, z 3.381)
    (100, 1000, 150, 1000, "z", 0.000723),
    (50, 500, 50, 500, "z", 1.0),
    (1, 10, 6, 10, "fisher", scipy_stats.fisher_exact([[1, 9], [6, 4]])[1]),
    (0, 300, 0, 300, "fisher", 1.0),
    (0, 0, 3, 10, None, None),
]


@pytest.mark.parametrize(("x1", "n1", "x2", "n2", "method", "p"), PROPORTIONS)
def test_small_counts_use_fishers_exact_test_and_large_ones_the_z_test(x1, n1, x2, n2, method, p):
    result = proportion_test(x1, n1, x2, n2)
    assert result["method"] == method
    assert result["p"] == (pytest.approx(p, rel=1e-2) if p is not None else None)


VERDICTS = [
    (0.01, 0.10, 0.05, 100, 100, "candidate better at p<0.05"),
    (0.01, 0.10, 0.20, 100, 100, "candidate worse at p<0.05"),
    (0.20, 0.10, 0.05, 100, 100, "no significant difference at p<0.05"),
    (0.05, 0.10, 0.05, 100, 100, "no significant difference at p<0.05"),
    (0.001, 0.10, 0.90, 100, 19, "too few feedback to tell"),
    (None, None, None, 0, 0, "too few feedback to tell"),
]


@pytest.mark.parametrize(("p", "base", "cand", "base_n", "cand_n", "expected"), VERDICTS)
def test_the_verdict_reads_the_test_plainly(p, base, cand, base_n, cand_n, expected):
    assert verdict(p=p, base_rate=base, cand_rate=cand, base_n=base_n, cand_n=cand_n, minimum=20,
                   what="feedback") == expected  # fmt: skip


# --- stats on crafted rows ------------------------------------------------------------------------------


@pytest.fixture
def ab(db):
    model = RegisteredModel.objects.create(name="support-bot", task="causal_lm")
    ModelVersion.objects.create(model=model, number=1, source="base", alias="production")
    candidate = ModelVersion.objects.create(model=model, number=2, source="base", alias="candidate")
    deployment = Deployment.objects.create(name="support", model=model)
    deployment.variants.create(label="production", version=None, weight=90, position=0)
    deployment.variants.create(label="candidate-1", version=candidate, weight=10, position=1)
    return deployment


def served(deployment, variant, *, latency=10.0, status=200, error="", cached=False, ago=timedelta(hours=1),
           rating=None):  # fmt: skip
    response = ServedResponse.objects.create(
        id=f"chatcmpl-{next(IDS)}", deployment=deployment, variant=variant, endpoint="chat", latency_ms=latency,
        status_code=status, error=error, cached=cached, created_at=timezone.now() - ago,
    )  # fmt: skip
    if rating:
        Feedback.objects.create(response=response, rating=rating)
    return response


@pytest.fixture
def crafted(ab):
    """production: 10 requests at 10..100 ms, one 500, two cached, 1 down of 4 ratings;
    candidate-1: 4 requests at 5, 5, 5, 50 ms, one with an engine error, 2 down of 2; plus an old request and
    one from a variant since removed."""
    for i, latency in enumerate(range(10, 101, 10)):
        served(ab, "production", latency=latency, status=500 if i == 0 else 200, cached=i in (1, 2),
               rating=("down" if i == 3 else "up") if i in (3, 4, 5, 6) else None)  # fmt: skip
    for i, latency in enumerate((5, 5, 5, 50)):
        served(ab, "candidate-1", latency=latency, error="engine crashed" if i == 3 else "",
               rating="down" if i < 2 else None)  # fmt: skip
    served(ab, "production", latency=1000, ago=timedelta(days=8))
    served(ab, "old-arm", latency=30)
    return ab


def test_stats_per_variant_match_the_hand_worked_figures(crafted):
    result = deployment_stats(crafted)
    rows = {r["label"]: r for r in result["variants"]}
    assert [r["label"] for r in result["variants"]] == ["production", "candidate-1", "old-arm"]
    prod, cand = rows["production"], rows["candidate-1"]
    assert (prod["requests"], prod["p50_ms"], prod["p95_ms"]) == (10, 55.0, pytest.approx(95.5))
    assert (prod["error_rate"], prod["cache_hit_rate"], prod["negative_rate"], prod["feedback"]) == (
        0.1,
        0.2,
        0.25,
        4,
    )
    assert prod["is_production"] and prod["share"] == 90
    assert (cand["requests"], cand["p50_ms"], cand["p95_ms"]) == (4, 5.0, pytest.approx(43.25))
    assert (cand["error_rate"], cand["cache_hit_rate"], cand["negative_rate"], cand["feedback"]) == (
        0.25,
        0,
        1.0,
        2,
    )
    assert rows["old-arm"]["removed"] and rows["old-arm"]["requests"] == 1
    [test] = result["tests"]
    assert test["label"] == "candidate-1"
    assert test["feedback"]["verdict"] == "too few feedback to tell"
    assert test["errors"]["verdict"] == "too few requests to tell"
    assert sum(result["daily"]["series"]["production"]) == 10


def test_a_longer_window_takes_in_older_requests(crafted):
    rows = {r["label"]: r for r in deployment_stats(crafted, days=30)["variants"]}
    assert rows["production"]["requests"] == 11 and rows["production"]["p95_ms"] > 100


def bulk(deployment, variant, n, downs, errors=0):
    now = timezone.now()
    responses = ServedResponse.objects.bulk_create(
        ServedResponse(id=f"r-{next(IDS)}", deployment=deployment, variant=variant, endpoint="chat",
                       status_code=500 if i < errors else 200, latency_ms=20.0, created_at=now - timedelta(minutes=i))
        for i in range(n)
    )  # fmt: skip
    Feedback.objects.bulk_create(
        Feedback(response=r, rating="down" if i < downs else "up") for i, r in enumerate(responses)
    )


@pytest.mark.parametrize(
    ("prod_downs", "cand_downs", "expected"),
    [(20, 60, "candidate worse at p<0.05"), (60, 20, "candidate better at p<0.05"),
     (30, 34, "no significant difference at p<0.05")],
)  # fmt: skip
def test_candidates_are_judged_against_production_on_negative_feedback(ab, prod_downs, cand_downs, expected):
    bulk(ab, "production", 200, prod_downs)
    bulk(ab, "candidate-1", 200, cand_downs, errors=6)  # 0 of 200 against 6 of 200: Fisher, p ≈ 0.03
    [test] = deployment_stats(ab)["tests"]
    assert test["feedback"]["verdict"] == expected and test["feedback"]["method"] == "z"
    assert test["errors"]["verdict"] == "candidate worse at p<0.05" and test["errors"]["method"] == "fisher"


def test_too_few_ratings_on_one_arm_cannot_tell(ab):
    bulk(ab, "production", 200, 20)
    bulk(ab, "candidate-1", MIN_FEEDBACK - 1, MIN_FEEDBACK - 1)
    [test] = deployment_stats(ab)["tests"]
    assert test["feedback"]["verdict"] == "too few feedback to tell" and test["feedback"]["p"] < 0.05


def test_the_daily_chart_draws_one_escaped_line_per_variant():
    day = timezone.localdate()
    chart = str(
        daily_chart({"days": [day - timedelta(days=1), day], "series": {"<b>x</b>": [1, 3], "p": [2, 0]}})
    )
    assert chart.count("<polyline") == 2 and "&lt;b&gt;x&lt;/b&gt;" in chart and "<b>" not in chart
    assert daily_chart({"days": [day], "series": {}}) == ""


# --- the dashboard --------------------------------------------------------------------------------------


def test_the_dashboard_shows_the_split_the_numbers_and_the_verdicts(world, crafted):
    page = world.client("PM").get(reverse("registry:deployment", args=["support"])).content.decode()
    assert 'data-split="production"' in page and "90.0%" in page and "10.0%" in page
    assert "support-bot v1" in page and "support-bot v2" in page
    row = page[page.index('<tr data-variant="production"') : page.index('<tr data-variant="candidate-1"')]
    assert '<td class="num" data-requests>10</td>' in row and "55.0" in row and "95.5" in row
    assert "0.100 (1)" in row and "0.250 (1 of 4)" in row and "0.200" in row
    assert "too few feedback to tell" in page and "(removed)" in page and 'id="daily-chart"' in page
    assert 'hx-trigger="every 10s"' in page and 'id="refresh"' in page


def test_the_htmx_refresh_returns_only_the_numbers(world, crafted):
    response = world.client("PM").get(
        reverse("registry:deployment", args=["support"]), {"days": "30"},
        HTTP_HX_REQUEST="true", HTTP_HX_TARGET="deployment-stats",
    )  # fmt: skip
    page = response.content.decode()
    assert page.lstrip().startswith('<section class="card" id="deployment-stats"')
    assert "Last 30 days" in page and '<td class="num" data-requests>11</td>' in page


def test_traffic_logged_after_a_stop_counts_in_the_production_arm(ab):
    ab.variants.filter(label="production").update(label="main")
    served(ab, "main", latency=10)
    served(ab, "production", latency=30, rating="down")  # the gateway's label while the deployment is stopped
    rows = {r["label"]: r for r in deployment_stats(ab)["variants"]}
    assert set(rows) == {"main", "candidate-1"}
    assert (rows["main"]["requests"], rows["main"]["p50_ms"], rows["main"]["down"]) == (2, 20.0, 1)
