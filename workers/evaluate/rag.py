"""Retrieval-augmented generation scoring: how well the retriever did, and judge items for the generator.

    retrieval_metrics(["d1", "d4"], ["d4", "d9", "d1"], k=2)   # {"recall": 0.5, "precision": 0.5, "k": 2, ...}
    judge(config, "faithfulness", [rag_items(question, answer, context)])

Retrieval is scored on document ids against the gold ids: recall@k = |gold ∩ retrieved[:k]| / |gold| and
precision@k = |gold ∩ retrieved[:k]| / |retrieved[:k]|, duplicates in the ranking counted once. A value is None
when it is undefined (no gold ids for recall, nothing retrieved for precision) rather than 0 or 1, so that an
average over examples can leave those out instead of being pulled by them. The generator is scored by the judge's
"faithfulness" (answer supported by the context) and "relevance" (answer addresses the question) rubrics.
"""

from __future__ import annotations

from workers.evaluate.judge import JudgeItem


def _unique(ids) -> list[str]:
    seen: dict[str, None] = {}
    for item in ids:
        seen.setdefault(str(item), None)
    return list(seen)


def retrieval_metrics(gold_ids: list[str], retrieved_ids: list[str], *, k: int | None = None) -> dict:
    """recall / precision of the first ``k`` retrieved ids (all of them when k is None), plus hit and MRR."""
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"k must be a positive whole number or None, not {k!r}")
    gold = set(_unique(gold_ids))
    ranked = _unique(retrieved_ids)
    top = ranked if k is None else ranked[:k]
    found = [doc for doc in top if doc in gold]
    first_rank = next((rank for rank, doc in enumerate(top, start=1) if doc in gold), None)
    return {
        "recall": len(found) / len(gold) if gold else None,
        "precision": len(found) / len(top) if top else None,
        "hit": (first_rank is not None) if gold else None,
        "mrr": (1 / first_rank if first_rank else 0.0) if gold else None,
        "k": k,
        "gold": len(gold),
        "retrieved": len(top),
        "relevant_retrieved": len(found),
    }


def rag_items(question: str, answer: str, context) -> JudgeItem:
    """A judge item for the faithfulness / relevance rubrics; ``context`` is a string or a list of passages."""
    if not isinstance(context, str):
        context = "\n\n".join(f"[{i}] {passage}" for i, passage in enumerate(context or [], start=1))
    return JudgeItem(question=question, answer=answer, context=context)
