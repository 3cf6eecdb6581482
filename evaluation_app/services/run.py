"""Execute an evaluation run on a worker: examples → predictions → scores → judge → leakage → results.

Reads top to bottom: load the examples and the model once; predict the task examples (and their noised copies
for the robustness suite, and the general pack for the forgetting check); score each example; ask the judge;
check leakage against the model's training data; write every result and the summary in one transaction (a
re-delivered run replaces what an earlier attempt wrote). When the run has ended, waiting comparison reports that
use it are computed.
"""

import logging
import os
import random
import time

from django.conf import settings
from django.db import transaction

from datasets_app.pipeline.augment import add_noise
from evaluation_app.models import EvalResult, EvalRun, Pack, Suite
from evaluation_app.services import examples as sets
from evaluation_app.services import scoring
from evaluation_app.services.compare import reports_advance
from evaluation_app.services.judging import judge_rows
from evaluation_app.services.leakage import run_leakage
from evaluation_app.services.target import Target
from llmops.jobs import JobCancelled, JobFailed, Reporter, RunOutcome, job_run

log = logging.getLogger(__name__)
SALIENCY_EXAMPLES = 50  # per-token saliency costs a backward pass: the first N examples get it


def eval_run_execute(*, run_id: int, task_id: str, hostname: str | None) -> RunOutcome:
    outcome = job_run(model=EvalRun, job_id=run_id, task_id=task_id, hostname=hostname, work=_evaluate)
    try:  # the run's end is recorded; reports waiting for it are computed (or fail with it)
        reports_advance(run_id=run_id)
    except Exception:
        log.exception("comparison reports waiting for evaluation %s could not be computed", run_id)
    return outcome


class Progress:
    """Maps each phase's (done, total) onto the job's 0..1 progress; answers "stop" when cancelled."""

    def __init__(self, report: Reporter, units: int):
        self.report, self.units, self.done = report, max(units, 1), 0

    def phase(self, name: str, size: int):
        start = self.done
        self.done += size

        def callback(done: int, total: int) -> str | None:
            share = (start + size * done / max(total, 1)) / self.units
            return self.report(progress=share, message=f"{name}: {done}/{total}")

        return callback


def _evaluate(job: EvalRun, report: Reporter) -> str:
    run = EvalRun.objects.select_related(
        "model_version__model", "model_version__base", "dataset_version__dataset"
    ).get(pk=job.pk)
    task = run.model_version.model.task
    examples = _task_examples(run, task)
    if not examples:
        raise JobFailed(f"no examples to evaluate in {run.source_label}")
    general = (sets.general_pack() if task != "classification" else []) if run.general_pack else []
    general += sets.general_dataset_examples(task=task) if run.general_pack else []
    robust = Suite.ROBUSTNESS in run.suites
    progress = Progress(report, len(examples) * (2 if robust else 1) + len(general))
    report(progress=0.0, message="loading the model")
    target = Target(run)
    try:
        return _score_all(run, target, examples, general, progress, report)
    finally:
        target.close()


def _task_examples(run: EvalRun, task: str) -> list[sets.EvalExample]:
    if run.dataset_version_id:
        return sets.version_examples(run.dataset_version, run.split, task=task, limit=run.limit)
    return sets.regression_examples(run.product, task=task, limit=run.limit)


def _predict(target: Target, examples, callback) -> list:
    """Predictions, stopping between batches once the run is cancelled (classifiers and generators alike)."""

    def guarded(done: int, total: int) -> None:
        if callback(done, total) == "stop":
            raise JobCancelled("cancel requested")

    return target.predict(examples, guarded)


def _score_all(run, target, examples, general, progress, report) -> str:
    classifier, threshold = target.classifier, run.pass_threshold
    lang = run.lang if run.lang != "auto" else _lang(examples)
    started = time.perf_counter()
    preds = _predict(target, examples, progress.phase("examples", len(examples)))
    wall = time.perf_counter() - started
    rows = [scoring.example_row(e, p, classifier=classifier, lang=lang, rules=run.rules if Suite.RULES in run.suites else [],
                                threshold=threshold) for e, p in zip(examples, preds, strict=True)]  # fmt: skip
    for example, row in zip(examples, rows, strict=True):
        row["prompt"] = {"text": example.text} if classifier else target.messages(example)
    metrics = {}
    if Suite.JUDGE in run.suites or Suite.PAIRWISE in run.suites or Suite.RAG in run.suites:
        report(message="asking the judge")
        metrics.update(judge_rows(run, target, examples, rows, threshold, _api_key(run)))
    metrics["task"] = scoring.task_metrics(
        examples, rows, classifier=classifier, lang=lang, labels=_labels(target, examples)
    )
    if not classifier and Suite.TASK in run.suites:
        metrics["task"]["perplexity"] = _perplexity(target, examples)
    if Suite.RULES in run.suites and run.rules:
        from workers.evaluate.rules import rules_summary

        summary = rules_summary([r["rules"] for r in rows])
        metrics["rules"] = {"per_rule": summary["rules"], "all_pass_rate": summary["all_passed_rate"],
                            "all_passed": summary["all_passed"], "examples": summary["examples"]}  # fmt: skip
    if Suite.ROBUSTNESS in run.suites:
        metrics["robustness"] = _robustness(run, target, examples, rows, lang, progress)
    if Suite.SALIENCY in run.suites and classifier:
        report(message="saliency")
        for example, row in zip(examples[:SALIENCY_EXAMPLES], rows, strict=False):
            row["saliency"] = target.saliency(example)
    metrics["efficiency"] = scoring.efficiency(preds, target.resources(), wall)
    general_rows = []
    if general:
        general_preds = _predict(target, general, progress.phase("general pack", len(general)))
        general_rows = [scoring.pack_row(e, p, classifier=classifier, lang=lang, threshold=threshold)
                        for e, p in zip(general, general_preds, strict=True)]  # fmt: skip
        metrics["general"] = scoring.general_metrics(general, general_rows)
        for example, row in zip(general, general_rows, strict=True):
            row["prompt"] = {"text": example.text} if classifier else target.messages(example)
    report(message="checking leakage against the training data")
    leakage, leaked = run_leakage(run, examples)
    metrics["judge_errors"] = sum(1 for r in rows if r.get("judge_error"))
    _save(run, examples, rows, leaked, general, general_rows, metrics, leakage)
    correct = metrics["task"].get("accuracy")
    summary = f"{len(examples)} examples" + (f", accuracy {correct:.3f}" if correct is not None else "")
    return summary + (f"; {leakage['exact'] + leakage['near']} leaked" if leakage.get("checked") else "")


def _lang(examples) -> str:
    from workers.evaluate.metrics import detect_lang

    return detect_lang([e.reference for e in examples])


def _labels(target: Target, examples) -> list[str]:
    if not target.classifier:
        return []
    names = list((getattr(target.model.config, "id2label", None) or {}).values())
    return names + sorted({e.reference for e in examples} - set(names))


def _perplexity(target: Target, examples) -> float | None:
    from workers.evaluate.metrics import perplexity

    parts = target.reference_nll(examples)
    return perplexity([nll for nll, _ in parts], [n for _, n in parts])


def _robustness(run, target, examples, rows, lang, progress) -> dict:
    """The same examples with ~EVAL_NOISE_RATE of their characters inserted, deleted or swapped."""
    noisy = []
    for example in examples:
        rng = random.Random(f"{run.pk}:{example.key}")
        copy = sets.EvalExample(**{**example.__dict__})
        if target.classifier:
            copy.text = add_noise(example.text, settings.EVAL_NOISE_RATE, rng)
        else:
            copy.messages = [
                {**m, "content": add_noise(m["content"], settings.EVAL_NOISE_RATE, rng)}
                if m["role"] == "user"
                else m
                for m in example.messages
            ]
        noisy.append(copy)
    preds = _predict(target, noisy, progress.phase("noised examples", len(noisy)))
    for example, row, pred in zip(examples, rows, preds, strict=True):
        row["noisy_prediction"] = pred.text
        row["noisy_score"] = scoring.noisy_score(example, pred, classifier=target.classifier, lang=lang)
    clean = sum(r["score"] for r in rows) / len(rows)
    dirty = sum(r["noisy_score"] for r in rows) / len(rows)
    return {"clean": clean, "noisy": dirty, "drop": clean - dirty, "noise_rate": settings.EVAL_NOISE_RATE}


def _api_key(run: EvalRun) -> str:
    name = (run.judge or {}).get("api_key_env") or ""
    return os.environ.get(name, "") if name else ""


@transaction.atomic
def _save(run, examples, rows, leaked, general, general_rows, metrics, leakage) -> None:
    EvalResult.objects.filter(run=run).delete()
    results = [_result(run, Pack.TASK, e, r, leak) for e, r, leak in zip(examples, rows, leaked, strict=True)]
    results += [_result(run, Pack.GENERAL, e, r, "") for e, r in zip(general, general_rows, strict=True)]
    EvalResult.objects.bulk_create(results, batch_size=500)
    EvalRun.objects.filter(pk=run.pk).update(metrics=metrics, leakage=leakage, example_count=len(examples))


def _result(run, pack: str, example: sets.EvalExample, row: dict, leaked: str) -> EvalResult:
    prompt = row.get("prompt") or example.messages or {"text": example.text}
    return EvalResult(
        run=run, pack=pack, position=example.position, key=example.key, example_id=example.example_id,
        case_id=example.case_id, category=example.category[:100], tags=example.tags, prompt=prompt,
        reference=example.reference, prediction=row["prediction"], noisy_prediction=row.get("noisy_prediction", ""),
        score=row.get("score"), noisy_score=row.get("noisy_score"), correct=row.get("correct"),
        scores=row.get("scores", {}), rules=row.get("rules", []), judge=row.get("judge", {}),
        judge_error=bool(row.get("judge_error")), probs=row.get("probs") or {}, saliency=row.get("saliency", []),
        latency_ms=row.get("latency_ms", 0.0), prompt_tokens=row.get("prompt_tokens", 0),
        new_tokens=row.get("new_tokens", 0), leaked=leaked,
    )  # fmt: skip
