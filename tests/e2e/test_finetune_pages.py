"""A data scientist watches a fine-tune's curves: the job page draws its loss charts in Chromium from the metric
points the worker wrote (the points are written here directly; the training itself is tested elsewhere)."""

import json

from playwright.sync_api import expect

from datasets_app.models import Dataset, DatasetVersion
from llmops.jobs import JobStatus
from registry_app.models import ModelVersion, RegisteredModel
from tests.e2e.conftest import login, screenshot
from training_app.models import FineTuneJob, MetricPoint


def running_job(tmp_path) -> FineTuneJob:
    folder = tmp_path / "base"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 100})
    )
    base = ModelVersion.objects.create(model=RegisteredModel.objects.create(name="tiny", task="causal_lm"),
                                       number=1, source="base", artifact_uri=str(folder))  # fmt: skip
    dataset = Dataset.objects.create(name="support", task_type="chat")
    version = DatasetVersion.objects.create(dataset=dataset, number=1, recipe={}, status="ready",
                                            counts={"train": 10, "validation": 2, "test": 0})  # fmt: skip
    job = FineTuneJob.objects.create(base=base, dataset_version=version, method="lora", status=JobStatus.RUNNING,
                                     progress=0.4, config={"method": "lora", "lr": 0.0002})  # fmt: skip
    points = [
        MetricPoint(job=job, step=step, name="train_loss", value=3.0 - step / 100) for step in range(1, 201)
    ]
    points += [
        MetricPoint(job=job, step=step, name="val_loss", value=3.1 - step / 120)
        for step in range(20, 201, 20)
    ]
    MetricPoint.objects.bulk_create(points)
    return job


def test_the_job_page_draws_the_loss_curves_and_keeps_polling_while_running(
    page, live_server, world, tmp_path
):
    job = running_job(tmp_path)
    login(page, live_server, "scientist")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Fine-tuning").click()
    page.get_by_role("link", name=f"#{job.pk}", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Fine-tune job {job.pk}")
    loss_chart = page.locator("[data-chart]").first
    expect(loss_chart.locator("canvas")).to_have_count(1)
    expect(loss_chart).to_contain_text("train_loss")
    screenshot(page, "finetune-01-job-charts.png")
    MetricPoint.objects.create(job=job, step=201, name="train_loss", value=0.5)
    with page.expect_response(lambda r: "metrics.json" in r.url, timeout=10_000) as polled:
        pass
    body = polled.value.json()
    assert body["series"]["train_loss"]["x"][-1] == 201
