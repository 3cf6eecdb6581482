"""Submit an evaluation run: check the target, the example set, the suites, the rules, the judge and the generation
settings all at once (every problem keyed by its field), then create the run and queue it on commit.

Runs the web process: nothing here imports torch. Rules are checked by ``workers.evaluate.rules`` (plain Python),
the generation settings by the small checks below (the worker's GenerateConfig checks them again).
"""

from urllib.parse import urlparse

from django.core.exceptions import ValidationError
from django.db import transaction

from datasets_app.models import DatasetVersion, VersionStatus
from evaluation_app.models import EvalRun, Lang, Suite, Trigger
from evaluation_app.services.examples import regression_cases
from llmops.jobs import job_enqueue
from registry_app.models import ModelTask, ModelVersion

RUBRICS = ("correctness", "helpfulness", "safety")
JUDGE_SUITES = {Suite.JUDGE, Suite.PAIRWISE, Suite.RAG}
CAUSAL_ONLY = {Suite.RULES, Suite.JUDGE, Suite.PAIRWISE, Suite.RAG}
GENERATION_KEYS = {"max_new_tokens", "temperature", "top_p", "do_sample", "seed", "stop"}


def eval_run_submit(
    *,
    user,
    model_version: ModelVersion,
    dataset_version: DatasetVersion | None = None,
    split: str = "test",
    product: str = "",
    suites=("task",),
    rules=(),
    judge: dict | None = None,
    generation: dict | None = None,
    system_prompt: str = "",
    few_shot=(),
    general_pack: bool = True,
    pass_threshold: float = 0.5,
    limit: int | None = None,
    lang: str = "auto",
    name: str = "",
    trigger: str = Trigger.MANUAL,
    source_job=None,
) -> EvalRun:
    problems: dict[str, list[str]] = {}
    task = model_version.model.task
    suites = _suites(list(suites or []), task, problems)
    _example_set(dataset_version, split, product, task, problems)
    declared = list(dataset_version.dataset.eval_rules or []) if dataset_version is not None else []
    rules = _rules([*declared, *(rules or [])], problems) if declared or rules else []
    if rules and Suite.RULES not in suites and task != ModelTask.CLASSIFICATION:
        suites.insert(1, Suite.RULES)  # declared rules are applied, whether or not the box was ticked
    judge = _judge(judge or {}, suites, problems)
    generation = _generation(generation or {}, problems)
    few_shot = _few_shot(few_shot, problems)
    if not isinstance(pass_threshold, int | float) or not 0 <= pass_threshold <= 1:
        problems.setdefault("pass_threshold", []).append("must be a number between 0 and 1")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        problems.setdefault("limit", []).append("must be a whole number of at least 1, or empty")
    if lang not in Lang.values:
        problems.setdefault("lang", []).append(f"must be one of {', '.join(Lang.values)}")
    if problems:
        raise ValidationError(problems)
    with transaction.atomic():
        run = EvalRun.objects.create(
            name=name, model_version=model_version, dataset_version=dataset_version,
            split=split if dataset_version else "", product=product if not dataset_version else "",
            suites=suites, rules=rules, judge=judge, generation=generation, system_prompt=system_prompt,
            few_shot=few_shot, general_pack=general_pack, pass_threshold=float(pass_threshold), limit=limit, lang=lang,
            trigger=trigger, source_job=source_job, created_by=user,
        )  # fmt: skip
        job_enqueue(job=run)
    return run


def _suites(suites: list, task: str, problems: dict) -> list[str]:
    known = set(Suite.values)
    unknown = [s for s in suites if s not in known]
    if unknown:
        problems.setdefault("suites", []).append(f"unknown suite(s): {', '.join(map(str, unknown))}")
    chosen = [s for s in Suite.values if s in suites]
    if Suite.TASK not in chosen:
        chosen.insert(0, Suite.TASK)  # the task metrics are what every other suite is read against
    if task == ModelTask.CLASSIFICATION:
        wrong = [s for s in chosen if s in CAUSAL_ONLY]
        if wrong:
            problems.setdefault("suites", []).append(
                f"{', '.join(wrong)} need a generative model; this one is a classifier"
            )
    elif Suite.SALIENCY in chosen:
        problems.setdefault("suites", []).append("saliency is for classifiers; this model generates text")
    return chosen


def _example_set(version, split: str, product: str, task: str, problems: dict) -> None:
    if version is None:
        if not regression_cases(product).exists():
            where = f"product {product!r}" if product else "any product"
            problems.setdefault("product", []).append(
                f"the regression suite of {where} is empty: no approved error case with an expected answer"
            )
        return
    if version.status != VersionStatus.READY:
        problems.setdefault("dataset_version", []).append(f"{version} is {version.status}, not ready")
        return
    if not (version.counts or {}).get(split):
        problems.setdefault("split", []).append(
            f"the {split} split of {version} is empty: nothing to evaluate"
        )
    is_classifier = task == ModelTask.CLASSIFICATION
    if is_classifier != (version.dataset.task_type == "classification"):
        kind = "a classifier" if is_classifier else "a generative model"
        problems.setdefault("dataset_version", []).append(
            f"{version} is a {version.dataset.task_type} dataset; the model is {kind}"
        )


def _rules(rules: list, problems: dict) -> list[dict]:
    from workers.evaluate.rules import RuleError, validate_rules

    try:
        return validate_rules(rules)
    except RuleError as e:
        problems.setdefault("rules", []).extend(e.problems)
        return []


def _judge(judge: dict, suites: list[str], problems: dict) -> dict:
    needs = [s for s in suites if s in JUDGE_SUITES]
    if not judge.get("base_url") and not judge.get("model"):
        if needs:
            problems.setdefault("judge", []).append(f"{', '.join(needs)} need a judge endpoint and model")
        return {}
    errors = []
    url = urlparse(str(judge.get("base_url", "")))
    if url.scheme not in ("http", "https") or not url.netloc:
        errors.append("base_url must be an http(s) URL of an OpenAI-compatible API, e.g. http://host:8000/v1")
    if not str(judge.get("model", "")).strip():
        errors.append("model is required")
    rubrics = judge.get("rubrics") or ["correctness"]
    if not isinstance(rubrics, list) or any(r not in RUBRICS for r in rubrics):
        errors.append(f"rubrics must be chosen from {', '.join(RUBRICS)}")
    timeout = judge.get("timeout_s", 30)
    if not isinstance(timeout, int | float) or timeout <= 0:
        errors.append("timeout_s must be a positive number of seconds")
    if errors:
        problems.setdefault("judge", []).extend(errors)
        return {}
    keys = ("api_key_env", "price_input_per_1k", "price_output_per_1k", "concurrency")
    return {"base_url": judge["base_url"].rstrip("/"), "model": judge["model"].strip(), "rubrics": rubrics,
            "timeout_s": float(timeout), **{k: judge[k] for k in keys if judge.get(k) not in (None, "")}}  # fmt: skip


def _generation(generation: dict, problems: dict) -> dict:
    errors = [f"unknown setting {k!r}" for k in generation if k not in GENERATION_KEYS]
    checks = {
        "max_new_tokens": lambda v: isinstance(v, int) and 1 <= v <= 4096,
        "temperature": lambda v: isinstance(v, int | float) and v >= 0,
        "top_p": lambda v: isinstance(v, int | float) and 0 < v <= 1,
        "do_sample": lambda v: isinstance(v, bool),
        "seed": lambda v: isinstance(v, int),
        "stop": lambda v: isinstance(v, list) and all(isinstance(s, str) and s for s in v),
    }
    hints = {"max_new_tokens": "a whole number 1..4096", "temperature": "a number >= 0",
             "top_p": "a number in (0, 1]", "do_sample": "true or false", "seed": "a whole number",
             "stop": "a list of non-empty strings"}  # fmt: skip
    errors += [
        f"{k} must be {hints[k]}"
        for k, check in checks.items()
        if k in generation and not check(generation[k])
    ]
    if errors:
        problems.setdefault("generation", []).extend(errors)
    return {k: v for k, v in generation.items() if k in GENERATION_KEYS}


def _few_shot(few_shot, problems: dict) -> list[dict]:
    shots = list(few_shot or [])
    for i, shot in enumerate(shots, start=1):
        if not (
            isinstance(shot, dict)
            and isinstance(shot.get("user"), str)
            and isinstance(shot.get("assistant"), str)
        ):
            problems.setdefault("few_shot", []).append(
                f'example {i} must be {{"user": text, "assistant": text}}'
            )
    return shots
