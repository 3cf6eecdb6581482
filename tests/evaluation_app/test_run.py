"""Evaluation runs on the tiny model: in-process through the job lifecycle (as a worker runs them), and once through
a real Celery worker; a judge that is a real HTTP server on loopback."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from datasets_app.models import CaseStatus, ErrorCase
from evaluation_app.models import EvalResult, EvalRun, Pack
from evaluation_app.services.run import eval_run_execute
from evaluation_app.services.submit import eval_run_submit
from llmops.jobs import JobStatus
from registry_app.models import VersionFormat, VersionSource
from registry_app.services import base_model_register, derived_version_register
from tests.conftest import wait_until
from tests.datasets_app.test_build import approved_case
from tests.training_app.conftest import ready_version
from tests.workers.test_judge import JudgeServer

SHORT = {"max_new_tokens": 6}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _artifacts(artifacts):
    return artifacts


def execute(run: EvalRun) -> EvalRun:
    """What the worker's task does, in this process."""
    run.refresh_from_db()
    eval_run_execute(run_id=run.pk, task_id=run.celery_task_id, hostname="test")
    run.refresh_from_db()
    return run


def test_it_scores_every_test_example_with_task_rules_robustness_efficiency_and_the_general_pack(
    scientist, base
):
    version = ready_version(scientist)
    run = eval_run_submit(user=scientist, model_version=base, dataset_version=version, generation=SHORT,
                          suites=["task", "rules", "robustness", "efficiency"],
                          rules=[{"kind": "length", "max_chars": 5000}, {"kind": "json_valid"}])  # fmt: skip
    run = execute(run)
    assert run.status == JobStatus.SUCCEEDED, run.error
    task = list(run.results.filter(pack=Pack.TASK))
    assert len(task) == version.counts["test"] == run.example_count
    assert all(r.prediction is not None and r.latency_ms > 0 and r.case_id for r in task)
    assert all(len(r.rules) == 2 and r.rules[0]["passed"] and not r.rules[1]["passed"] for r in task)
    assert all(r.correct is False for r in task)  # json_valid fails on the tiny model's babble
    assert run.metrics["rules"]["per_rule"][0]["pass_rate"] == 1.0
    assert {"bleu", "chrf", "rougeL", "exact_match", "perplexity"} <= set(run.metrics["task"])
    assert run.metrics["task"]["perplexity"] > 1
    assert all(r.noisy_prediction is not None and r.noisy_score is not None for r in task)
    assert set(run.metrics["robustness"]) >= {"clean", "noisy", "drop"}
    eff = run.metrics["efficiency"]
    assert (
        eff["latency_p95_ms"] >= eff["latency_p50_ms"] > 0
        and eff["parameters"] > 0
        and eff["model_size_bytes"] > 0
    )
    general = run.results.filter(pack=Pack.GENERAL)
    assert general.count() == 34 and set(run.metrics["general"]["by_category"]) == {
        "arithmetic",
        "format",
        "general",
    }
    assert run.leakage["checked"] is False and "no training data" in run.leakage["note"]


def test_a_prompt_template_is_what_the_model_sees_and_keys_stay_those_of_the_examples(scientist, base):
    version = ready_version(scientist)
    plain = execute(eval_run_submit(user=scientist, model_version=base, dataset_version=version,
                                    generation=SHORT, general_pack=False))  # fmt: skip
    templated = execute(eval_run_submit(
        user=scientist, model_version=base, dataset_version=version, generation=SHORT, general_pack=False,
        system_prompt="You are the shop's support agent.", few_shot=[{"user": "hi", "assistant": "hello"}],
    ))  # fmt: skip
    first = templated.results.order_by("position").first()
    assert [m["role"] for m in first.prompt][:3] == ["system", "user", "assistant"]
    assert first.prompt[0]["content"] == "You are the shop's support agent."
    assert set(plain.results.values_list("key", flat=True)) == set(
        templated.results.values_list("key", flat=True)
    )


def test_test_examples_the_model_trained_on_are_counted_and_listed_as_leaked(
    scientist, base, artifacts, tiny_dir
):
    version = ready_version(scientist)
    folder = artifacts / "tuned"
    shutil.copytree(tiny_dir, folder)
    tuned = derived_version_register(user=scientist, base=base, path=folder, source=VersionSource.FINE_TUNE,
                                     fmt=VersionFormat.HF, lineage={"dataset_version": version.pk})  # fmt: skip
    run = execute(eval_run_submit(user=scientist, model_version=tuned, dataset_version=version, split="train",
                                  generation=SHORT, general_pack=False))  # fmt: skip
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.leakage["checked"] and run.leakage["exact"] == version.counts["train"] == run.leaked
    assert run.results.filter(leaked="exact").count() == version.counts["train"]
    assert len(run.leakage["examples"]) == version.counts["train"]
    clean = execute(eval_run_submit(user=scientist, model_version=tuned, dataset_version=version,
                                    generation=SHORT, general_pack=False))  # fmt: skip
    assert clean.leakage["checked"] and clean.leaked == 0  # the test split was kept apart by the build


def test_the_regression_suite_is_every_approved_case_of_the_product(scientist, base):
    for i in range(3):
        approved_case(i, product="shop")
    approved_case(3, product="other")
    draft = approved_case(4, product="shop")
    ErrorCase.objects.filter(pk=draft.pk).update(status=CaseStatus.CORRECTED)
    run = execute(eval_run_submit(user=scientist, model_version=base, product="shop", generation=SHORT,
                                  general_pack=False))  # fmt: skip
    assert run.status == JobStatus.SUCCEEDED, run.error
    cases = set(run.results.values_list("case__product", "case__status"))
    assert cases == {("shop", CaseStatus.APPROVED)} and run.results.count() == 3


def judge_reply(prompt: str) -> str:
    """A score of 4 for most answers, garbage when the question mentions 'Question 1 ', and in pairwise mode always
    the answer shown first (pure position bias)."""
    if '"winner"' in prompt:
        return '{"winner": "1", "reason": "the first one reads better"}'
    return "no idea, sorry" if "Question 1 " in prompt else '{"score": 4, "reason": "close enough"}'


@pytest.fixture
def judge_server():
    """The judge tests' OpenAI-compatible server on loopback (tests/workers/test_judge.py), answering judge_reply."""
    server = JudgeServer()
    server.reply, server.usage = judge_reply, {"prompt_tokens": 100, "completion_tokens": 10}
    yield server
    server.stop()


def test_a_judge_that_answers_garbage_marks_those_examples_and_the_run_completes(
    scientist, base, judge_server
):
    for i in range(4):
        approved_case(i, product="shop")
    judge = {
        "base_url": judge_server.url,
        "model": "judge",
        "rubrics": ["correctness"],
        "price_input_per_1k": 1.0,
    }
    run = execute(eval_run_submit(user=scientist, model_version=base, product="shop", generation=SHORT,
                                  suites=["task", "judge"], judge=judge, general_pack=False))  # fmt: skip
    assert run.status == JobStatus.SUCCEEDED, run.error
    errors = run.results.filter(judge_error=True)
    assert errors.count() == 1 and "Question 1 " in errors.get().prompt[-1]["content"]
    assert run.metrics["judge_errors"] == 1
    summary = run.metrics["judge"]["correctness"]
    assert summary["errors"] == 1 and summary["scored"] == 3 and summary["total_cost"] == pytest.approx(0.4)
    judged = run.results.exclude(judge_error=True).first()
    assert judged.score == pytest.approx(0.75)  # the correctness verdict 4 of 1..5 is the primary score
    assert len(judge_server.requests) == 4


def test_it_refuses_an_empty_split_a_wrong_task_and_an_invalid_rule_naming_each(scientist, base):
    version = ready_version(scientist)
    with pytest.raises(ValidationError) as e:
        eval_run_submit(user=scientist, model_version=base, dataset_version=version, split="nope",
                        rules=[{"kind": "regex_must", "pattern": "(unclosed"}],
                        suites=["task", "judge", "saliency"], generation={"max_new_tokens": 0})  # fmt: skip
    problems = e.value.message_dict
    assert "empty" in problems["split"][0]
    assert "rule 1" in problems["rules"][0]
    assert any("judge" in p for p in problems["judge"])
    assert any("saliency" in p for p in problems["suites"])
    assert "max_new_tokens" in problems["generation"][0]
    assert EvalRun.objects.count() == 0
    with pytest.raises(ValidationError) as e:
        eval_run_submit(user=scientist, model_version=base, product="nobody")
    assert "empty" in e.value.message_dict["product"][0]


@pytest.mark.worker
def test_an_evaluation_runs_through_a_real_celery_worker(scientist, base, start_worker):
    for i in range(3):
        approved_case(i, product="shop")
    run = eval_run_submit(user=scientist, model_version=base, product="shop", generation=SHORT)
    start_worker(queues="gpu")
    wait_until(lambda: EvalRun.objects.get(pk=run.pk).status in (JobStatus.SUCCEEDED, JobStatus.FAILED),
               timeout=180, what="the evaluation to end")  # fmt: skip
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert EvalResult.objects.filter(run=run, pack=Pack.TASK).count() == 3
    assert run.results.filter(pack=Pack.GENERAL).count() == 34


def test_a_classifier_run_has_classification_metrics_and_per_token_saliency(scientist, artifacts, tiny_dir):
    from tests.workers.test_classify import LABELS, build_classifier

    folder = build_classifier(tiny_dir, artifacts / "intent", "llama")
    model = base_model_register(user=scientist, name="intent", path=folder, task="classification")
    texts = [
        "where is my parcel",
        "I want my money back",
        "the app crashes on start",
        "thanks a lot",
        "hello",
    ]
    for i, text in enumerate(texts):
        ErrorCase.objects.create(messages=[{"role": "user", "content": text}], bad_output="x", product="shop",
                                 expected_output=LABELS[i % len(LABELS)], status=CaseStatus.APPROVED,
                                 task_type="classification", fingerprint=str(i))  # fmt: skip
    with pytest.raises(ValidationError) as e:
        eval_run_submit(user=scientist, model_version=model, product="shop", suites=["task", "rules"])
    assert "classifier" in e.value.message_dict["suites"][0]
    run = execute(eval_run_submit(user=scientist, model_version=model, product="shop",
                                  suites=["task", "saliency", "robustness", "efficiency"]))  # fmt: skip
    assert run.status == JobStatus.SUCCEEDED, run.error
    task = run.metrics["task"]
    assert {"accuracy", "macro_f1", "micro_f1", "confusion"} <= set(task) and task["n"] == 5
    assert task["confusion"]["labels"][: len(LABELS)] == list(LABELS)
    assert not run.results.filter(pack=Pack.GENERAL).exists()  # the shipped pack is for generative models
    for result in run.results.all():
        assert result.prediction in LABELS and abs(sum(result.probs.values()) - 1) < 1e-4
        assert result.correct == (result.prediction == result.reference)
        assert result.saliency and max(abs(score) for _, score in result.saliency) == pytest.approx(1.0)
    assert {"clean", "noisy", "drop"} <= set(run.metrics["robustness"])


def test_pairwise_judging_asks_both_orders_and_counts_position_bias_as_a_tie(scientist, base, judge_server):
    for i in range(3):
        approved_case(i, product="shop")
    judge = {"base_url": judge_server.url, "model": "judge"}
    run = execute(eval_run_submit(user=scientist, model_version=base, product="shop", generation=SHORT,
                                  suites=["task", "pairwise"], judge=judge, general_pack=False))  # fmt: skip
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert len(judge_server.requests) == 6  # both orders for each of the three examples
    pairwise = run.metrics["pairwise"]
    assert pairwise["ties"] == 3 and pairwise["inconsistent"] == 3 and pairwise["model_wins"] == 0
    verdict = run.results.first().judge["pairwise"]
    assert verdict["winner"] == "tie" and verdict["consistent"] is False


def test_chinese_references_can_be_tokenised_by_jieba_words(scientist, base):
    from workers.evaluate.metrics import generation_metrics

    for i, text in enumerate(["退货政策是什么", "运费怎么计算"]):
        approved_case(i, product="shop", expected=f"{text}：请查看帮助中心第{i}节的说明。")
    run = execute(eval_run_submit(user=scientist, model_version=base, product="shop", generation=SHORT,
                                  general_pack=False, lang="zh-jieba"))  # fmt: skip
    assert run.status == JobStatus.SUCCEEDED, run.error and run.lang == "zh-jieba"
    results = list(run.results.order_by("position"))
    expected = generation_metrics(
        [r.prediction for r in results], [r.reference for r in results], lang="zh-jieba"
    )
    assert run.metrics["task"]["rougeL"] == pytest.approx(expected["rougeL"])
    assert run.metrics["task"]["bleu"] == pytest.approx(expected["bleu"])
    with pytest.raises(ValidationError) as e:
        eval_run_submit(user=scientist, model_version=base, product="shop", lang="klingon")
    assert "lang" in e.value.message_dict


def test_a_cancelled_run_stops_between_batches():
    from evaluation_app.services.run import _predict
    from llmops.jobs import JobCancelled

    class Batched:
        def predict(self, examples, progress):
            for done in range(1, 4):
                progress(done, 3)
            return examples

    calls = []
    with pytest.raises(JobCancelled):
        _predict(
            Batched(), [1, 2, 3], lambda done, total: calls.append(done) or ("stop" if done == 2 else None)
        )
    assert calls == [1, 2]
    assert _predict(Batched(), [1], lambda done, total: None) == [1]


def test_the_web_process_checks_generation_and_judge_settings_without_importing_torch():
    code = (
        "import os, sys, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'llmops.settings'); django.setup(); "
        "from evaluation_app.services import submit; p = {}; "
        "submit._generation({'max_new_tokens': 0}, p); submit._judge({'base_url': 'ftp://x', 'model': 'j'}, [], p); "
        "print(p, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert "max_new_tokens: must be at least 1" in out.stdout and "base_url: must be an http" in out.stdout
    assert out.stdout.strip().endswith("False")
