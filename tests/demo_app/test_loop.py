"""The guided demo on the tiny classifier and the demo seed's cases: `manage.py demo_loop` makes every object of the loop (a dataset version,
a succeeded fine-tune, two evaluation runs, a comparison report with per-case results, a promotion request), and
the admins' button on the home page queues the same run for a worker."""

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from datasets_app.models import VersionStatus
from demo_app.catalog import INTENT_DATASET
from demo_app.models import DemoRun
from evaluation_app.models import CaseOutcome, ReportStatus
from llmops.jobs import JobStatus, broker_lists
from registry_app.models import ModelTask, PromotionRequest
from registry_app.services import base_model_ensure


@pytest.fixture
def tiny_bert_base(tiny_bert_dir, artifacts, settings):
    settings.EVAL_BOOTSTRAP_RESAMPLES = 50  # the report's macro-F1 interval: seconds at the default 2000
    return base_model_ensure(user=None, name="tiny-bert", path=tiny_bert_dir, task=ModelTask.CLASSIFICATION)[
        0
    ]


def test_demo_loop_on_the_tiny_classifier_makes_every_object_of_the_loop(world, tiny_bert_base):
    scientist = world.users["Data Scientist"]
    out = io.StringIO()
    call_command(
        "demo_loop", "--model", "tiny-bert", "--steps", "3", "--user", scientist.username, stdout=out
    )

    run = DemoRun.objects.get()
    assert run.status == JobStatus.SUCCEEDED, run.error
    version = run.dataset_version
    assert version.dataset.name == INTENT_DATASET and version.status == VersionStatus.READY
    assert version.counts["train"] and version.counts["test"]
    assert run.fine_tune.status == JobStatus.SUCCEEDED and run.fine_tune.created_by == scientist
    # the baseline is the tiny encoder with a head over the intents, registered once as its own base
    assert (
        run.fine_tune.base.model.name == "tiny-bert-intents"
        and run.fine_tune.base.model.task == "classification"
    )
    report = run.report
    assert report.status == ReportStatus.READY, report.reason
    assert report.baseline.model_version == run.fine_tune.base
    assert report.candidate.model_version == run.fine_tune.result_version
    assert {report.baseline.status, report.candidate.status} == {JobStatus.SUCCEEDED}
    items = report.items.filter(pack="task")
    assert items.count() == version.counts["test"]
    assert all(item.case_outcome in CaseOutcome.values for item in items)  # every test row is an error case
    assert run.summary["forgetting_checked"]  # on the seed's general intents set
    request = PromotionRequest.objects.get()
    assert (request.version, request.target, request.requested_by) == (run.fine_tune.result_version, "staging",
                                                                       scientist)  # fmt: skip
    assert run.promotion == request

    printed = out.getvalue()
    assert reverse("evaluation:report", args=[report.pk]) in printed
    assert f"Held-out error cases of the trained categories: {run.summary['errors']}; fixed: " in printed
    assert reverse("registry:promotion", args=[request.pk]) in printed

    page = world.client("Admin").get(reverse("demo:run", args=[run.pk])).content.decode()
    for url in (
        reverse("evaluation:report", args=[report.pk]),
        reverse("registry:promotion", args=[request.pk]),
        reverse("datasets:version", args=[version.pk]),
        reverse("training:job", args=[run.fine_tune.pk]),
    ):
        assert url in page  # fmt: skip
    assert "Fixed by the fine-tune" in page


def test_the_admins_button_queues_the_demo_for_a_worker_and_others_get_403(
    world, tiny_bert_base, broker, django_capture_on_commit_callbacks
):
    home = world.client("Admin").get(reverse("home")).content.decode()
    assert "Run the guided demo" in home and reverse("demo:start") in home
    for role in ("PM", "Data Scientist", "Architect"):
        assert "Run the guided demo" not in world.client(role).get(reverse("home")).content.decode()
        assert world.client(role).post(reverse("demo:start"), {"model": "tiny-bert"}).status_code == 403

    with django_capture_on_commit_callbacks(execute=True):
        response = world.client("Admin").post(reverse("demo:start"), {"model": "tiny-bert", "steps": "2"})
    run = DemoRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("demo:run", args=[run.pk])
    assert (run.status, run.steps, run.created_by) == (JobStatus.QUEUED, 2, world.users["Admin"])
    assert sum(broker.llen(name) for name in broker_lists("gpu")) == 1  # a message for a gpu worker
    page = world.client("Admin").get(response["Location"]).content.decode()
    assert "queued" in page and "waiting for a worker of the gpu queue" in page


def test_the_button_names_what_is_wrong_without_starting_anything(world):
    response = world.client("Admin").post(reverse("demo:start"), {"model": "minilm", "steps": "0"})
    assert response.status_code == 400
    text = response.content.decode()
    assert "Ensure this value is greater than or equal to 1" in text
    response = world.client("Admin").post(reverse("demo:start"), {"model": "minilm"})
    assert (
        response.status_code == 400
        and "no base model named all-minilm-l6-v2 is registered" in response.content.decode()
    )
    assert not DemoRun.objects.exists()
