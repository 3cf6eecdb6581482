"""The evaluation pages' small world, made with the ORM: two versions of a model, a baseline and a candidate run
that scored the same examples (some from approved error cases, one leaked into the candidate's training data, a
general-capability pack that the candidate forgot), and the report computed by the lead's comparison_compute.

Fixture names start with ``e_`` so they cannot clash with the API tests' fixtures in the same folder.
"""

import pytest

from datasets_app.models import ErrorCase
from evaluation_app.models import ComparisonReport, EvalResult, EvalRun
from evaluation_app.services.compare import comparison_compute
from llmops.jobs import JobStatus
from registry_app.models import ModelVersion, RegisteredModel

SCRIPT = "<script>alert(1)</script>"
# position -> (category, tags, case?, baseline correct, candidate correct, baseline text, candidate text)
EXAMPLES = [
    (
        "billing",
        ["refund"],
        True,
        True,
        False,
        "You can get a refund within 30 days.",
        "Refunds are never possible.",
    ),
    ("billing", ["refund"], True, False, True, "Call us.", "You can get a refund within 30 days."),
    ("shipping", ["delay"], True, False, False, "No idea.", "Maybe tomorrow."),
    ("shipping", [], True, True, True, "It ships in 2 days.", "It ships in 2 days."),
    ("account", ["login"], False, True, False, "Reset your password here.", f"Try {SCRIPT} again."),
    ("account", [], False, False, True, "Sorry.", "Reset your password from the login page."),
]


@pytest.fixture
def e_versions(db) -> tuple[ModelVersion, ModelVersion]:
    return make_versions()


def make_versions() -> tuple[ModelVersion, ModelVersion]:
    model = RegisteredModel.objects.create(name="support-bot", task="causal_lm")
    base = ModelVersion.objects.create(
        model=model, number=1, source="base", artifact_uri="/m/1", sha256="a" * 64
    )
    tuned = ModelVersion.objects.create(model=model, number=2, source="fine_tune", base=base,
                                        artifact_uri="/m/2", sha256="b" * 64)  # fmt: skip
    return base, tuned


@pytest.fixture
def e_cases(db) -> list[ErrorCase]:
    return make_cases()


def make_cases() -> list[ErrorCase]:
    return [
        ErrorCase.objects.create(
            messages=[{"role": "user", "content": f"question {i}"}],
            bad_output="bad",
            expected_output=f"good {i}",
            fingerprint=f"f{i}",
            status="approved",
            product="shop",
        )  # fmt: skip
        for i in range(4)
    ]


def e_run(version: ModelVersion, side: str, cases: list[ErrorCase], **fields) -> EvalRun:
    run = EvalRun.objects.create(model_version=version, product="shop", suites=["task"],
                                 status=JobStatus.SUCCEEDED, progress=1.0, **fields)  # fmt: skip
    rows = []
    for i, (category, tags, from_case, base_ok, cand_ok, base_text, cand_text) in enumerate(EXAMPLES):
        ok, text = (base_ok, base_text) if side == "baseline" else (cand_ok, cand_text)
        rows.append(EvalResult(
            run=run, position=i, key=f"key{i}", category=category, tags=tags, case=cases[i] if from_case else None,
            prompt=[{"role": "user", "content": f"question {i}"}], reference=f"good {i}", prediction=text,
            score=1.0 if ok else 0.0, correct=ok, scores={"exact": 1.0 if ok else 0.0},
            leaked="exact" if side == "candidate" and i == 5 else "",
        ))  # fmt: skip
    for i, category in enumerate(["math", "math", "facts", "facts"]):
        ok = side == "baseline" or i % 2 == 1  # the candidate forgets half the general pack
        rows.append(EvalResult(run=run, pack="general", position=i, key=f"general{i}", category=category,
                               prompt=[{"role": "user", "content": f"general {i}"}], reference="x",
                               prediction="x" if ok else "y", score=1.0 if ok else 0.0, correct=ok))  # fmt: skip
    EvalResult.objects.bulk_create(rows)
    return run


@pytest.fixture
def e_report(e_versions, e_cases) -> ComparisonReport:
    return make_report(e_versions, e_cases)


def make_report(versions: tuple[ModelVersion, ModelVersion], cases: list[ErrorCase]) -> ComparisonReport:
    """Baseline and candidate runs on the same examples, and their report computed by comparison_compute."""
    base, tuned = versions
    baseline = e_run(base, "baseline", cases, name="base run")
    leakage = {"checked": True, "exact": 1, "near": 0, "examples": [{"position": 5, "key": "key5", "kind": "exact",
                                                                     "case": None}]}  # fmt: skip
    candidate = e_run(tuned, "candidate", cases, name="tuned run", leakage=leakage,
                      system_prompt="Be brief.")  # fmt: skip
    report = ComparisonReport.objects.create(name=f"tuned vs base {SCRIPT}", baseline=baseline, candidate=candidate,
                                             forgetting_threshold=0.05)  # fmt: skip
    return comparison_compute(report_id=report.pk)
