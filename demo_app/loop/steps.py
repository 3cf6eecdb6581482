"""The loop's steps, each through the portal's own services (the same ones the forms and the API call).

Each step takes the acting user, logs what it did through ``log(step, message, progress)`` and returns what the next
step needs; a step that cannot go on raises ``JobFailed`` with the reason (the run ends failed, showing it).
"""

from django.core.exceptions import ValidationError

from datasets_app.models import Dataset, DatasetVersion, ErrorCase, VersionStatus
from datasets_app.models.cases import CaseStatus
from demo_app.catalog import INTENTS, PRODUCT
from demo_app.loop.config import JOB_DEADLINE_S, SPLIT, TARGET, DemoSpec, LoopPath
from demo_app.loop.jobs import job_wait
from evaluation_app.models import ComparisonReport, EvalRun, ReportStatus
from llmops.jobs import JobFailed, JobStatus, Reporter
from registry_app.models import ModelVersion, PromotionRequest, VersionSource
from training_app.models import FineTuneJob

EVAL_SUITES = ["task", "efficiency"]


def _messages(error: ValidationError) -> str:
    if hasattr(error, "message_dict"):
        return "; ".join(f"{field}: {m}" for field, msgs in error.message_dict.items() for m in msgs)
    return "; ".join(error.messages)


def seed(log) -> None:
    from demo_app.seed import demo_seed

    counts = demo_seed()
    log("seed", "demo workspace ready: " + ", ".join(f"{n} {what}" for what, n in counts.items()), 0.05)


def registered_base(spec: DemoSpec) -> ModelVersion | None:
    return (
        ModelVersion.objects.filter(model__name=spec.base, source=VersionSource.BASE)
        .select_related("model")
        .order_by("-number")
        .first()
    )


def base(*, user, spec: DemoSpec, log) -> ModelVersion:
    found = registered_base(spec)
    if found is None:
        raise JobFailed(f"no base model named {spec.base} is registered: run `python manage.py demo_models`")
    if spec.path.task_type != "classification":
        log("base", f"base {found}", 0.06)
        return found
    from demo_app.loop.router import router_base

    router, created = router_base(user=user, base=found, labels=list(INTENTS))
    what = "registered" if created else "found"
    log("base", f"{what} {router}: {found} with a classification head over the {len(INTENTS)} intents", 0.08)
    return router


def _case_tags(path: LoopPath) -> list[str]:
    """The tags only this path's approved cases carry: a recipe filters cases by tag and product, not by
    feature, and the chat path must leave the intent router's cases out."""
    link = ErrorCase.tags.through
    approved = link.objects.filter(errorcase__status=CaseStatus.APPROVED, errorcase__product=PRODUCT)
    mine = set(approved.filter(errorcase__feature=path.feature).values_list("tag__name", flat=True))
    others = set(approved.exclude(errorcase__feature=path.feature).values_list("tag__name", flat=True))
    return sorted(mine - others)


def recipe(path: LoopPath, languages: tuple[str, ...] = ()) -> dict:
    """The path's approved Aurora cases (by the tags only they carry), deduplicated (the recipe's default, exact
    and near) before a seeded stratified split: no test row is a copy of a train row."""
    tags = _case_tags(path)
    cases = {"products": [PRODUCT], "tags": tags}
    steps = {"split": dict(SPLIT), "filter": {"languages": list(languages)}}
    if path.task_type == "classification":
        steps["integrity"] = {"labels": list(INTENTS)}  # keeps the intent cases, drops any other
    elif not tags:  # intent labels would become chat answers
        raise JobFailed(f"the approved {PRODUCT} cases of the {path.feature} carry no tag of their own; "
                        "tag them (e.g. policy_fact) so that a dataset can select them")  # fmt: skip
    return {"sources": {"cases": cases}, "steps": steps}


def dataset_version(*, user, spec: DemoSpec, log, report: Reporter) -> DatasetVersion:
    from datasets_app.services.datasets import dataset_create, version_create

    path = spec.path
    dataset = Dataset.objects.filter(name__iexact=path.dataset).first()
    if dataset is None:
        dataset = dataset_create(user=user, name=path.dataset, task_type=path.task_type, product=PRODUCT,
                                 description=f"Approved {PRODUCT} error cases of the {path.feature}.")  # fmt: skip
    elif dataset.task_type != path.task_type:
        raise JobFailed(f"dataset {dataset.name} holds {dataset.task_type} rows, not {path.task_type}")
    try:
        version = version_create(user=user, dataset=dataset, recipe=recipe(spec.path, spec.languages))
    except ValidationError as e:
        raise JobFailed(f"the dataset version could not be built: {_messages(e)}") from e
    only = f" (in {', '.join(spec.languages)} only: see demo_app.loop.config)" if spec.languages else ""
    log("dataset", f"building {version} from the approved {PRODUCT} cases of the {path.feature}{only}", 0.1)
    job_wait(version.build, report, deadline_s=JOB_DEADLINE_S)
    version.refresh_from_db()
    if version.status != VersionStatus.READY:
        raise JobFailed(f"{version} is {version.status}: {version.error or version.build.error}"[:2000])
    counts = ", ".join(f"{n} {split}" for split, n in version.counts.items())
    log("dataset", f"{version} ready: {counts} (deduplicated before a seeded, stratified split)", 0.15)
    return version


def fine_tune(*, user, spec: DemoSpec, base: ModelVersion, version: DatasetVersion, steps: int | None, log,
              report: Reporter) -> FineTuneJob:  # fmt: skip
    from training_app.services import fine_tune_submit

    hyperparameters = dict(spec.training)
    if steps:
        hyperparameters["max_steps"] = steps
    try:
        job = fine_tune_submit(user=user, base=base, dataset_version=version, method="lora",
                               hyperparameters=hyperparameters)  # fmt: skip
    except ValidationError as e:
        raise JobFailed(f"the fine-tune could not be submitted: {_messages(e)}") from e
    log("fine-tune", f"fine-tune #{job.pk}: LoRA on {base} with {version}", 0.2)
    job = job_wait(job, report, deadline_s=JOB_DEADLINE_S)
    if job.status != JobStatus.SUCCEEDED or job.result_version_id is None:
        raise JobFailed(f"fine-tune #{job.pk} {job.status}: {job.error}"[:2000])
    log("fine-tune", f"fine-tune #{job.pk} succeeded: {job.progress_message}", 0.6)
    return FineTuneJob.objects.select_related("result_version__model", "base").get(pk=job.pk)


def comparison(*, user, job: FineTuneJob, version: DatasetVersion, log, report: Reporter) -> ComparisonReport:
    """The report the fine-tune's automatic evaluation made, else one of the loop's own (test split + the general
    pack); both runs are waited for, and the report is read once it is computed."""
    from evaluation_app.services.compare import comparison_compute, comparison_create
    from evaluation_app.services.submit import eval_run_submit

    found = ComparisonReport.objects.filter(source_job=job).order_by("-pk").first()
    if found is None:
        common = {"user": user, "dataset_version": version, "split": "test", "suites": EVAL_SUITES,
                  "general_pack": True, "source_job": job}  # fmt: skip
        try:
            baseline = eval_run_submit(model_version=job.base, name=f"demo: {job.base} (base)", **common)
            candidate = eval_run_submit(model_version=job.result_version, name=f"demo: fine-tune #{job.pk}",
                                        **common)  # fmt: skip
            found = comparison_create(user=user, baseline=baseline, candidate=candidate, source_job=job,
                                      name=f"demo: {job.result_version} vs {job.base}")  # fmt: skip
        except ValidationError as e:
            raise JobFailed(f"the evaluation could not be submitted: {_messages(e)}") from e
    log(
        "evaluate",
        f"scoring {job.base} and {job.result_version} on the test split and the general pack",
        0.65,
    )
    for i, run in enumerate((found.baseline, found.candidate)):
        run = job_wait(EvalRun.objects.get(pk=run.pk), report, deadline_s=JOB_DEADLINE_S)
        log("evaluate", f"{run.name or run}: {run.status}", 0.75 + 0.1 * i)
    found.refresh_from_db()
    if found.status == ReportStatus.WAITING:  # both runs ended where the report was not advanced
        found = comparison_compute(report_id=found.pk)
    if found.status != ReportStatus.READY:
        raise JobFailed(f"comparison report #{found.pk} is {found.status}: {found.reason}"[:2000])
    return found


def promote(*, user, job: FineTuneJob, report: ComparisonReport, log) -> PromotionRequest:
    from registry_app.services.promotion import promotion_request_create

    comment = f"Filed by the guided demo after comparison report #{report.pk}."
    try:
        request = promotion_request_create(
            user=user, version=job.result_version, target=TARGET, comment=comment
        )
    except ValidationError as e:
        raise JobFailed(f"the promotion request could not be filed: {_messages(e)}") from e
    log(
        "promotion",
        f"promotion request #{request.pk}: {job.result_version} to {TARGET}, for an architect",
        1.0,
    )
    return request
