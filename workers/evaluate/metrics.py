"""Metric suites computed by the libraries people check them against, so our numbers are theirs.

Classification (``classification_metrics``) is scikit-learn: accuracy, macro and micro precision/recall/F1
(``zero_division=0``), per-label scores, one-vs-rest macro ROC AUC from per-label probabilities, and a confusion
matrix. A prediction outside ``labels`` (a generative classifier answering "maybe") is simply wrong: it counts as a
miss for the true label and shows up in an extra "(other)" column of the confusion matrix. Because scikit-learn only
averages over ``labels``, such predictions are not false positives of any label: micro recall equals accuracy, micro
precision can be higher.

Generation (``generation_metrics``, ``example_generation_scores``) is sacrebleu for BLEU and chrF and Google's
rouge-score for ROUGE-1/2/L F-measure. rouge-score's default tokenizer keeps only ``[a-z0-9]`` runs, so Chinese text
would score zero; for Chinese we pass a tokenizer that makes every CJK character a token (latin/digit runs stay
words, punctuation and spaces are dropped, as the default tokenizer drops them), or jieba's words with
``lang="zh-jieba"``. BLEU uses sacrebleu's "zh" tokenizer for Chinese and "13a" otherwise; chrF needs no tokenizer.
Corpus ROUGE is the mean of per-example F-measures (rouge-score has no corpus form); BLEU and chrF are corpus scores.
Scales: BLEU and chrF 0..100 (sacrebleu's), ROUGE and exact match 0..1.

Sentence-level BLEU uses ``effective_order=True`` (sacrebleu's advice for single sentences: a short answer with no
4-gram match is not 0). These per-example scores feed wins/losses and the paired bootstrap in ``stats``.

Measured on a busy 2-CPU box: importing rouge-score costs ~8 s once (it imports nltk), so the libraries are
imported inside the functions and the web process never pays it; after that, 1,000 English pairs take ~1.9 s for
the corpus suite and ~2.2 s scored one by one, 1,000 Chinese pairs ~1.7 s.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from functools import lru_cache

OTHER = "(other)"
LANGS = ("en", "zh", "zh-jieba", "auto")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_ZH_TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]|[^\W_]+")
_ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


# ---- classification ------------------------------------------------------------------------------------------


def classification_metrics(
    y_true: list[str], y_pred: list[str], *, labels: list[str], probs: list[dict[str, float]] | None = None
) -> dict:
    """Accuracy, macro/micro P/R/F1, per-label scores, OvR macro AUC (when computable) and the confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    _check_classification_input(y_true, y_pred, labels, probs)
    out: dict = {"n": len(y_true), "labels": list(labels), "accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("macro", "micro"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        out[f"precision_{average}"], out[f"recall_{average}"], out[f"f1_{average}"] = (
            float(p),
            float(r),
            float(f),
        )
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
    out["per_label"] = {
        label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, label in enumerate(labels)
    }
    out["auc_roc_ovr"], out["auc_note"] = _auc(y_true, labels, probs)
    known = set(labels)
    mapped = [y if y in known else OTHER for y in y_pred]
    columns = list(labels) + ([OTHER] if OTHER in mapped and OTHER not in known else [])
    matrix = confusion_matrix(y_true, mapped, labels=columns)[: len(labels)]
    out["confusion"] = {"labels": list(labels), "columns": columns, "matrix": matrix.tolist()}
    out["outside_labels"] = sum(1 for y in y_pred if y not in known)
    return out


def _check_classification_input(y_true, y_pred, labels, probs) -> None:
    problems = []
    if not y_true:
        problems.append("no examples")
    if len(y_true) != len(y_pred):
        problems.append(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if not labels or len(set(labels)) != len(labels):
        problems.append("labels must be a non-empty list without duplicates")
    unknown = sorted(set(y_true) - set(labels))
    if unknown:
        problems.append(f"true labels not in labels: {', '.join(map(repr, unknown[:10]))}")
    if probs is not None and len(probs) != len(y_true):
        problems.append(f"{len(y_true)} examples but {len(probs)} probability rows")
    if problems:
        raise ValueError("; ".join(problems))


def _auc(y_true, labels, probs) -> tuple[float | None, str | None]:
    """OvR macro ROC AUC, or None and the reason. Rows not summing to 1 are renormalised (scikit-learn needs it)."""
    if probs is None:
        return None, "no probabilities given"
    if len(labels) < 2:
        return None, "ROC AUC needs at least two labels"
    import numpy as np
    from sklearn.metrics import roc_auc_score

    scores = np.array([[float(row.get(label, 0.0)) for label in labels] for row in probs], dtype=float)
    if not np.isfinite(scores).all() or (scores < 0).any():
        return None, "probabilities must be finite and non-negative"
    present = set(y_true)
    if len(present) < 2:
        return (
            None,
            f"only one class present in the true labels ({next(iter(present))!r}); ROC AUC is undefined",
        )
    try:
        if len(labels) == 2:
            positive = np.array([y == labels[1] for y in y_true])
            return float(roc_auc_score(positive, scores[:, 1])), None
        totals = scores.sum(axis=1, keepdims=True)
        if (totals <= 0).any():
            return None, "a probability row sums to zero"
        missing = [label for label in labels if label not in present]
        if missing:
            return None, f"labels never true, their one-vs-rest AUC is undefined: {', '.join(missing[:10])}"
        if not np.allclose(totals, 1.0):  # only when needed: dividing by 1.0000000000000002 breaks ties
            scores = scores / totals
        return float(roc_auc_score(y_true, scores, multi_class="ovr", average="macro", labels=labels)), None
    except ValueError as exc:  # scikit-learn's own "not defined" cases
        return None, str(exc)


# ---- generation ----------------------------------------------------------------------------------------------


def detect_lang(texts: str | Iterable[str]) -> str:
    """ "zh" when most of the non-empty texts contain a CJK character, else "en"."""
    if isinstance(texts, str):
        texts = [texts]
    nonempty = [t for t in texts if t and t.strip()]
    cjk = sum(1 for t in nonempty if _CJK.search(t))
    return "zh" if nonempty and cjk * 2 > len(nonempty) else "en"


def generation_metrics(predictions: list[str], references: list[str], *, lang: str = "auto") -> dict:
    """Exact match, corpus BLEU and chrF (sacrebleu), mean ROUGE-1/2/L F-measure (rouge-score)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("no examples")
    lang = _resolve_lang(lang, references)
    bleu = _bleu(_bleu_tokenize(lang), effective_order=False)
    scorer = _rouge_scorer(lang)
    rouge = dict.fromkeys(_ROUGE_TYPES, 0.0)
    for pred, ref in zip(predictions, references, strict=True):
        scores = scorer.score(ref, pred)
        for name in _ROUGE_TYPES:
            rouge[name] += scores[name].fmeasure
    n = len(predictions)
    return {
        "n": n,
        "lang": lang,
        "exact_match": sum(_norm(p) == _norm(r) for p, r in zip(predictions, references, strict=True)) / n,
        "bleu": float(bleu.corpus_score(predictions, [references]).score),
        "chrf": float(_chrf().corpus_score(predictions, [references]).score),
        **{name: value / n for name, value in rouge.items()},
    }


def example_generation_scores(prediction: str, reference: str, *, lang: str) -> dict:
    """One example's exact (0/1), sentence BLEU and chrF (0..100), ROUGE-1/2/L F-measure (0..1)."""
    lang = _resolve_lang(lang, [reference])
    scores = _rouge_scorer(lang).score(reference, prediction)
    return {
        "exact": int(_norm(prediction) == _norm(reference)),
        "bleu": float(
            _bleu(_bleu_tokenize(lang), effective_order=True).sentence_score(prediction, [reference]).score
        ),
        "chrf": float(_chrf().sentence_score(prediction, [reference]).score),
        **{name: float(scores[name].fmeasure) for name in _ROUGE_TYPES},
    }


def perplexity(nll_sums: list[float], token_counts: list[int]) -> float | None:
    """exp(total negative log-likelihood / total tokens); None when there are no tokens, inf on overflow."""
    if len(nll_sums) != len(token_counts):
        raise ValueError(f"{len(nll_sums)} loss sums but {len(token_counts)} token counts")
    tokens = sum(token_counts)
    if tokens <= 0:
        return None
    try:
        return math.exp(math.fsum(nll_sums) / tokens)
    except OverflowError:
        return math.inf


def _norm(text: str) -> str:
    return " ".join(text.split())


def _resolve_lang(lang: str, references: list[str]) -> str:
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {', '.join(LANGS)}, not {lang!r}")
    return detect_lang(references) if lang == "auto" else lang


def _bleu_tokenize(lang: str) -> str:
    return "zh" if lang.startswith("zh") else "13a"


@lru_cache(maxsize=8)
def _bleu(tokenize: str, *, effective_order: bool):
    from sacrebleu.metrics import BLEU

    return BLEU(tokenize=tokenize, effective_order=effective_order)


@lru_cache(maxsize=1)
def _chrf():
    from sacrebleu.metrics import CHRF

    return CHRF()


class CharTokenizer:
    """rouge-score tokenizer for Chinese: each CJK character a token, latin/digit runs lowercased words."""

    def tokenize(self, text: str) -> list[str]:
        return _ZH_TOKEN.findall(text.lower())


class JiebaTokenizer:
    """rouge-score tokenizer for Chinese words segmented by jieba (punctuation and spaces dropped)."""

    def tokenize(self, text: str) -> list[str]:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        return [w for w in jieba.lcut(text.lower()) if _ZH_TOKEN.search(w)]


@lru_cache(maxsize=4)
def _rouge_scorer(lang: str):
    from rouge_score.rouge_scorer import RougeScorer

    tokenizer = {"zh": CharTokenizer(), "zh-jieba": JiebaTokenizer()}.get(lang)
    return RougeScorer(list(_ROUGE_TYPES), tokenizer=tokenizer)
