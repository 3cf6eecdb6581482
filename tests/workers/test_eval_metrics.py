"""The metric suites give exactly what scikit-learn, sacrebleu and rouge-score give when called directly."""

import math

import pytest
import sacrebleu
from rouge_score import tokenizers
from rouge_score.rouge_scorer import RougeScorer
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score

from workers.evaluate.metrics import (
    classification_metrics,
    detect_lang,
    example_generation_scores,
    generation_metrics,
    perplexity,
)

LABELS = ["billing", "bug", "praise"]
Y_TRUE = ["billing", "bug", "praise", "billing", "bug", "praise", "bug", "billing"]
Y_PRED = ["billing", "praise", "praise", "bug", "bug", "praise", "bug", "billing"]
PROBS = [
    {"billing": 0.7, "bug": 0.2, "praise": 0.1},
    {"billing": 0.1, "bug": 0.3, "praise": 0.6},
    {"billing": 0.1, "bug": 0.1, "praise": 0.8},
    {"billing": 0.4, "bug": 0.5, "praise": 0.1},
    {"billing": 0.2, "bug": 0.7, "praise": 0.1},
    {"billing": 0.3, "bug": 0.2, "praise": 0.5},
    {"billing": 0.1, "bug": 0.8, "praise": 0.1},
    {"billing": 0.6, "bug": 0.3, "praise": 0.1},
]

EN_PRED = ["the cat sat on the mat", "a quick brown fox", "hello   world ", "it is raining today"]
EN_REF = ["the cat sat on a mat", "the quick brown fox jumps", "hello world", "today it rains"]
ZH_PRED = ["今天天气很好", "我喜欢吃苹果", "他们正在开会讨论预算", "请稍后再试"]
ZH_REF = ["今天天气不错", "我爱吃苹果", "他们在开会讨论明年的预算", "请稍后再试"]


class ListTokenizer(tokenizers.Tokenizer):
    """A reference tokenizer written independently of ours: every non-space character is a token."""

    def tokenize(self, text):
        return [ch for ch in text.lower() if not ch.isspace()]


def mean_rouge(scorer, name, predictions, references):
    pairs = list(zip(predictions, references, strict=True))
    return sum(scorer.score(ref, pred)[name].fmeasure for pred, ref in pairs) / len(pairs)


def test_it_matches_scikit_learn_on_accuracy_averages_and_per_label_scores():
    got = classification_metrics(Y_TRUE, Y_PRED, labels=LABELS)
    assert got["accuracy"] == pytest.approx(accuracy_score(Y_TRUE, Y_PRED))
    for average in ("macro", "micro"):
        p, r, f, _ = precision_recall_fscore_support(
            Y_TRUE, Y_PRED, labels=LABELS, average=average, zero_division=0
        )
        assert (got[f"precision_{average}"], got[f"recall_{average}"], got[f"f1_{average}"]) == pytest.approx(
            (p, r, f)
        )
    p, r, f, s = precision_recall_fscore_support(Y_TRUE, Y_PRED, labels=LABELS, zero_division=0)
    for i, label in enumerate(LABELS):
        assert got["per_label"][label] == pytest.approx(
            {"precision": p[i], "recall": r[i], "f1": f[i], "support": s[i]}
        )
    assert got["confusion"]["matrix"] == confusion_matrix(Y_TRUE, Y_PRED, labels=LABELS).tolist()
    assert got["confusion"]["columns"] == LABELS


def test_it_computes_one_vs_rest_macro_auc_from_probabilities():
    got = classification_metrics(Y_TRUE, Y_PRED, labels=LABELS, probs=PROBS)
    matrix = [[row[label] for label in LABELS] for row in PROBS]
    expected = roc_auc_score(Y_TRUE, matrix, multi_class="ovr", average="macro", labels=LABELS)
    assert got["auc_roc_ovr"] == pytest.approx(expected)
    assert got["auc_note"] is None


def test_it_handles_the_binary_case_with_the_second_label_as_positive():
    y_true, y_pred = ["no", "yes", "yes", "no", "yes"], ["no", "yes", "no", "no", "yes"]
    probs = [{"yes": p, "no": 1 - p} for p in (0.2, 0.9, 0.4, 0.3, 0.7)]
    got = classification_metrics(y_true, y_pred, labels=["no", "yes"], probs=probs)
    assert got["auc_roc_ovr"] == pytest.approx(roc_auc_score([0, 1, 1, 0, 1], [0.2, 0.9, 0.4, 0.3, 0.7]))
    assert got["f1_macro"] == pytest.approx(
        precision_recall_fscore_support(y_true, y_pred, labels=["no", "yes"], average="macro")[2]
    )


def test_it_says_why_auc_is_missing_when_only_one_class_is_true():
    got = classification_metrics(["bug", "bug"], ["bug", "praise"], labels=LABELS, probs=PROBS[:2])
    assert got["auc_roc_ovr"] is None
    assert "only one class" in got["auc_note"]


def test_it_says_why_auc_is_missing_without_probabilities():
    got = classification_metrics(Y_TRUE, Y_PRED, labels=LABELS)
    assert got["auc_roc_ovr"] is None and got["auc_note"] == "no probabilities given"


def test_it_counts_predictions_outside_the_labels_as_wrong_in_an_other_column():
    y_true, y_pred = ["billing", "bug", "praise", "bug"], ["billing", "no idea", "praise", "bug"]
    got = classification_metrics(y_true, y_pred, labels=LABELS)
    assert got["accuracy"] == 0.75
    assert got["outside_labels"] == 1
    assert got["confusion"]["columns"] == [*LABELS, "(other)"]
    assert got["confusion"]["matrix"] == [[1, 0, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]]
    assert got["per_label"]["bug"]["recall"] == 0.5


def test_it_rejects_true_labels_it_was_not_told_about_and_length_mismatches():
    with pytest.raises(ValueError, match="true labels not in labels: 'spam'"):
        classification_metrics(["spam"], ["bug"], labels=LABELS)
    with pytest.raises(ValueError, match="2 true labels but 1 predictions"):
        classification_metrics(["bug", "bug"], ["bug"], labels=LABELS)


def test_english_generation_metrics_match_sacrebleu_and_rouge_score():
    got = generation_metrics(EN_PRED, EN_REF, lang="en")
    assert got["bleu"] == pytest.approx(sacrebleu.corpus_bleu(EN_PRED, [EN_REF], tokenize="13a").score)
    assert got["chrf"] == pytest.approx(sacrebleu.corpus_chrf(EN_PRED, [EN_REF]).score)
    scorer = RougeScorer(["rouge1", "rouge2", "rougeL"])
    for name in ("rouge1", "rouge2", "rougeL"):
        expected = mean_rouge(scorer, name, EN_PRED, EN_REF)
        assert got[name] == pytest.approx(expected)
    assert got["exact_match"] == 0.25  # "hello   world " equals "hello world" once whitespace is normalised
    assert got["lang"] == "en"


def test_chinese_generation_metrics_use_the_zh_tokenizer_and_characters_for_rouge():
    got = generation_metrics(ZH_PRED, ZH_REF)  # auto detects Chinese
    assert got["lang"] == "zh"
    assert got["bleu"] == pytest.approx(sacrebleu.corpus_bleu(ZH_PRED, [ZH_REF], tokenize="zh").score)
    assert got["chrf"] == pytest.approx(sacrebleu.corpus_chrf(ZH_PRED, [ZH_REF]).score)
    scorer = RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=ListTokenizer())
    for name in ("rouge1", "rouge2", "rougeL"):
        expected = mean_rouge(scorer, name, ZH_PRED, ZH_REF)
        assert got[name] == pytest.approx(expected)
        assert got[name] > 0.3  # the default tokenizer would score Chinese as 0
    assert got["exact_match"] == 0.25


def test_chinese_rouge_can_use_jieba_words():
    import jieba

    class JiebaReference(tokenizers.Tokenizer):
        def tokenize(self, text):
            return [w for w in jieba.lcut(text) if w.strip()]

    got = generation_metrics(ZH_PRED, ZH_REF, lang="zh-jieba")
    scorer = RougeScorer(["rouge1"], tokenizer=JiebaReference())
    expected = mean_rouge(scorer, "rouge1", ZH_PRED, ZH_REF)
    assert got["rouge1"] == pytest.approx(expected)
    assert got["rouge1"] != pytest.approx(generation_metrics(ZH_PRED, ZH_REF, lang="zh")["rouge1"])


def test_per_example_scores_match_sentence_level_sacrebleu():
    pred, ref = EN_PRED[0], EN_REF[0]
    got = example_generation_scores(pred, ref, lang="en")
    assert got["bleu"] == pytest.approx(sacrebleu.sentence_bleu(pred, [ref]).score)
    assert got["chrf"] == pytest.approx(sacrebleu.sentence_chrf(pred, [ref]).score)
    assert got["rougeL"] == pytest.approx(RougeScorer(["rougeL"]).score(ref, pred)["rougeL"].fmeasure)
    assert got["exact"] == 0
    zh = example_generation_scores(ZH_PRED[3], ZH_REF[3], lang="zh")
    assert zh["exact"] == 1 and zh["rouge1"] == 1.0 and zh["bleu"] == pytest.approx(100.0)


def test_it_rejects_an_unknown_language_and_mismatched_lists():
    with pytest.raises(ValueError, match="lang must be one of"):
        generation_metrics(["a"], ["a"], lang="fr")
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        generation_metrics(["a", "b"], ["a"])


def test_language_detection_follows_most_references():
    assert detect_lang(["你好", "谢谢", "ok"]) == "zh"
    assert detect_lang(["hello", "thanks", "你好"]) == "en"
    assert detect_lang("今天") == "zh"
    assert detect_lang([]) == "en"


def test_perplexity_is_exp_of_mean_token_loss():
    assert perplexity([2.0, 4.0], [2, 4]) == pytest.approx(math.exp(1.0))
    assert perplexity([], []) is None
    assert perplexity([1.0], [0]) is None
    assert perplexity([10_000.0], [1]) == math.inf
