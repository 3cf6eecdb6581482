"""Start and run the guided demo: a DemoRun row, executed by the Celery task ``demo.loop`` (the admins' button)
or in the calling process (``manage.py demo_loop``), in both cases through ``llmops.jobs.job_run``, so the row's
status, progress, heartbeat and error behave like every other job's."""

import uuid
from collections.abc import Callable

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from demo_app.loop import steps
from demo_app.loop.config import SPECS
from demo_app.loop.numbers import numbers_text, report_numbers
from demo_app.models import DemoRun
from llmops.bootstrap import DEMO_USERS
from llmops.jobs import Reporter, RunOutcome, job_enqueue, job_run
from llmops.roles import DATA_SCIENTIST, has_perm

# what the acting user files: a dataset version, a fine-tune, evaluation runs, a promotion request
NEEDED = ("datasets.build", "training.submit", "evaluation.submit", "registry.promote")
MAX_STEPS = 100_000


def demo_scientist():
    """The demo data scientist made by llmops.bootstrap, when there is one."""
    username = next((name for name, role in DEMO_USERS.items() if role == DATA_SCIENTIST), None)
    return get_user_model().objects.filter(username=username, is_active=True).first()


def _problems(model: str, steps_: int | None, run_as) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    spec = SPECS.get(model)
    if spec is None:
        problems["model"] = [f"must be one of {', '.join(SPECS)} (got {model!r})"]
    elif steps.registered_base(spec) is None:
        problems["model"] = [
            f"no base model named {spec.base} is registered: run `python manage.py demo_models`"
        ]
    if steps_ is not None and (isinstance(steps_, bool) or not isinstance(steps_, int)
                               or not 1 <= steps_ <= MAX_STEPS):  # fmt: skip
        problems["steps"] = [f"must be a whole number from 1 to {MAX_STEPS}, or empty for the default"]
    if run_as is None:
        problems["user"] = [
            "no user to act as: name one, or run `python manage.py demo_seed` for the demo users"
        ]
    elif missing := [p for p in NEEDED if not has_perm(run_as, p)]:
        problems["user"] = [
            f"{run_as.get_username()} lacks {', '.join(missing)} (give them the Data Scientist role)"
        ]
    return problems


@transaction.atomic
def demo_run_create(
    *, user, model: str, steps: int | None = None, run_as=None, inline: bool = False
) -> DemoRun:
    """Check everything at once (ValidationError keyed by field), then create the run: queued on the gpu queue on
    commit, or (``inline``) left for the caller to execute with ``demo_run_execute``."""
    run_as = run_as or demo_scientist() or user
    if problems := _problems(model, steps, run_as):
        raise ValidationError(problems)
    run = DemoRun.objects.create(model_key=model, steps=steps, run_as=run_as, created_by=user)
    if not inline:
        return job_enqueue(job=run)
    run.celery_task_id, run.queued_at = f"inline-{uuid.uuid4().hex}", timezone.now()
    run.save(update_fields=["celery_task_id", "queued_at"])
    return run


def demo_run_execute(
    *, run_id: int, task_id: str, hostname: str | None, echo: Callable[[str], None] | None = None
) -> RunOutcome:
    return job_run(model=DemoRun, job_id=run_id, task_id=task_id, hostname=hostname,
                   work=lambda job, report: _loop(job, report, echo))  # fmt: skip


class DemoLog:
    """Each step's line: kept in the row (the progress page reads it), shown as the job's progress message, and
    echoed to the command's output."""

    def __init__(self, run: DemoRun, report: Reporter, echo: Callable[[str], None] | None):
        self.run, self.report, self.echo, self.lines = run, report, echo, []

    def __call__(self, step: str, message: str, progress: float | None = None) -> None:
        self.lines.append(
            {"at": timezone.now().isoformat(timespec="seconds"), "step": step, "message": message}
        )
        DemoRun.objects.filter(pk=self.run.pk).update(log=self.lines)
        self.report(progress=progress, message=f"{step}: {message}")
        if self.echo:
            self.echo(f"[{step}] {message}")
        self.report.check()  # a cancel stops the run between steps


def _link(run: DemoRun, **objects) -> None:
    DemoRun.objects.filter(pk=run.pk).update(**objects)


def _loop(job: DemoRun, report: Reporter, echo) -> str:
    run = DemoRun.objects.select_related("run_as", "created_by").get(pk=job.pk)
    spec, user = SPECS[run.model_key], run.run_as or run.created_by
    log = DemoLog(run, report, echo)
    log("start", f"the loop on {spec.base} ({spec.path.task_type}), acting as {user.get_username()}", 0.01)
    steps.seed(log)
    base = steps.base(user=user, spec=spec, log=log)
    version = steps.dataset_version(user=user, spec=spec, log=log, report=report)
    _link(run, dataset_version=version)
    fine_tune = steps.fine_tune(user=user, spec=spec, base=base, version=version, steps=run.steps, log=log,
                                report=report)  # fmt: skip
    _link(run, fine_tune=fine_tune)
    comparison = steps.comparison(user=user, job=fine_tune, version=version, log=log, report=report)
    _link(run, report=comparison)
    numbers = report_numbers(comparison, version)
    DemoRun.objects.filter(pk=run.pk).update(summary=numbers)
    log("report", f"comparison report #{comparison.pk}: {numbers_text(numbers)}", 0.95)
    promotion = steps.promote(user=user, job=fine_tune, report=comparison, log=log)
    _link(run, promotion=promotion)
    return numbers_text(numbers)[:255]
