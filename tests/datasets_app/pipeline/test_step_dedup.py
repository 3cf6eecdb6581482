"""Step e, dedup: exact keys, the notebook's MinHash and a cheap sketch in batches, clusters, recall on near-dups."""

import random

import numpy as np
import pytest

from datasets_app.dedup import _fmix32, normalise, shingle_hash, shingles, signature
from datasets_app.pipeline import near
from datasets_app.pipeline.near import (
    EXACT,
    KEEP,
    NEAR,
    Dedup,
    _shingle_hashes,
    clusters,
    keyed_texts,
    many_signatures,
    prepare,
    signatures,
    sketch,
)
from datasets_app.pipeline.recipe import DedupStep
from datasets_app.pipeline.types import Example, StepStats

EN = (
    "To request a refund, open your order history, choose the item you want to send back and print the prepaid "
    "shipping label. We will email you once the money has been returned to your credit card account."
)
ZH = "我们的退款政策允许客户在交货后三十天内退回任何未使用的产品。仓库检查退回的物品后，退款将在五个工作日内退回原支付账户。"


def chat(user: str, answer: str, line: int = 0) -> Example:
    messages = [{"role": "system", "content": "You are a support agent."}, {"role": "user", "content": user},
                {"role": "assistant", "content": answer}]  # fmt: skip
    return Example("chat", {"messages": messages}, "file", {"file": "a.jsonl", "line": line})


def dedup(examples: list[Example], tmp_path, **cfg) -> tuple[np.ndarray, np.ndarray, StepStats]:
    step, stats = Dedup(DedupStep(**cfg), tmp_path), StepStats("dedup")
    assert list(step.collect(examples, stats)) == examples
    decision = step.decide()
    return decision.verdict, decision.group, stats


def edit(rng: random.Random, text: str, edits: int) -> str:
    chars = list(text)
    for _ in range(edits):
        at = rng.randrange(len(chars))
        kind = rng.randrange(3)
        if kind == 0:
            chars[at] = "x" if chars[at].isascii() else "乙"
        elif kind == 1:
            del chars[at]
        else:
            chars.insert(at, chars[at])
    return "".join(chars)


def test_it_hashes_the_same_3_grams_as_the_error_notebook():
    for text in (EN, ZH, "使用 Python 写代码", "ab"):
        grams = normalise(text).replace(" ", "").rjust(3, "\0")
        grams = [grams[i : i + 3].encode() for i in range(len(grams) - 2)]
        hashes, counts = _shingle_hashes([normalise(text).replace(" ", "").rjust(3, "\0")])
        # datasketch mixes each hash with MurmurHash3's finaliser before its permutations; so do we
        assert hashes.tolist() == _fmix32(np.array([shingle_hash(g) for g in grams], np.uint32)).tolist()
        assert counts.tolist() == [len(grams)]


def test_it_computes_the_same_signatures_as_the_error_notebook_a_batch_at_a_time():
    texts = [EN, ZH, "", "a", "ab", "ＡＢＣ", "使用 Python 写代码", EN + ZH, "x" * 5000]

    batch = signatures(prepare(texts))

    assert batch.shape == (len(texts), 128)
    for row, text in zip(batch, texts, strict=True):
        assert np.array_equal(row, signature(text)), text[:20]


def test_many_signatures_equal_one_batchs_whether_a_forked_child_signs_half_or_not():
    texts = prepare([EN, ZH, "", "a", "使用 Python 写代码", EN + ZH] * 700)  # 4,200: past one BATCH of 4,096
    one = signatures(texts)

    assert np.array_equal(many_signatures(texts), one)
    assert np.array_equal(many_signatures(texts, fork_min=10), one)  # the first 2,100 signed in a child
    assert np.array_equal(many_signatures(texts[:1], fork_min=1), one[:1])  # one text: nothing to share


def test_it_sketches_jaccard_similarity_without_bias_for_finding_candidates():
    rng, han = random.Random(11), [chr(0x4E00 + i) for i in range(3000)]
    for length in (12, 40, 150, 500):
        ours, minhash = [], []
        for _ in range(150):
            text = "".join(rng.choices(han, k=length))
            other = edit(rng, text, rng.randint(1, max(1, length // 10)))
            jaccard = len(shingles(text) & shingles(other)) / len(shingles(text) | shingles(other))
            sketches = sketch([text, other])
            ours.append(np.mean(sketches[0] == sketches[1]) - jaccard)
            minhash.append(np.mean(signature(text) == signature(other)) - jaccard)
        assert abs(np.mean(ours)) < 0.01, length  # unbiased
        assert np.std(ours) < 1.35 * np.std(minhash), length  # 1.28x the spread for 10 3-grams, 0.9x for 500


def test_it_sketches_texts_of_every_length_in_one_batch():
    texts = prepare([EN, ZH, "", "a", "ab", "ＡＢＣ", EN + ZH, "x" * 5000, EN])

    batch = sketch(texts)

    assert batch.shape == (len(texts), 128) and batch.dtype == np.uint32
    assert np.array_equal(batch[0], batch[-1])
    assert np.all(batch[2] == np.iinfo(np.uint32).max)  # an empty text
    assert np.all(batch[3] != np.iinfo(np.uint32).max)  # every bin of a short text is filled
    assert np.array_equal(sketch(prepare(["ＡＢＣ"]))[0], sketch(prepare(["abc"]))[0])


def test_it_keys_rows_by_their_normalised_fields():
    a = chat("How do I get a REFUND?", EN)
    b = chat("how  do i get a refund?\u200b", EN.replace("credit card", "ＣＲＥＤＩＴ card"))
    c = chat("How do I get a refund?", EN + "!")

    assert keyed_texts(a)[0] == keyed_texts(b)[0] != keyed_texts(c)[0]
    assert keyed_texts(a)[1].startswith("howdoigetarefund?torequestarefund")  # no system prompt, no spaces


def test_it_drops_exact_duplicates_and_keeps_the_first(tmp_path):
    rows = [chat("refund?", EN, 1), chat("Refund?", EN, 2), chat("退款？", ZH, 3), chat("退款？ ", ZH, 4)]

    verdict, group, stats = dedup(rows, tmp_path)

    assert verdict.tolist() == [KEEP, EXACT, KEEP, EXACT]
    assert rows[0].key == rows[1].key and len(rows[0].key) == 64
    assert stats.rows_in == 4


def test_it_drops_near_duplicates_and_keeps_the_earliest_of_each_cluster(tmp_path):
    rng = random.Random(3)
    rows = [chat("Where is my refund?", EN), chat("退款去哪了？", ZH), chat("Where is my refund?", edit(rng, EN, 2)),
            chat("退款去哪了？", edit(rng, ZH, 1)), chat("Something else entirely", "A different answer here.")]  # fmt: skip

    verdict, group, _ = dedup(rows, tmp_path)

    assert verdict.tolist() == [KEEP, KEEP, NEAR, NEAR, KEEP]
    assert group.tolist() == [0, 1, 0, 1, 4]


def test_it_keeps_templated_rows_that_differ_in_their_details(tmp_path):
    topics = [
        "退货",
        "refund",
        "shipping",
        "发票",
        "warranty",
        "password",
        "discount",
        "配送",
        "invoice",
        "account",
    ]
    rows = [chat(f"Question {i} about {topics[i % 10]}: how does policy {i * 7919} work?",
                 f"Policy {i * 7919} on {topics[i % 10]}: see section {i}.", i) for i in range(60)]  # fmt: skip

    verdict, _, _ = dedup(rows, tmp_path)

    assert np.all(
        verdict == KEEP
    )  # their 3-gram Jaccard reaches 0.74, under the 0.8 threshold (the sketch alone
    # estimates some pairs above 0.8: the notebook's signatures decide)


def test_it_keeps_near_duplicates_when_only_exact_ones_are_asked_for(tmp_path):
    rows = [chat("Where is my refund?", EN), chat("Where is my refund?", EN.replace("email", "e-mail")),
            chat("Where is my refund?", EN)]  # fmt: skip

    verdict, _, _ = dedup(rows, tmp_path, near=False)

    assert verdict.tolist() == [KEEP, KEEP, EXACT]


def test_it_joins_chains_of_near_duplicates_into_one_cluster():
    label = clusters(6, np.array([0, 4, 3]), np.array([2, 5, 4]))

    assert label.tolist() == [0, 1, 0, 3, 3, 3]


def test_it_finds_at_least_nine_in_ten_injected_near_duplicates(tmp_path, monkeypatch):
    rng, words = random.Random(7), [f"w{i}{'abcdefgh'[i % 8]}" for i in range(5000)]
    han = [chr(0x4E00 + i) for i in range(3000)]

    def original() -> tuple[str, str]:
        if rng.random() < 0.5:
            return " ".join(rng.choices(words, k=15)) + "?", " ".join(rng.choices(words, k=40)) + "."
        return "".join(rng.choices(han, k=30)) + "？", "".join(rng.choices(han, k=120)) + "。"

    rows, sources, made = [], {}, []
    for i in range(3000):
        if made and rng.random() < 0.1:  # a few character edits of an earlier row
            j = rng.randrange(len(made))
            user, answer = made[j]
            sources[i] = j
            rows.append(chat(edit(rng, user, 1), edit(rng, answer, rng.randint(1, 2)), i))
        else:
            made.append(original())
            rows.append(chat(*made[-1], i))
    verdict, group, _ = dedup(rows, tmp_path)
    monkeypatch.setattr(near, "FORK_MIN", 2)  # the doubtful pairs' signatures: half of them made in a child
    assert all(map(np.array_equal, dedup(rows, tmp_path)[:2], (verdict, group)))

    injected = np.array(sorted(sources))
    recall = np.mean(verdict[injected] == NEAR)
    originals = np.setdiff1d(np.arange(len(rows)), injected)
    assert recall >= 0.9
    assert np.count_nonzero(verdict[originals] != KEEP) == 0


@pytest.mark.parametrize("threshold", [0.5, 0.9, 1.0])
def test_it_honours_the_threshold(tmp_path, threshold):
    near_copy = EN.replace("credit card", "bank")  # estimated Jaccard 0.89
    rows = [chat("Refund?", EN), chat("Refund?", near_copy)]

    verdict, _, _ = dedup(rows, tmp_path, threshold=threshold)

    assert verdict[1] == (NEAR if threshold <= 0.89 else KEEP)


def test_it_keeps_the_signatures_decide_made_and_makes_only_the_others_again(tmp_path, monkeypatch):
    rng = random.Random(5)
    rows = [chat(f"Where is refund {i}?", edit(rng, EN, 2)) for i in range(6)]
    rows += [chat("Something else entirely", "A different answer here."), chat("退款去哪了？", ZH)]
    step = Dedup(DedupStep(), tmp_path)
    list(step.collect(rows, StepStats("dedup")))
    made: list[int] = []
    real = near.many_signatures
    monkeypatch.setattr(near, "many_signatures", lambda texts, *a: made.append(len(texts)) or real(texts, *a))
    monkeypatch.setattr(near, "sure_votes", lambda threshold: 99)  # every candidate pair is signed in decide

    assert step.decide().verdict.tolist()[:6] == [KEEP] + [NEAR] * 5
    signed = made.pop()
    everything = np.arange(len(rows))
    assert np.array_equal(step.signatures(everything), real(step.texts(everything)))
    assert 0 < signed < len(rows) and made == [len(rows) - signed]  # only the rows decide did not sign
