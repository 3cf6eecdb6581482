"""The judge suites of a run: rubric verdicts per example, pairwise against the reference, RAG faithfulness and
relevance plus retrieval recall/precision. A judge that times out or answers garbage marks those examples
judge-error; the run completes and its summary says how many.
"""

from evaluation_app.models import EvalRun, Suite
from evaluation_app.services import scoring
from evaluation_app.services.examples import EvalExample
from evaluation_app.services.submit import JUDGE_SETTINGS
from evaluation_app.services.target import storable


def judge_config(run: EvalRun, api_key: str):
    from workers.evaluate.judge import JudgeConfig

    spec = run.judge or {}
    config = JudgeConfig(base_url=spec["base_url"], model=spec["model"], api_key=api_key,
                         **{k: spec[k] for k in JUDGE_SETTINGS if k in spec})  # fmt: skip
    config.validate()
    return config


def judge_rows(
    run: EvalRun, target, examples: list[EvalExample], rows: list[dict], threshold: float, api_key: str
) -> dict:
    from workers.evaluate.judge import JudgeItem, judge, judge_summary

    config = judge_config(run, api_key)
    questions = [_question(target, e) for e in examples]
    out: dict = {}
    if Suite.JUDGE in run.suites:
        out["judge"] = {}
        for rubric in run.judge.get("rubrics") or ["correctness"]:
            items = [JudgeItem(question=q, answer=r["prediction"], reference=e.reference)
                     for q, e, r in zip(questions, examples, rows, strict=True)]  # fmt: skip
            verdicts = judge(config, rubric, items)
            _record(rows, rubric, verdicts)
            out["judge"][rubric] = judge_summary(verdicts)
        for row in rows:  # the correctness verdict becomes the primary score where the judge gave one
            verdict = row.get("judge", {}).get("correctness", {})
            if verdict.get("score") is not None:
                scoring.finish_score(row, threshold, judge_correctness=verdict["score"])
    if Suite.PAIRWISE in run.suites:
        out["pairwise"] = _pairwise(config, questions, examples, rows)
    if Suite.RAG in run.suites:
        out["rag"] = _rag(config, questions, examples, rows)
    return out


def _question(target, example: EvalExample) -> str:
    messages = target.messages(example)
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages) if len(messages) > 1 else (
        messages[0]["content"] if messages else example.text
    )  # fmt: skip


def _record(rows: list[dict], name: str, verdicts) -> None:
    for row, v in zip(rows, verdicts, strict=True):
        row.setdefault("judge", {})[name] = {"score": v.score, "reason": storable(v.reason), "error": v.error,
                                             "cost": v.cost, "latency_s": v.latency_s}  # fmt: skip
        if v.error:
            row["judge_error"] = True


def _pairwise(config, questions, examples, rows) -> dict:
    """The prediction (a) against the expected answer (b), both orders asked; a = the model wins."""
    from workers.evaluate.judge import PairItem, judge_pairwise

    items = [PairItem(question=q, answer_a=r["prediction"], answer_b=e.reference)
             for q, e, r in zip(questions, examples, rows, strict=True)]  # fmt: skip
    verdicts = judge_pairwise(config, items)
    for row, v in zip(rows, verdicts, strict=True):
        row.setdefault("judge", {})["pairwise"] = {"winner": v.winner, "first": v.first, "second": v.second,
                                                   "consistent": v.consistent, "error": v.error, "cost": v.cost}  # fmt: skip
        if v.error:
            row["judge_error"] = True
    decided = [v for v in verdicts if v.winner is not None]
    return {
        "model_wins": sum(1 for v in decided if v.winner == "a"),
        "reference_wins": sum(1 for v in decided if v.winner == "b"),
        "ties": sum(1 for v in decided if v.winner == "tie"),
        "inconsistent": sum(1 for v in decided if not v.consistent),
        "errors": sum(1 for v in verdicts if v.error),
        "win_rate": (sum(1 for v in decided if v.winner == "a") + 0.5 * sum(1 for v in decided if v.winner == "tie"))
        / len(decided) if decided else None,
        "total_cost": sum(v.cost for v in verdicts),
    }  # fmt: skip


def _rag(config, questions, examples, rows) -> dict:
    from workers.evaluate.judge import judge, judge_summary
    from workers.evaluate.rag import rag_items, retrieval_metrics

    out: dict = {}
    with_context = [i for i, e in enumerate(examples) if e.context]
    for rubric in ("faithfulness", "relevance"):
        chosen = with_context if rubric == "faithfulness" else list(range(len(examples)))
        if not chosen:
            continue
        items = [rag_items(questions[i], rows[i]["prediction"], examples[i].context) for i in chosen]
        verdicts = judge(config, rubric, items)
        _record([rows[i] for i in chosen], rubric, verdicts)
        out[rubric] = judge_summary(verdicts)
    retrieval = [retrieval_metrics(e.gold_ids, e.retrieved_ids) for e in examples
                 if e.gold_ids is not None and e.retrieved_ids is not None]  # fmt: skip
    for name in ("recall", "precision"):
        values = [r[name] for r in retrieval if r.get(name) is not None]
        out[f"retrieval_{name}"] = sum(values) / len(values) if values else None
    out["retrieval_examples"] = len(retrieval)
    return out
