"""`python manage.py demo_loop [--model minilm|smollm2|tiny-bert|tiny] [--steps N] [--user NAME]`: the guided demo.

Builds a dataset version from the approved Aurora cases of the model's path, fine-tunes it with LoRA, evaluates the
candidate against the base, prints the comparison report's URL with the fixed cases and the forgetting flag, and
files a promotion request to staging. Runs in this process (no worker needed); the run is recorded as a DemoRun,
whose page shows the same as the admins' button does.
"""

import time

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from demo_app.loop import SPECS, demo_run_create, demo_run_execute, demo_scientist
from demo_app.models import DemoRun


class Command(BaseCommand):
    help = "Run the whole loop (dataset, LoRA fine-tune, evaluation, promotion request) on a demo base."

    def add_arguments(self, parser):
        parser.add_argument("--model", default="minilm", choices=sorted(SPECS), help="the demo base (minilm)")
        parser.add_argument(
            "--steps", type=int, default=None, help="optimizer steps (default: the tuned epochs)"
        )
        parser.add_argument(
            "--user", default="", help="who files everything (default: the demo data scientist)"
        )
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000", help="the portal's address, for the links"
        )

    def handle(self, *args, model: str, steps: int | None, user: str, url: str, **options):
        run_as = None
        if not user and demo_scientist() is None:  # a fresh database: the seed makes the demo users
            from demo_app.loop.steps import seed

            seed(lambda step, message, progress=None: self.stdout.write(f"[{step}] {message}"))
        if user:
            run_as = get_user_model().objects.filter(username=user).first()
            if run_as is None:
                raise CommandError(f"--user: no user named {user!r}")
        try:
            run = demo_run_create(user=run_as, model=model, steps=steps, run_as=run_as, inline=True)
        except ValidationError as e:
            raise CommandError(
                "; ".join(f"--{k}: {m}" for k, msgs in e.message_dict.items() for m in msgs)
            ) from e
        started = time.monotonic()
        outcome = demo_run_execute(
            run_id=run.pk, task_id=run.celery_task_id, hostname=None, echo=self.stdout.write
        )
        run = DemoRun.objects.select_related("report", "promotion", "fine_tune").get(pk=run.pk)
        self.print_result(run, url.rstrip("/"), time.monotonic() - started)
        if outcome.status != "succeeded":
            raise CommandError(f"the demo run {outcome.status}: {run.error or outcome.detail}"[:4000])

    def print_result(self, run: DemoRun, url: str, seconds: float) -> None:
        out = self.stdout.write
        out(
            f"\nDemo run #{run.pk} {run.status} in {seconds:.0f} s: {url}{reverse('demo:run', args=[run.pk])}"
        )
        if run.report_id:
            out(f"Comparison report: {url}{reverse('evaluation:report', args=[run.report_id])}")
        numbers = run.summary or {}
        if numbers:
            pct = f" ({numbers['fixed_pct']:g}%)" if numbers.get("fixed_pct") is not None else ""
            out(f"Held-out error cases of the trained categories: {numbers['errors']}; fixed: {numbers['fixed']}"
                f"{pct}; newly broken: {numbers['newly_broken']}")  # fmt: skip
            out(
                f"Test-split accuracy: base {numbers['baseline_accuracy']}%, fine-tuned {numbers['candidate_accuracy']}%"
            )
            if numbers["forgetting_checked"]:
                flag = "FLAGGED" if numbers["forgetting_flagged"] else "not flagged"
                out(f"Forgetting on the general pack ({numbers['general_examples']} examples): {flag} "
                    f"(base {numbers['general_baseline']:.3f}, fine-tuned {numbers['general_candidate']:.3f})")  # fmt: skip
            else:
                out("Forgetting: not checked (no general pack for this task)")
            for case in numbers.get("fixed_examples", []):
                out(f"  fixed: {case['input']!r}: {case['before']!r} -> {case['after']!r}")
        if run.promotion_id:
            out(f"Promotion request: {url}{reverse('registry:promotion', args=[run.promotion_id])}")
