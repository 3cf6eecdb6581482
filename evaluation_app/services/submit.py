"""Submit an evaluation run: check the target, the example set, the suites, the rules, the judge and the generation
settings all at once (every problem keyed by its field), then create the run and queue it on commit.

Runs in the web process: nothing here imports torch. Rules, the judge and the generation settings are checked by
the engine's own plain-Python validators (workers.evaluate.rules, JudgeConfig, GenerateConfig).
"""

from django.core.exceptions import ValidationError
from django.db import transaction

from datasets_app.models import DatasetVersion, VersionStatus
from evaluation_app.models import EvalRun, Lang, Suite, Trigger
from evaluation_app.services.examples import regression_cases
from llmops.jobs import job_enqueue
from registry_app.models import ModelTask, ModelVersion

JUDGE_SUITES = {Suite.JUDGE, Suite.PAIRWISE, Suite.RAG}
JUDGE_SETTINGS = (
    "timeout_s",
    "concurrency",
    "price_input_per_1k",
    "price_output_per_1k",
)  # JudgeConfig fields
CAUSAL_ONLY = {Suite.RULES, Suite.JUDGE, Suite.PAIRWISE, Suite.RAG}


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
    """The judge endpoint, checked by the engine's own JudgeConfig (plain Python) plus the rubric names."""
    from workers.evaluate.judge import RUBRICS, JudgeConfig
    from workers.train.config import ConfigError

    needs = [s for s in suites if s in JUDGE_SUITES]
    if not judge.get("base_url") and not judge.get("model"):
        if needs:
            problems.setdefault("judge", []).append(f"{', '.join(needs)} need a judge endpoint and model")
        return {}
    settings = {k: judge[k] for k in JUDGE_SETTINGS if judge.get(k) not in (None, "")}
    errors = []
    try:
        JudgeConfig(
            base_url=str(judge.get("base_url", "")), model=str(judge.get("model", "")), **settings
        ).validate()
    except ConfigError as e:
        errors += [f"{name}: {msg}" for name, msgs in e.problems.items() for msg in msgs]
    rubrics = judge.get("rubrics") or ["correctness"]
    if not isinstance(rubrics, list) or any(r not in RUBRICS for r in rubrics):
        errors.append(f"rubrics must be chosen from {', '.join(RUBRICS)}")
    if errors:
        problems.setdefault("judge", []).extend(errors)
        return {}
    env = {"api_key_env": judge["api_key_env"]} if judge.get("api_key_env") else {}
    return {"base_url": judge["base_url"].rstrip("/"), "model": judge["model"].strip(), "rubrics": rubrics,
            **settings, **env}  # fmt: skip


def _generation(generation: dict, problems: dict) -> dict:
    """Checked by the engine's own GenerateConfig (plain Python): every problem named by its setting."""
    from workers.generate.config import GenerateConfig
    from workers.train.config import ConfigError

    try:
        GenerateConfig.from_dict(generation)
    except ConfigError as e:
        problems.setdefault("generation", []).extend(
            f"{name}: {msg}" for name, msgs in e.problems.items() for msg in msgs
        )
    return dict(generation) if isinstance(generation, dict) else {}


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
