"""A data scientist compresses from the browser: opens the INT8 form from the Compression page, picks the tiny
base and an evaluation dataset version, submits; a real gpu-queue worker quantises the model, registers the
result and benchmarks it beside its source (one round, two timed repeats: speed is measured in bench/, not here);
the polled job page then shows the comparison table with both sizes, the result's the smaller."""

from playwright.sync_api import expect

from llmops.jobs import TERMINAL, JobStatus
from tests.conftest import wait_until
from tests.e2e.conftest import login, screenshot
from tests.training_app.conftest import ready_version
from training_app.models import CompressionJob, VersionBenchmark

BENCH_ENV = {"COMPRESSION_BENCH_ROUNDS": 1, "COMPRESSION_BENCH_REPEATS": 2}


def test_an_int8_job_submitted_from_the_form_runs_and_shows_source_and_result_sizes(
    page, live_server, world, base, start_worker, settings, tmp_path
):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.COMPRESSION_BENCH_ROUNDS, settings.COMPRESSION_BENCH_REPEATS = 1, 2
    version = ready_version(world.users["Data Scientist"], cases=24)
    assert version.counts.get("test"), version.counts

    login(page, live_server, "scientist")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Compression").click()
    page.locator("#new-compression").get_by_role("link", name="INT8 dynamic (CPU)").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New compression: INT8 dynamic (CPU)")
    expect(page.locator('[name="sparsity"]')).to_have_count(0)
    page.get_by_label("Source version").select_option(str(base.pk))
    page.get_by_label("Evaluation dataset version").select_option(str(version.pk))
    page.get_by_label("Evaluation split").select_option("test")
    screenshot(page, "compression-01-form.png")
    page.get_by_role("button", name="Submit compression").click()

    job = CompressionJob.objects.get()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Compression job {job.pk}")
    assert job.method == "int8_dynamic" and job.eval_dataset_version == version
    start_worker(queues="gpu", ARTIFACT_ROOT=settings.ARTIFACT_ROOT, **BENCH_ENV)
    wait_until(lambda: page.wait_for_timeout(250) or CompressionJob.objects.get(pk=job.pk).status in TERMINAL,
               timeout=300, interval=0, what="the compression to finish")  # fmt: skip
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error

    table = page.locator("#benchmark-table")
    expect(table).to_be_visible(timeout=15_000)  # the next poll brings it
    source = table.locator('tr[data-role="source"] [data-size-bytes]')
    result = table.locator('tr[data-role="compressed"] [data-size-bytes]')
    expect(source).to_have_count(1)
    expect(result).to_have_count(1)
    expect(table.locator('tr[data-role="compressed"] th')).to_have_text("INT8 dynamic (CPU)")
    sizes = int(source.get_attribute("data-size-bytes")), int(result.get_attribute("data-size-bytes"))
    assert 0 < sizes[1] < sizes[0], sizes
    expected = {b.role: b.size_bytes for b in VersionBenchmark.objects.filter(job=job)}
    assert sizes == (expected["source"], expected["compressed"])
    expect(page.locator("#ratios [data-size-ratio]")).to_contain_text("×")
    expect(page.locator("#result")).to_contain_text("tiny v2")
    screenshot(page, "compression-02-result.png")
