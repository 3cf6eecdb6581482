"""A data scientist fine-tunes from the browser: picks the "Quick LoRA" preset, chooses the tiny base and a ready
dataset version, submits; a real gpu worker trains while the job page's loss chart grows from poll to poll; the
finished job links to its new model version, whose page shows where it came from."""

from playwright.sync_api import expect

from llmops.jobs import TERMINAL, JobStatus
from registry_app.services import base_model_register
from tests.conftest import wait_until
from tests.e2e.conftest import login, screenshot
from tests.training_app.conftest import ready_version
from training_app.models import FineTuneJob
from workers.tiny import build_tiny_model


def points_in(response) -> int:
    return len(response.json()["series"].get("train_loss", {}).get("x", []))


def test_a_lora_job_submitted_from_the_form_trains_draws_its_curve_and_opens_its_model_version(
    page, live_server, world, start_worker, settings, tmp_path
):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    scientist = world.users["Data Scientist"]
    version = ready_version(scientist, cases=24)
    base = base_model_register(user=scientist, name="tiny", path=build_tiny_model(tmp_path / "tiny"))
    responses = []
    page.on("response", lambda r: responses.append(r) if "metrics.json" in r.url else None)

    def drawn() -> list[int]:
        """Points of train_loss in each chart poll so far that had any."""
        return [n for n in (points_in(r) for r in list(responses) if r.ok) if n]

    login(page, live_server, "scientist")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Fine-tuning").click()
    page.get_by_role("link", name="New fine-tune").click()
    page.get_by_role("link", name="Quick LoRA").click()
    page.get_by_label("Base model").select_option(str(base.pk))
    page.get_by_label("Dataset version").select_option(str(version.pk))
    page.get_by_label("Epochs", exact=True).fill("30")
    page.get_by_label("Batch size", exact=True).fill("2")
    page.get_by_label("Max sequence length").fill("128")
    page.get_by_label("LoRA rank").fill("4")
    expect(page.locator("#estimate")).to_contain_text("Trainable parameters")
    screenshot(page, "finetune-journey-01-form.png")
    page.get_by_role("button", name="Submit fine-tune").click()

    job = FineTuneJob.objects.get()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Fine-tune job {job.pk}")
    assert job.method == "lora" and job.config["lora_r"] == 4 and job.config["epochs"] == 30
    start_worker(queues="gpu")
    # sync Playwright delivers the page's events only while this thread is inside a Playwright call
    wait_until(lambda: page.wait_for_timeout(250) or len(drawn()) >= 2, timeout=120, interval=0,
               what="two polls of the chart with points")  # fmt: skip
    screenshot(page, "finetune-journey-02-training.png")
    wait_until(lambda: page.wait_for_timeout(250) or FineTuneJob.objects.get(pk=job.pk).status in TERMINAL,
               timeout=240, interval=0, what="the fine-tune to finish")  # fmt: skip
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    polls = drawn()
    assert polls[-1] > polls[0], f"the chart did not grow between polls: {polls}"

    result = page.locator("#result")
    expect(result).to_be_visible(timeout=15_000)
    expect(page.locator("[data-chart]").first.locator("canvas")).to_have_count(1)
    screenshot(page, "finetune-journey-03-succeeded.png")
    result.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("tiny v2")
    expect(page.get_by_role("link", name=str(version))).to_be_visible()
    expect(page.get_by_role("link", name=f"Fine-tune job {job.pk}")).to_be_visible()
    screenshot(page, "finetune-journey-04-model-version.png")
