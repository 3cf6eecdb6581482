"""Small synthetic datasets in the three export formats, written offline in milliseconds.

For tests, benchmarks and local demos of the engine (``write_demo_data(folder, "chat", 64)`` writes
``train.jsonl`` and ``validation.jsonl``). The answers are fixed per question, so a model can learn them and
the loss visibly falls; lengths vary, so batching and packing matter.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

QA = [
    ("Where is my order?", "Your order was shipped yesterday and should arrive within three working days."),
    ("How do I reset my password?", "Open the settings page, choose security, and click reset password."),
    ("What is the refund policy?", "You can return any item within thirty days."),
    ("Can I change the delivery address?", "Yes, before the parcel leaves the warehouse."),
    ("我的订单在哪里？", "您的订单昨天已经发货，预计三个工作日内送达。"),
    ("我怎么重置密码？", "打开设置页面，选择安全，然后点击重置密码。"),
]
LABELED = [
    ("The parcel arrived broken and nobody answers.", "complaint"),
    ("Thanks, the new model answers much better now.", "praise"),
    ("How do I change the delivery address?", "question"),
    ("Refund me now, this is the third time.", "complaint"),
    ("Great support, quick and honest.", "praise"),
    ("Where can I see my order?", "question"),
]
FILLER = "Please answer briefly and politely. The customer has waited for a while."


def chat_record(i: int, rng: random.Random) -> dict:
    q, a = QA[i % len(QA)]
    messages = (
        [{"role": "system", "content": "You are a helpful, honest and concise assistant."}]
        if i % 3 == 0
        else []
    )
    if i % 4 == 1:  # a two-turn conversation: both answers are learned
        q2, a2 = QA[(i + 1) % len(QA)]
        messages += [{"role": "user", "content": q2}, {"role": "assistant", "content": a2}]
    user = q if rng.random() < 0.6 else f"{q} {FILLER * rng.randint(1, 4)}"
    return {"messages": [*messages, {"role": "user", "content": user}, {"role": "assistant", "content": a}]}


def instruction_record(i: int, rng: random.Random) -> dict:
    q, a = QA[i % len(QA)]
    record = {"instruction": "Answer the customer's question.", "input": q, "output": a}
    if i % 2:
        record["input"] = f"{q} {FILLER * rng.randint(0, 3)}".strip()
    if i % 5 == 0:
        record["system"] = "Be brief."
    return record


def classification_record(i: int, rng: random.Random) -> dict:
    text, label = LABELED[i % len(LABELED)]
    return {"text": text if rng.random() < 0.7 else f"{text} {FILLER}", "label": label}


MAKERS = {"chat": chat_record, "instruction": instruction_record, "classification": classification_record}


def records(task: str, n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [MAKERS[task](i, rng) for i in range(n)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_demo_data(
    folder: Path, task: str, n_train: int, n_validation: int = 0, seed: int = 0
) -> dict[str, str]:
    """Write train.jsonl (and validation.jsonl when n_validation) into ``folder``; returns TrainConfig fields."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = records(task, n_train + n_validation, seed)
    paths = {"train_file": str(write_jsonl(folder / "train.jsonl", rows[:n_train]))}
    if n_validation:
        paths["validation_file"] = str(write_jsonl(folder / "validation.jsonl", rows[n_train:]))
    return paths
