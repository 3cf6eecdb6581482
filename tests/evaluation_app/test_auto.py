"""A fine-tune that succeeds is evaluated against its base on its dataset's test split, and the report is computed
when both runs have ended; the base's run is reused by the next fine-tune of the same data."""

import pytest

from evaluation_app.models import ComparisonReport, EvalRun, ReportStatus, Trigger
from evaluation_app.services.auto import fine_tune_evaluate
from evaluation_app.services.run import eval_run_execute
from tests.training_app.conftest import FAST, ready_version
from training_app.services import fine_tune_run, fine_tune_submit


@pytest.fixture(autouse=True)
def _short_answers(settings, artifacts):
    settings.EVAL_AUTO_SUITES = ["task", "efficiency"]
    settings.EVAL_AUTO_MAX_NEW_TOKENS = 8


def fine_tune(scientist, base, version):
    job = fine_tune_submit(
        user=scientist, base=base, dataset_version=version, method="lora", hyperparameters=FAST
    )
    assert fine_tune_run(job_id=job.pk, task_id=job.celery_task_id, hostname="test").status == "succeeded"
    job.refresh_from_db()
    return job


def test_a_succeeded_fine_tune_is_compared_with_its_base_on_the_test_split(scientist, base):
    version = ready_version(scientist)
    job = fine_tune(scientist, base, version)
    report = ComparisonReport.objects.get(source_job=job)
    assert report.trigger == Trigger.AUTO and report.status == ReportStatus.WAITING
    assert report.baseline.model_version == base and report.candidate.model_version == job.result_version
    assert {report.baseline.split, report.candidate.split} == {"test"}
    for run in (report.baseline, report.candidate):
        eval_run_execute(run_id=run.pk, task_id=run.celery_task_id, hostname="test")
    report.refresh_from_db()
    assert report.status == ReportStatus.READY, report.reason
    assert report.summary["examples"] == version.counts["test"] == report.items.filter(pack="task").count()
    assert report.summary["forgetting"]["checked"] and report.summary["leakage"]["checked"]
    assert report.summary["leakage"]["count"] == 0  # the candidate trained on the train split only

    again = fine_tune_evaluate(job_id=job.pk)  # as the next fine-tune of the same data would
    assert again.baseline_id == report.baseline_id  # the base's succeeded run is reused
    assert EvalRun.objects.filter(model_version=base).count() == 1


def test_it_can_be_turned_off(scientist, base, settings):
    settings.EVAL_AUTO_SPLIT = ""
    fine_tune(scientist, base, ready_version(scientist))
    assert not EvalRun.objects.exists() and not ComparisonReport.objects.exists()
