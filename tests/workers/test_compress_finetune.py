"""The recovery / distillation loop on the tiny models: it learns, distils, keeps pruned weights at zero, stops."""

import json
import random

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from workers.compress.config import CompressConfig, CompressError, ConfigError
from workers.compress.finetune import TrainOutcome, train_student
from workers.train.data import IGNORE, read_records, tokenize

CUES = {
    "billing": ["invoice", "charged twice", "payment", "bill", "refund of the fee"],
    "shipping": ["package", "delivery", "courier", "tracking number", "arrive"],
    "returns": ["send it back", "return label", "exchange", "broken item back", "return window"],
}
FILLERS = ["Hello,", "Please help:", "Hi team,", "Urgent:", "Question:"]


def classification_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    names = list(CUES)
    rows = []
    for i in range(n):
        label = names[i % 3]
        rows.append(
            {"text": f"{rng.choice(FILLERS)} my {rng.choice(CUES[label])} is the problem", "label": label}
        )
    return rows


def chat_rows(n: int) -> list[dict]:
    answers = ["It ships today.", "The refund is on its way.", "Send it back with the label."]
    return [
        {"messages": [
            {"role": "user", "content": f"Question {i}: where is my order?"},
            {"role": "assistant", "content": answers[i % 3]},
        ]}
        for i in range(n)
    ]  # fmt: skip


def write_jsonl(path, rows, blank_after: int | None = None):
    lines = [json.dumps(r) for r in rows]
    if blank_after is not None:
        lines.insert(blank_after, "")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def make_config(tmp_path, task="classification", rows=None, **overrides) -> CompressConfig:
    if rows is None:
        rows = classification_rows(30) if task == "classification" else chat_rows(24)
    fields = {
        "method": "prune_magnitude",
        "model_path": "unused",
        "output_dir": str(tmp_path / "out"),
        "task": task,
        "train_file": write_jsonl(tmp_path / "train.jsonl", rows),
        "steps": 30,
        "learning_rate": 5e-3,
        "batch_size": 8,
        "max_seq_len": 64,
        "seed": 0,
    }
    return CompressConfig(**(fields | overrides))


class Reports(list):
    def __init__(self, stop_at: int | None = None):
        super().__init__()
        self.stop_at = stop_at

    def __call__(self, step, **metrics):
        self.append({"step": step, **metrics})
        return "stop" if step == self.stop_at else None


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    return AutoTokenizer.from_pretrained(tiny_dir)


def classifier(tiny_bert_dir, layers: int | None = None):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir)
    if layers is not None:
        model.bert.encoder.layer = torch.nn.ModuleList(list(model.bert.encoder.layer)[:layers])
        model.config.num_hidden_layers = layers
    return model.eval()


def causal(tiny_dir, layers: int | None = None):
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    if layers is not None:
        model.model.layers = torch.nn.ModuleList(list(model.model.layers)[:layers])
        model.config.num_hidden_layers = layers
    return model.eval()


def agreement(student, teacher, tokenizer, texts) -> float:
    """Share of texts where the student's predicted class is the teacher's (one text at a time: no padding)."""
    same = 0
    with torch.no_grad():
        for text in texts:
            enc = tokenizer(text, return_tensors="pt")
            same += int(student(**enc).logits.argmax(-1) == teacher(**enc).logits.argmax(-1))
    return same / len(texts)


def test_recovery_lowers_a_classifiers_loss_and_reports_every_ten_steps(tmp_path, tiny_bert_dir, tokenizer):
    model = classifier(tiny_bert_dir)
    reports = Reports()
    outcome = train_student(model, tokenizer, make_config(tmp_path), reports)
    assert isinstance(outcome, TrainOutcome)
    assert outcome.status == "succeeded" and outcome.steps == 30 and outcome.tokens > 0
    assert [r["step"] for r in reports] == [10, 20, 30]
    assert [r["progress"] for r in reports] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert all(r["total_steps"] == 30 and r["lr"] >= 0 for r in reports)
    assert [s for s, _ in outcome.losses] == [10, 20, 30]
    assert outcome.losses[-1][1] < outcome.losses[0][1] * 0.8
    assert outcome.val_loss is None and not model.training


def test_recovery_of_a_causal_lm_learns_the_answers_and_reports_the_validation_loss(
    tmp_path, tiny_dir, tokenizer
):
    model = causal(tiny_dir)
    val = write_jsonl(tmp_path / "val.jsonl", chat_rows(6))
    config = make_config(tmp_path, task="causal_lm", validation_file=val, learning_rate=5e-3)
    reports = Reports()
    outcome = train_student(model, tokenizer, config, reports)
    assert outcome.losses[-1][1] < outcome.losses[0][1] * 0.7
    assert reports[-1]["val_loss"] == outcome.val_loss
    data = tokenize(read_records(val, "chat", "v"), tokenizer, "chat", 64)
    total = count = 0.0
    with torch.no_grad():  # one example at a time, answer tokens only: independent of the loop's batching
        for i in range(len(data)):
            lo, hi = data.offsets[i], data.offsets[i + 1]
            logits = model(input_ids=torch.as_tensor(data.ids[lo:hi], dtype=torch.long)[None]).logits[0]
            targets = torch.as_tensor(data.targets[lo:hi], dtype=torch.long)
            total += float(F.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="sum"))
            count += int((targets != IGNORE).sum())
    assert outcome.val_loss == pytest.approx(total / count, rel=1e-4)


def test_distillation_raises_the_students_agreement_with_the_teacher(tmp_path, tiny_bert_dir, tokenizer):
    teacher = classifier(tiny_bert_dir)
    train_student(teacher, tokenizer, make_config(tmp_path, steps=60), Reports())  # it learns the cues
    student = classifier(tiny_bert_dir, layers=1)  # untrained: it agrees with the teacher by chance only
    texts = [r["text"] for r in classification_rows(30, seed=1)]
    before = agreement(student, teacher, tokenizer, texts)
    config = make_config(
        tmp_path, method="distill", alpha=1.0, steps=60, learning_rate=1e-2
    )  # no labels used
    outcome = train_student(student, tokenizer, config, Reports(), teacher=teacher)
    after = agreement(student, teacher, tokenizer, texts)  # on texts neither model trained on
    assert outcome.status == "succeeded"
    assert after >= 0.8 and after > before + 0.3
    assert len(student.bert.encoder.layer) == 1 and not teacher.training


def test_distilling_a_causal_lm_brings_the_students_answer_distributions_to_the_teachers(
    tmp_path, tiny_dir, tokenizer
):
    teacher = causal(tiny_dir)
    train_student(teacher, tokenizer, make_config(tmp_path, task="causal_lm"), Reports())
    student = causal(tiny_dir, layers=1)
    data = tokenize(chat_rows(6), tokenizer, "chat", 64)

    def divergence() -> float:
        """Mean KL(teacher ‖ student) over the answer tokens of each example, one example at a time."""
        total = count = 0.0
        with torch.no_grad():
            for i in range(len(data)):
                lo, hi = data.offsets[i], data.offsets[i + 1]
                ids = torch.as_tensor(data.ids[lo:hi], dtype=torch.long)[None]
                answer = torch.as_tensor(data.targets[lo:hi] != IGNORE)
                s, t = student(input_ids=ids).logits[0, answer], teacher(input_ids=ids).logits[0, answer]
                kl = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True, reduction="sum")
                total, count = total + float(kl), count + int(answer.sum())
        return total / count

    before = divergence()
    config = make_config(tmp_path, task="causal_lm", method="distill", alpha=1.0, temperature=1.0)
    outcome = train_student(student, tokenizer, config, Reports(), teacher=teacher)
    assert outcome.losses[-1][1] < outcome.losses[0][1]
    assert divergence() < before / 4


def test_alpha_zero_gives_exactly_the_recovery_runs_losses(tmp_path, tiny_bert_dir, tokenizer):
    config = make_config(tmp_path, steps=20)
    plain = classifier(tiny_bert_dir, layers=1)
    recovery = train_student(plain, tokenizer, config, Reports())
    student = classifier(tiny_bert_dir, layers=1)
    distilled = train_student(
        student, tokenizer, make_config(tmp_path, steps=20, method="distill", alpha=0.0), Reports(),
        teacher=classifier(tiny_bert_dir),
    )  # fmt: skip
    assert distilled.losses == recovery.losses
    for (name, a), b in zip(plain.state_dict().items(), student.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_masks_keep_pruned_weights_at_exactly_zero_while_the_rest_learns(tmp_path, tiny_dir, tokenizer):
    model = causal(tiny_dir)
    generator = torch.Generator().manual_seed(0)
    masks = {  # as workers.compress.prune makes them: Linear module name → bool, True = keep
        name: torch.rand(m.weight.shape, generator=generator) > 0.5
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and ".layers." in name
    }
    before = {name: model.get_submodule(name).weight.detach().clone() for name in masks}
    config = make_config(tmp_path, task="causal_lm", steps=10, learning_rate=1e-2)
    outcome = train_student(model, tokenizer, config, Reports(), masks=masks)
    assert outcome.status == "succeeded" and len(masks) == 14
    for name, keep in masks.items():
        weight = model.get_submodule(name).weight
        assert torch.count_nonzero(weight[~keep]) == 0, name
        assert not torch.equal(weight[keep], before[name][keep]), name


def test_it_refuses_masks_that_do_not_fit_the_model(tmp_path, tiny_dir, tokenizer):
    model = causal(tiny_dir)
    masks = {"model.layers.0.mlp.up_proj": torch.ones(3, 3, dtype=torch.bool), "no.such.layer": torch.ones(1)}
    config = make_config(tmp_path, task="causal_lm", steps=1)
    with pytest.raises(CompressError) as caught:
        train_student(model, tokenizer, config, Reports(), masks=masks)
    assert "model.layers.0.mlp.up_proj is (3, 3), its weight (128, 64)" in str(caught.value)
    assert "no.such.layer is not a layer with a weight" in str(caught.value)


def test_a_stop_from_the_report_cancels_at_once(tmp_path, tiny_bert_dir, tokenizer):
    model = classifier(tiny_bert_dir)
    val = write_jsonl(tmp_path / "val.jsonl", classification_rows(6))
    reports = Reports(stop_at=10)
    outcome = train_student(model, tokenizer, make_config(tmp_path, validation_file=val), reports)
    assert outcome.status == "cancelled" and outcome.steps == 10
    assert [r["step"] for r in reports] == [10] and outcome.val_loss is None
    assert not model.training


def test_it_refuses_a_teacher_with_another_vocabulary(tmp_path, tiny_dir, tokenizer):
    student = causal(tiny_dir, layers=1)
    teacher = causal(tiny_dir)
    teacher.resize_token_embeddings(teacher.config.vocab_size + 8)
    config = make_config(tmp_path, task="causal_lm", method="distill")
    with pytest.raises(CompressError, match=r"vocabulary \(\d+\) differs from the teacher's \(\d+\)"):
        train_student(student, tokenizer, config, Reports(), teacher=teacher)


def test_it_refuses_a_classifier_teacher_with_another_label_count(tmp_path, tiny_bert_dir, tokenizer):
    teacher = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert_dir, num_labels=2, id2label={0: "a", 1: "b"}, label2id={"a": 0, "b": 1},
        ignore_mismatched_sizes=True,
    )  # fmt: skip
    with pytest.raises(CompressError, match="3 labels and the teacher 2"):
        train_student(classifier(tiny_bert_dir), tokenizer, make_config(tmp_path), Reports(), teacher=teacher)


def test_it_names_the_line_of_every_unknown_label_in_both_files(tmp_path, tiny_bert_dir, tokenizer):
    rows = classification_rows(6)
    rows[2]["label"] = "refunds"
    train = write_jsonl(tmp_path / "bad-train.jsonl", rows, blank_after=1)  # a blank line 2: row 3 is line 4
    val_rows = classification_rows(3)
    val_rows[0]["label"] = 7
    val = write_jsonl(tmp_path / "bad-val.jsonl", val_rows)
    config = make_config(tmp_path, train_file=train, validation_file=val)
    with pytest.raises(ConfigError) as caught:
        train_student(classifier(tiny_bert_dir), tokenizer, config, Reports())
    assert caught.value.problems["train_file"] == [
        "line 4: label 'refunds' is not one of billing, shipping, returns"
    ]
    assert caught.value.problems["validation_file"][0].startswith("line 1: label 7 ")


def test_it_reports_malformed_rows_as_configuration_problems(tmp_path, tiny_bert_dir, tokenizer):
    train = tmp_path / "broken.jsonl"
    train.write_text('{"text": "my invoice", "label": "billing"}\nnot json\n')
    with pytest.raises(ConfigError) as caught:
        train_student(
            classifier(tiny_bert_dir), tokenizer, make_config(tmp_path, train_file=str(train)), Reports()
        )
    assert caught.value.problems["train_file"][0].startswith("line 2: not JSON")


def test_instruction_rows_train_a_causal_lm_through_the_chat_template(tmp_path, tiny_dir, tokenizer):
    rows = [{"instruction": f"Answer question {i}.", "output": "It ships today."} for i in range(16)]
    config = make_config(tmp_path, task="causal_lm", rows=rows, data_task="instruction", steps=20)
    outcome = train_student(causal(tiny_dir), tokenizer, config, Reports())
    assert outcome.status == "succeeded" and outcome.tokens > 0
    assert outcome.losses[-1][1] < outcome.losses[0][1]


def test_it_refuses_a_label_list_that_does_not_fit_the_classifier_head(tmp_path, tiny_bert_dir, tokenizer):
    config = make_config(tmp_path, labels=["billing", "shipping"])
    with pytest.raises(ConfigError) as caught:
        train_student(classifier(tiny_bert_dir), tokenizer, config, Reports())
    assert caught.value.problems == {"labels": ["2 labels given; the model classifies into 3"]}
