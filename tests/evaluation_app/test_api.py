"""The evaluation REST API: submit, list, read and cancel runs; page and filter results; label predictions; compare
two runs and filter the report's items. Runs and results are made with the ORM (no worker here: a submitted run
stays queued, its message is sent only on commit, which the test transaction never reaches)."""

import pytest
from django.urls import reverse

from datasets_app.models import Dataset, DatasetVersion, ErrorCase
from evaluation_app.models import ComparisonReport, EvalResult, EvalRun
from evaluation_app.services.compare import comparison_compute
from llmops.jobs import JobStatus
from registry_app.models import ModelVersion, RegisteredModel

PM, DS, ARCHITECT, ADMIN = "PM", "Data Scientist", "Architect", "Admin"


@pytest.fixture
def model_versions(db) -> tuple[ModelVersion, ModelVersion]:
    model = RegisteredModel.objects.create(name="tiny", task="causal_lm")
    return tuple(ModelVersion.objects.create(model=model, number=n, source="base") for n in (1, 2))


@pytest.fixture
def version(db) -> DatasetVersion:
    dataset = Dataset.objects.create(name="support answers", task_type="chat")
    return DatasetVersion.objects.create(
        dataset=dataset, number=1, recipe={}, status="ready", counts={"train": 8, "test": 3}
    )


def finished_run(model_version, version, outcomes, *, leaked=(), cases=None, **fields) -> EvalRun:
    """A succeeded run over three examples k0..k2; ``outcomes`` are their correct flags (score 1.0 or 0.0)."""
    run = EvalRun.objects.create(model_version=model_version, dataset_version=version, split="test",
                                 suites=["task"], status=JobStatus.SUCCEEDED, progress=1.0,
                                 example_count=len(outcomes), **fields)  # fmt: skip
    for i, correct in enumerate(outcomes):
        EvalResult.objects.create(
            run=run, position=i, key=f"k{i}", category="billing" if i < 2 else "refunds",
            prompt=[{"role": "user", "content": f"question {i}"}], reference=f"answer {i}",
            prediction=f"{model_version} says {i}", score=1.0 if correct else 0.0, correct=correct,
            scores={"exact_match": float(correct)}, latency_ms=12.5, new_tokens=4,
            leaked="exact" if i in leaked else "", case=(cases or {}).get(i),
        )  # fmt: skip
    return run


def submit_body(model_version, version, **overrides) -> dict:
    return {"model_version": model_version.pk, "dataset_version": version.pk, "split": "test", **overrides}


# --- runs ---------------------------------------------------------------------------------------------------------


def test_a_data_scientist_submits_a_run_that_waits_queued_for_a_worker(world, model_versions, version):
    body = submit_body(model_versions[0], version, name="baseline", suites=["task", "rules"],
                       rules=[{"kind": "regex_must", "pattern": "refund"}], system_prompt="Be brief.",
                       few_shot=[{"user": "hi", "assistant": "hello"}], generation={"max_new_tokens": 32},
                       limit=2)  # fmt: skip
    response = world.api(DS).post(reverse("api-evaluations"), body, format="json")
    assert response.status_code == 201, response.data
    data = response.json()
    run = EvalRun.objects.get(pk=data["id"])
    assert (data["status"], run.created_by, run.celery_task_id != "") == ("queued", world.users[DS], True)
    assert data["suites"] == ["task", "rules"] and data["rules"][0]["pattern"] == "refund"
    assert data["has_template"] is True and data["few_shot"] == [{"user": "hi", "assistant": "hello"}]
    assert (data["limit"], data["generation"], data["model"]) == (2, {"max_new_tokens": 32}, "tiny v1")
    assert "support answers" in data["source"]


def test_a_bad_submission_names_every_field_at_once_and_saves_nothing(world, model_versions, version):
    body = submit_body(
        model_versions[0], version, split="validation", suites=["task", "judge", "astrology"],
        rules=[{"kind": "regex_must", "pattern": "(unclosed"}, "not a rule"],
        generation={"temperature": -1, "colour": "red"}, pass_threshold=2,
    )  # fmt: skip
    response = world.api(DS).post(reverse("api-evaluations"), body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["status"], error["code"]) == (400, "invalid")
    fields = error["fields"]
    assert {"split", "suites", "judge", "rules", "generation", "pass_threshold"} <= set(fields)
    assert any("astrology" in m for m in fields["suites"])
    assert any(m.startswith("rule 1") and "regular expression" in m for m in fields["rules"])
    assert any(m.startswith("rule 2") for m in fields["rules"])
    assert any("colour" in m for m in fields["generation"]) and any(
        "temperature" in m for m in fields["generation"]
    )
    assert not EvalRun.objects.exists()


def test_a_submission_with_unknown_references_names_them(world, model_versions, version):
    body = {"model_version": 999999, "dataset_version": 999998, "few_shot": [{"user": "only half"}]}
    response = world.api(DS).post(reverse("api-evaluations"), body, format="json")
    assert response.status_code == 400
    assert {"model_version", "dataset_version", "few_shot"} <= set(response.json()["error"]["fields"])


@pytest.mark.parametrize("role", [PM, ARCHITECT])
def test_only_data_scientists_and_admins_submit_or_cancel_runs(world, model_versions, version, role):
    body = submit_body(model_versions[0], version)
    assert world.api(role).post(reverse("api-evaluations"), body, format="json").status_code == 403
    run = EvalRun.objects.create(model_version=model_versions[0], dataset_version=version, suites=["task"])
    assert world.api(role).post(reverse("api-evaluation-cancel", args=[run.pk])).status_code == 403
    assert not EvalRun.objects.exclude(pk=run.pk).exists()
    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED
    assert world.api(role).get(reverse("api-evaluation", args=[run.pk])).status_code == 200


def test_the_run_list_filters_by_model_version_status_dataset_version_and_product(
    world, model_versions, version
):
    first = finished_run(model_versions[0], version, [True, True, False])
    second = EvalRun.objects.create(model_version=model_versions[1], dataset_version=version, suites=["task"])
    suite = EvalRun.objects.create(model_version=model_versions[1], product="shop", split="", suites=["task"])
    api, url = world.api(ARCHITECT), reverse("api-evaluations")

    def ids(**params):
        response = api.get(url, params)
        assert response.status_code == 200, response.data
        return [r["id"] for r in response.json()["results"]]

    assert ids() == [suite.pk, second.pk, first.pk]  # newest first
    assert ids(model_version=model_versions[0].pk) == [first.pk]
    assert ids(status="succeeded") == [first.pk]
    assert ids(status="queued", model_version=model_versions[1].pk) == [suite.pk, second.pk]
    assert ids(dataset_version=version.pk) == [second.pk, first.pk]
    assert ids(product="shop") == [suite.pk]
    page = api.get(url, {"limit": 1}).json()
    assert page["count"] == 3 and len(page["results"]) == 1 and "offset=1" in page["next"]
    bad = api.get(url, {"status": "sleeping", "model_version": "tiny"})
    assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"status", "model_version"}


def test_a_run_reads_with_its_metrics_leakage_source_and_template(world, model_versions, version):
    metrics = {"task": {"accuracy": 0.67, "n": 3}, "general": {"score": 0.9, "n": 34}}
    leakage = {
        "checked": True,
        "exact": 1,
        "near": 0,
        "examples": [{"position": 0, "key": "k0", "kind": "exact"}],
    }
    run = finished_run(model_versions[0], version, [True, True, False], leaked=[0], metrics=metrics,
                       leakage=leakage, system_prompt="Answer in French.")  # fmt: skip
    data = world.api(PM).get(reverse("api-evaluation", args=[run.pk])).json()
    assert (data["status"], data["progress"], data["example_count"]) == ("succeeded", 1.0, 3)
    assert (
        data["metrics"]["task"]["accuracy"] == 0.67 and data["leakage"]["exact"] == 1 and data["leaked"] == 1
    )
    assert data["system_prompt"] == "Answer in French." and data["has_template"] is True
    assert data["source"] == f"{version} (test)"
    assert world.api(PM).get(reverse("api-evaluation", args=[999999])).status_code == 404


def test_a_queued_run_is_cancelled_once_and_a_finished_one_is_a_conflict(world, model_versions, version):
    run = EvalRun.objects.create(model_version=model_versions[0], dataset_version=version, suites=["task"])
    url = reverse("api-evaluation-cancel", args=[run.pk])
    response = world.api(DS).post(url)
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    again = world.api(ADMIN).post(url)
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


# --- results and labels -------------------------------------------------------------------------------------------


def test_results_page_with_predictions_scores_and_cost(world, model_versions, version):
    case = ErrorCase.objects.create(
        bad_output="x", fingerprint="f", messages=[{"role": "user", "content": "q"}]
    )
    run = finished_run(model_versions[0], version, [True, False, True], cases={1: case})
    page = world.api(ARCHITECT).get(reverse("api-evaluation-results", args=[run.pk]), {"limit": 2}).json()
    assert page["count"] == 3 and [r["position"] for r in page["results"]] == [0, 1]
    second = page["results"][1]
    assert (second["prediction"], second["reference"], second["score"], second["correct"]) == (
        "tiny v1 says 1", "answer 1", 0.0, False,
    )  # fmt: skip
    assert second["case"] == case.pk and second["scores"] == {"exact_match": 0.0}
    assert (second["latency_ms"], second["new_tokens"], second["human_label"]) == (12.5, 4, "")
    assert world.api(PM).get(reverse("api-evaluation-results", args=[999999])).status_code == 404


def test_results_filter_by_pack_correct_leaked_category_and_label(world, model_versions, version):
    run = finished_run(model_versions[0], version, [True, False, True], leaked=[2])
    EvalResult.objects.create(run=run, pack="general", position=0, key="g0", prompt=[], category="arithmetic",
                              correct=None, human_label="bad")  # fmt: skip
    api, url = world.api(PM), reverse("api-evaluation-results", args=[run.pk])

    def keys(**params):
        response = api.get(url, params)
        assert response.status_code == 200, response.data
        return [r["key"] for r in response.json()["results"]]

    assert keys() == ["g0", "k0", "k1", "k2"]  # by pack, then position
    assert keys(pack="general") == ["g0"]
    assert keys(pack="task", correct="true") == ["k0", "k2"]
    assert keys(correct="false") == ["k1"]
    assert keys(correct="null") == ["g0"]
    assert keys(leaked="exact") == ["k2"] and keys(leaked="any") == ["k2"] and keys(leaked="near") == []
    assert sorted(keys(leaked="none")) == ["g0", "k0", "k1"]
    assert keys(category="refunds") == ["k2"]
    assert keys(human_label="bad") == ["g0"]
    bad = api.get(url, {"pack": "everything", "correct": "maybe", "leaked": "a little"})
    assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"pack", "correct", "leaked"}


def test_a_pm_labels_a_prediction_good_then_clears_it(world, model_versions, version):
    run = finished_run(model_versions[0], version, [True, False, True])
    result = run.results.get(key="k1")
    url = reverse("api-evaluation-result-label", args=[run.pk, result.pk])
    response = world.api(PM).post(url, {"label": "good"}, format="json")
    assert response.status_code == 200 and response.json()["human_label"] == "good"
    assert response.json()["human_labelled_by"] == "pm"
    result.refresh_from_db()
    assert (result.human_label, result.human_labelled_by) == ("good", world.users[PM])
    assert world.api(DS).post(url, {"label": ""}, format="json").json()["human_label"] == ""
    result.refresh_from_db()
    assert (result.human_label, result.human_labelled_by) == ("", None)


def test_a_label_must_be_good_bad_or_empty_and_belong_to_the_run(world, model_versions, version):
    run = finished_run(model_versions[0], version, [True, False, True])
    other = finished_run(model_versions[1], version, [True, True, True])
    result = run.results.get(key="k0")
    url = reverse("api-evaluation-result-label", args=[run.pk, result.pk])
    bad = world.api(PM).post(url, {"label": "meh"}, format="json")
    assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"label"}
    missing = world.api(PM).post(url, {}, format="json")
    assert missing.status_code == 400 and set(missing.json()["error"]["fields"]) == {"label"}
    elsewhere = reverse("api-evaluation-result-label", args=[other.pk, result.pk])
    assert world.api(PM).post(elsewhere, {"label": "good"}, format="json").status_code == 404
    assert world.api(ARCHITECT).post(url, {"label": "good"}, format="json").status_code == 403
    result.refresh_from_db()
    assert result.human_label == ""


# --- comparisons --------------------------------------------------------------------------------------------------


@pytest.fixture
def two_runs(model_versions, version) -> tuple[EvalRun, EvalRun]:
    """Baseline right on k0, k1; the candidate fixes k2 (an error case) and breaks k1 (another one)."""
    cases = {i: ErrorCase.objects.create(bad_output="x", fingerprint=f"f{i}", messages=[]) for i in (1, 2)}
    baseline = finished_run(model_versions[0], version, [True, True, False], cases=cases)
    leakage = {
        "checked": True,
        "exact": 1,
        "near": 0,
        "examples": [{"position": 0, "key": "k0", "kind": "exact"}],
    }
    candidate = finished_run(
        model_versions[1], version, [True, False, True], cases=cases, leaked=[0], leakage=leakage
    )
    return baseline, candidate


def test_a_data_scientist_compares_two_finished_runs_into_a_ready_report(world, two_runs):
    baseline, candidate = two_runs
    body = {
        "baseline": baseline.pk,
        "candidate": candidate.pk,
        "name": "v2 vs v1",
        "forgetting_threshold": 0.1,
    }
    response = world.api(DS).post(reverse("api-comparisons"), body, format="json")
    assert response.status_code == 201, response.data
    data = response.json()
    assert (data["status"], data["name"], data["forgetting_threshold"]) == ("ready", "v2 vs v1", 0.1)
    assert (data["baseline_model"], data["candidate_model"]) == ("tiny v1", "tiny v2")
    assert data["summary"]["examples"] == 3 and data["summary"]["cases"]["fixed"] == 1
    assert data["untrustworthy"] is True  # the candidate had seen k0 in training
    detail = world.api(ARCHITECT).get(reverse("api-comparison", args=[data["id"]])).json()
    assert detail["summary"] == data["summary"] and detail["forgetting_flagged"] is False


def test_a_comparison_of_a_run_still_queued_waits(world, model_versions, version, two_runs):
    baseline, _ = two_runs
    queued = EvalRun.objects.create(model_version=model_versions[1], dataset_version=version, split="test",
                                    suites=["task"])  # fmt: skip
    body = {"baseline": baseline.pk, "candidate": queued.pk}
    data = world.api(ADMIN).post(reverse("api-comparisons"), body, format="json").json()
    assert data["status"] == "waiting" and data["summary"] == {}


def test_runs_that_cannot_be_compared_are_refused_with_the_reason(world, model_versions, version, two_runs):
    baseline, candidate = two_runs
    api, url = world.api(DS), reverse("api-comparisons")
    itself = api.post(url, {"baseline": baseline.pk, "candidate": baseline.pk}, format="json")
    assert itself.status_code == 400 and "itself" in " ".join(itself.json()["error"]["fields"]["candidate"])
    EvalResult.objects.filter(run=candidate, key="k2").update(key="edited")
    changed = api.post(url, {"baseline": baseline.pk, "candidate": candidate.pk}, format="json")
    assert changed.status_code == 400
    assert "different example sets" in " ".join(changed.json()["error"]["fields"]["candidate"])
    failed = EvalRun.objects.create(model_version=model_versions[1], dataset_version=version, split="test",
                                    suites=["task"], status=JobStatus.FAILED)  # fmt: skip
    refused = api.post(url, {"baseline": baseline.pk, "candidate": failed.pk, "forgetting_threshold": 3},
                       format="json")  # fmt: skip
    assert refused.status_code == 400
    assert {"candidate", "forgetting_threshold"} <= set(refused.json()["error"]["fields"])
    unknown = api.post(url, {"baseline": 999999}, format="json")
    assert unknown.status_code == 400 and set(unknown.json()["error"]["fields"]) == {"baseline", "candidate"}
    assert not ComparisonReport.objects.exists()


@pytest.mark.parametrize("role", [PM, ARCHITECT])
def test_pms_and_architects_read_reports_but_do_not_create_them(world, two_runs, role):
    baseline, candidate = two_runs
    body = {"baseline": baseline.pk, "candidate": candidate.pk}
    assert world.api(role).post(reverse("api-comparisons"), body, format="json").status_code == 403
    assert not ComparisonReport.objects.exists()
    assert world.api(role).get(reverse("api-comparisons")).status_code == 200


def make_report(world, baseline, candidate) -> ComparisonReport:
    report = ComparisonReport.objects.create(
        baseline=baseline, candidate=candidate, created_by=world.users[DS]
    )
    return comparison_compute(report_id=report.pk)


def test_the_report_list_filters_by_status_and_run(world, model_versions, version, two_runs):
    baseline, candidate = two_runs
    ready = make_report(world, baseline, candidate)
    third = finished_run(model_versions[1], version, [False, False, False])
    waiting = ComparisonReport.objects.create(baseline=third, candidate=candidate)
    api, url = world.api(PM), reverse("api-comparisons")

    def ids(**params):
        response = api.get(url, params)
        assert response.status_code == 200, response.data
        return [r["id"] for r in response.json()["results"]]

    assert ids() == [waiting.pk, ready.pk]
    assert ids(status="ready") == [ready.pk] and ids(status="waiting") == [waiting.pk]
    assert ids(run=baseline.pk) == [ready.pk] and ids(run=third.pk) == [waiting.pk]
    assert ids(run=candidate.pk) == [waiting.pk, ready.pk]
    bad = api.get(url, {"status": "done", "run": "x"})
    assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"status", "run"}


def test_report_items_show_both_predictions_and_filter_by_outcome_case_and_category(world, two_runs):
    baseline, candidate = two_runs
    report = make_report(world, baseline, candidate)
    api, url = world.api(ARCHITECT), reverse("api-comparison-items", args=[report.pk])
    page = api.get(url).json()
    assert page["count"] == 3
    first = page["results"][0]
    assert (first["key"], first["outcome"], first["case_outcome"], first["case"]) == ("k0", "tie", "", None)
    assert (
        first["baseline"]["prediction"] == "tiny v1 says 0"
        and first["candidate"]["prediction"] == "tiny v2 says 0"
    )
    assert first["reference"] == "answer 0" and first["prompt"] == [{"role": "user", "content": "question 0"}]
    assert first["candidate"]["leaked"] == "exact"

    def keys(**params):
        response = api.get(url, params)
        assert response.status_code == 200, response.data
        return [(r["key"], r["case"]) for r in response.json()["results"]]

    broken = baseline.results.get(key="k1").case_id
    assert keys(outcome="loss") == [("k1", broken)] and keys(case_outcome="newly_broken") == [("k1", broken)]
    assert keys(case_outcome="fixed") == [("k2", baseline.results.get(key="k2").case_id)]
    assert keys(outcome="win", category="billing") == []
    assert [k for k, _ in keys(category="billing")] == ["k0", "k1"]
    assert keys(pack="general") == []
    bad = api.get(url, {"outcome": "draw", "case_outcome": "meh"})
    assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"outcome", "case_outcome"}
    assert api.get(reverse("api-comparison-items", args=[999999])).status_code == 404
