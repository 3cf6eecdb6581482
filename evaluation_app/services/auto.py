"""Evaluate a fine-tune as soon as it succeeds: its new version and its base, on the EVAL_AUTO_SPLIT split of the
fine-tune's dataset version, and a comparison report that is computed when both runs have ended.

A base scored before on the same examples with the same settings is reused, not run again. Study trials are not
evaluated one by one (a study's best trial can be evaluated from its page). The production alias joins the
comparison once the registry has aliases.
"""

import logging

from django.conf import settings
from django.core.exceptions import ValidationError

from evaluation_app.models import ComparisonReport, EvalRun, Trigger
from evaluation_app.services.compare import comparison_create
from evaluation_app.services.submit import eval_run_submit
from llmops.jobs import JobStatus
from training_app.models import FineTuneJob

log = logging.getLogger(__name__)
REUSABLE = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED)


def fine_tune_evaluate(*, job_id: int) -> ComparisonReport | None:
    split, suites = settings.EVAL_AUTO_SPLIT, list(settings.EVAL_AUTO_SUITES)
    job = FineTuneJob.objects.select_related("base__model", "dataset_version", "result_version").get(
        pk=job_id
    )
    if not split or job.status != JobStatus.SUCCEEDED or job.result_version is None or job.study_id:
        return None
    version = job.dataset_version
    if not (version.counts or {}).get(split):
        log.info("fine-tune %s: its dataset version has no %s split; not evaluated", job_id, split)
        return None
    generation = {"max_new_tokens": settings.EVAL_AUTO_MAX_NEW_TOKENS}
    common = {"dataset_version": version, "split": split, "suites": suites, "trigger": Trigger.AUTO,
              "source_job": job, "user": job.created_by, "generation": generation}  # fmt: skip
    try:
        baseline = reusable_run(job.base, version, split, suites, generation) or eval_run_submit(
            model_version=job.base, name=f"{job.base} (base of fine-tune #{job.pk})", **common
        )
        candidate = eval_run_submit(model_version=job.result_version, name=f"fine-tune #{job.pk}", **common)
        return comparison_create(
            user=job.created_by, baseline=baseline, candidate=candidate, trigger=Trigger.AUTO, source_job=job,
            name=f"fine-tune #{job.pk}: {job.result_version} vs {job.base}",
        )  # fmt: skip
    except ValidationError as e:
        log.warning("fine-tune %s could not be evaluated automatically: %s", job_id, "; ".join(e.messages))
        return None


def reusable_run(model_version, version, split: str, suites: list[str], generation: dict) -> EvalRun | None:
    return (
        EvalRun.objects.filter(
            model_version=model_version,
            dataset_version=version,
            split=split,
            suites=suites,
            status__in=REUSABLE,
            system_prompt="",
            few_shot=[],
            limit__isnull=True,
            generation=generation,
            rules=version.dataset.eval_rules or [],
        )  # fmt: skip
        .order_by("-created_at")
        .first()
    )
