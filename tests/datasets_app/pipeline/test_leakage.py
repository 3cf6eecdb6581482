"""Leakage of a test set into training data: zero when they are apart, counted when they are not."""

import random

import numpy as np

from datasets_app.pipeline.leakage import NearIndex, ids_and_texts, leakage_report, text_index
from datasets_app.pipeline.near import NEAR, band_keys, sketch
from datasets_app.pipeline.types import Example

HAN = [chr(0x4E00 + i) for i in range(2000)]


def rows(n: int, seed: int, source: str) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        question = (
            "".join(rng.choices(HAN, k=25))
            if i % 2
            else " ".join(f"w{rng.randrange(9999)}" for _ in range(10))
        )
        answer = (
            "".join(rng.choices(HAN, k=60))
            if i % 2
            else " ".join(f"a{rng.randrange(9999)}" for _ in range(30))
        )
        out.append(Example("instruction", {"instruction": question, "input": "", "output": answer}, "file",
                           {"file": source, "line": i + 1}))  # fmt: skip
    return out


def test_it_finds_no_leakage_between_sets_apart():
    report = leakage_report(rows(500, 1, "train"), rows(100, 2, "test"))

    assert report == {"exact": 0, "near": 0, "examples": [], "checked_test": 100, "checked_train": 500}


def test_it_counts_test_rows_found_again_exactly_or_nearly():
    train, test = rows(300, 1, "train"), rows(50, 2, "test")
    copy = Example("instruction", {**test[3].fields, "instruction": test[3].fields["instruction"].upper()}, "file",
                   {"file": "other-model.jsonl", "line": 7})  # fmt: skip
    output = test[10].fields["output"]
    near = Example("instruction", {**test[10].fields, "output": output[:20] + "乙" + output[21:]}, "file",
                   {"file": "other-model.jsonl", "line": 8})  # fmt: skip

    report = leakage_report(iter(train[:100] + [copy] + train[100:] + [near, copy]), test)

    assert report["exact"] == 1 and report["near"] == 1
    assert report["checked_test"] == 50 and report["checked_train"] == 303
    assert report["examples"] == [
        {
            "test": {"file": "test", "line": 4},
            "train": {"file": "other-model.jsonl", "line": 7},
            "kind": "exact",
        },
        {
            "test": {"file": "test", "line": 11},
            "train": {"file": "other-model.jsonl", "line": 8},
            "kind": "near",
        },
        {
            "test": {"file": "test", "line": 4},
            "train": {"file": "other-model.jsonl", "line": 7},
            "kind": "exact",
        },
    ]


def test_it_streams_training_data_larger_than_a_batch():
    test = rows(20, 2, "test")
    train = (example for example in rows(5000, 3, "train") + test[:2])

    report = leakage_report(train, test, threshold=0.9)

    assert report["exact"] == 2 and report["checked_train"] == 5002


def test_an_index_asks_only_for_the_signatures_of_reference_rows_near_a_looked_up_row():
    test, train = rows(200, 2, "test"), rows(300, 1, "train")
    output = test[10].fields["output"]
    train.append(Example("instruction", {**test[10].fields, "output": output[:20] + "乙" + output[21:]}, "file",
                         {"file": "other-model.jsonl", "line": 8}))  # fmt: skip
    eager = text_index(*ids_and_texts(test), 0.8)
    asked: list[int] = []

    def signatures_of(positions):
        asked.extend(positions.tolist())
        return eager.signatures_of(positions)

    lazy = NearIndex(eager.sorted_ids[np.argsort(eager.id_order)], band_keys(sketch(ids_and_texts(test)[1]), 0.8),
                     0.8, signatures_of)  # fmt: skip
    ids, texts = ids_and_texts(train)
    kind, ref = lazy.match_texts(ids, texts)

    assert np.array_equal(kind, eager.match_texts(ids, texts)[0]) and ref[-1] == 10 and kind[-1] == NEAR
    assert 10 in asked and len(set(asked)) < len(test) // 4
