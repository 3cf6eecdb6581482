"""Comparison reports on results written directly: pairing, refusals, fixed / still wrong / newly broken, the
forgetting flag, leakage, and waiting reports computed when their runs end."""

import pytest
from django.core.exceptions import ValidationError

from datasets_app.models import ErrorCase
from evaluation_app.models import CaseOutcome, ComparisonReport, EvalResult, EvalRun, Pack, ReportStatus
from evaluation_app.services.compare import comparison_compute, comparison_create, reports_advance
from llmops.jobs import JobStatus
from registry_app.models import ModelVersion, RegisteredModel


@pytest.fixture
def versions(db, scientist):
    family = RegisteredModel.objects.create(name="bot", task="causal_lm")
    return [ModelVersion.objects.create(model=family, number=n, source="base", artifact_uri=f"/m/{n}", sha256="x")
            for n in (1, 2)]  # fmt: skip


def make_run(
    version, outcomes: list[bool | None], *, status=JobStatus.SUCCEEDED, general=(), cases=None, **kw
):
    run = EvalRun.objects.create(model_version=version, status=status, **{"product": "shop", **kw})
    for i, right in enumerate(outcomes):
        case = cases[i] if cases else None
        EvalResult.objects.create(run=run, position=i, key=f"k{i}", prompt=[], reference="r", prediction="p",
                                  score=float(bool(right)), correct=right, case=case,
                                  category="billing" if i % 2 else "refunds", tags=["t"])  # fmt: skip
    for i, right in enumerate(general):
        EvalResult.objects.create(run=run, pack=Pack.GENERAL, position=i, key=f"g{i}", prompt=[],
                                  category="arithmetic", score=float(right), correct=right)  # fmt: skip
    return run


def test_it_classifies_each_error_case_as_fixed_still_wrong_or_newly_broken(scientist, versions):
    cases = [ErrorCase.objects.create(messages=[], bad_output="b", fingerprint=str(i)) for i in range(4)]
    baseline = make_run(versions[0], [False, False, True, True], cases=cases)
    candidate = make_run(versions[1], [True, False, False, True], cases=cases)
    report = comparison_create(user=scientist, baseline=baseline, candidate=candidate)
    assert report.status == ReportStatus.READY
    outcomes = dict(report.items.values_list("key", "case_outcome"))
    assert outcomes == {"k0": CaseOutcome.FIXED, "k1": CaseOutcome.STILL_WRONG, "k2": CaseOutcome.NEWLY_BROKEN,
                        "k3": CaseOutcome.STILL_RIGHT}  # fmt: skip
    assert report.summary["cases"] == {"fixed": 1, "still_wrong": 1, "newly_broken": 1, "still_right": 1}
    assert report.summary["outcomes"] == {"win": 1, "loss": 1, "tie": 2}
    accuracy = report.summary["metrics"][0]
    assert accuracy["name"] == "accuracy" and accuracy["delta"] == 0 and not accuracy["significant"]
    assert report.summary["mcnemar"]["fixed"] == 1 and report.summary["mcnemar"]["broken"] == 1


def test_a_clear_improvement_has_an_interval_above_zero(scientist, versions):
    baseline = make_run(versions[0], [i % 4 == 0 for i in range(200)])
    candidate = make_run(versions[1], [i % 4 != 3 for i in range(200)])
    report = comparison_create(user=scientist, baseline=baseline, candidate=candidate)
    accuracy = next(m for m in report.summary["metrics"] if m["name"] == "accuracy")
    assert accuracy["delta"] == pytest.approx(0.5)
    assert 0 < accuracy["low"] < 0.5 < accuracy["high"] and accuracy["significant"]
    assert accuracy["p_value"] < 0.001
    billing = next(r for r in report.summary["by_category"] if r["name"] == "billing")
    assert billing["n"] == 100


def test_it_refuses_runs_over_different_example_sets_with_the_reason(scientist, versions):
    baseline = make_run(versions[0], [True, False])
    candidate = make_run(versions[1], [True, False, True])
    with pytest.raises(ValidationError) as e:
        comparison_create(user=scientist, baseline=baseline, candidate=candidate)
    assert "1 only in the candidate" in e.value.message_dict["candidate"][0]
    other = make_run(versions[1], [True, False], product="elsewhere")
    with pytest.raises(ValidationError) as e:
        comparison_create(user=scientist, baseline=baseline, candidate=other)
    assert "different example sets" in e.value.message_dict["candidate"][0]
    with pytest.raises(ValidationError):
        comparison_create(user=scientist, baseline=baseline, candidate=baseline)
    assert ComparisonReport.objects.count() == 0


def test_a_waiting_report_is_computed_when_its_second_run_ends(scientist, versions):
    baseline = make_run(versions[0], [False, True])
    candidate = make_run(versions[1], [True, True], status=JobStatus.RUNNING)
    report = comparison_create(user=scientist, baseline=baseline, candidate=candidate)
    assert report.status == ReportStatus.WAITING and not report.items.exists()
    EvalRun.objects.filter(pk=candidate.pk).update(status=JobStatus.SUCCEEDED)
    assert reports_advance(run_id=candidate.pk) == [report.pk]
    report.refresh_from_db()
    assert report.status == ReportStatus.READY and report.items.count() == 2


def test_a_report_fails_with_its_run(scientist, versions):
    baseline = make_run(versions[0], [True])
    candidate = make_run(versions[1], [True], status=JobStatus.RUNNING)
    report = comparison_create(user=scientist, baseline=baseline, candidate=candidate)
    EvalRun.objects.filter(pk=candidate.pk).update(status=JobStatus.FAILED, error="out of memory")
    report = comparison_compute(report_id=report.pk)
    assert report.status == ReportStatus.FAILED and "out of memory" in report.reason


def test_a_general_pack_drop_beyond_the_threshold_is_flagged(scientist, versions):
    baseline = make_run(versions[0], [True], general=[True] * 10)
    candidate = make_run(versions[1], [True], general=[True] * 8 + [False] * 2)
    report = comparison_create(
        user=scientist, baseline=baseline, candidate=candidate, forgetting_threshold=0.1
    )
    forgetting = report.summary["forgetting"]
    assert forgetting["drop"] == pytest.approx(0.2) and forgetting["flagged"] and report.forgetting_flagged
    assert forgetting["by_category"][0]["flagged"]
    report = comparison_create(
        user=scientist, baseline=baseline, candidate=candidate, forgetting_threshold=0.25
    )
    assert not report.forgetting_flagged


def test_leakage_in_the_candidate_makes_the_report_untrustworthy(scientist, versions):
    baseline = make_run(versions[0], [True, False])
    candidate = make_run(versions[1], [True, True],
                         leakage={"checked": True, "exact": 1, "near": 0, "examples": [{"position": 1}]})  # fmt: skip
    report = comparison_create(user=scientist, baseline=baseline, candidate=candidate)
    assert report.untrustworthy and report.summary["leakage"]["count"] == 1
