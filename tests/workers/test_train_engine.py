"""The fine-tuning engine on the tiny model: it learns, saves what it learned, stops when told, packs safely."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

import workers.train.loop as loop
from workers.tiny import CHAT_TEMPLATE
from workers.train import TrainConfig, TrainError, train
from workers.train.data import IGNORE, StepPlan, collate, read_records, tokenize
from workers.train.demo import records, write_demo_data
from workers.train.methods import packing_is_exact
from workers.train.steps import LogitSelector, token_losses

METRICS = {
    "train_loss",
    "lr",
    "grad_norm",
    "tokens_per_s",
    "tokens_seen",
    "memory_mb",
    "epoch",
    "progress",
    "eta_s",
}


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    return AutoTokenizer.from_pretrained(tiny_dir)


def make_config(tmp_path, tiny_dir, task="chat", n_train=24, n_val=6, **overrides) -> TrainConfig:
    files = write_demo_data(tmp_path / f"data-{task}", task, n_train, n_val)
    fields = {
        "base_model_path": str(tiny_dir),
        "output_dir": str(tmp_path / "run"),
        "task": task,
        "max_seq_len": 256,
        "batch_size": 4,
        "lr": 1e-2,
        "max_steps": 6,
        "lora_dropout": 0.0,
    }
    return TrainConfig(**(fields | files | overrides))


class Reports(list):
    """A report callback that remembers every call and can answer "stop" at a given step."""

    def __init__(self, stop_at: int | None = None):
        super().__init__()
        self.stop_at = stop_at

    def __call__(self, step, **metrics):
        self.append({"step": step, **metrics})
        return "stop" if step == self.stop_at else None


def val_examples(cfg: TrainConfig, tokenizer):
    return tokenize(read_records(cfg.validation_file, cfg.task, "v"), tokenizer, cfg.task, cfg.max_seq_len)


@torch.no_grad()
def plain_val_loss(model, data, virtual: int = 0) -> float:
    """Mean target-token loss, one example at a time with a plain forward: independent of the engine's batching."""
    model.eval()
    total, count = 0.0, 0
    for i in range(len(data)):
        lo, hi = data.offsets[i], data.offsets[i + 1]
        ids = torch.as_tensor(data.ids[lo:hi], dtype=torch.long)[None]
        targets = torch.as_tensor(data.targets[lo:hi], dtype=torch.long)
        logits = model(input_ids=ids).logits[0, virtual:]
        total += float(F.cross_entropy(logits.float(), targets, ignore_index=IGNORE, reduction="sum"))
        count += int((targets != IGNORE).sum())
    return total / count


def test_lora_on_chat_lowers_the_loss_and_reports_every_step(tmp_path, tiny_dir):
    reports = Reports()
    cfg = make_config(tmp_path, tiny_dir, max_steps=12, eval_every=4, lr=2e-2, target_modules=["all-linear"])
    result = train(cfg, reports)
    assert result.status == "succeeded" and result.final_step == 12 and result.layout == "packed"
    assert [r["step"] for r in reports] == list(range(1, 13))
    assert all(set(r) >= METRICS for r in reports)
    assert [r["step"] for r in reports if "val_loss" in r] == [4, 8, 12]
    losses = [r["train_loss"] for r in reports]
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.1
    assert result.val_losses[-1][1] < result.val_losses[0][1]
    assert reports[-1]["progress"] == 1.0 and reports[-1]["eta_s"] == 0.0
    assert reports[0]["lr"] > 0 and reports[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine to 0
    assert result.tokens_seen == reports[-1]["tokens_seen"] > 0
    saved = json.loads(Path(result.result_path).read_text())
    assert saved["final_step"] == 12 and saved["best_step"] == result.best_step
    assert saved["adapter_path"] == str(tmp_path / "run" / "adapter")


@pytest.mark.parametrize("method", ["lora", "prefix", "prompt", "ia3", "full"])
def test_each_method_trains_and_its_saved_weights_give_the_reported_loss(
    tmp_path, tiny_dir, tokenizer, method
):
    cfg = make_config(
        tmp_path, tiny_dir, method=method, num_virtual_tokens=4, lr=1e-3 if method == "full" else 1e-2
    )
    result = train(cfg)
    assert result.weights == "best" and result.best_step == 6
    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    data = val_examples(cfg, tokenizer)
    base_loss = plain_val_loss(base, data)
    if method == "full":
        assert result.adapter_path is None
        reloaded = AutoModelForCausalLM.from_pretrained(result.model_path, trust_remote_code=False)
    else:
        names = {p.name for p in Path(result.adapter_path).iterdir()}
        assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json"} <= names
        reloaded = PeftModel.from_pretrained(base, result.adapter_path)
    loss = plain_val_loss(reloaded, data, virtual=4 if method == "prompt" else 0)
    assert loss == pytest.approx(result.val_loss, rel=1e-5)
    assert abs(loss - base_loss) > 1e-4  # training changed what the model says


def test_merged_weights_equal_base_plus_adapter_and_fgm_leaves_the_frozen_base_untouched(
    tmp_path, tiny_dir, tokenizer
):
    cfg = make_config(
        tmp_path,
        tiny_dir,
        merge_weights=True,
        fgm_epsilon=0.5,
        target_modules=["q_proj", "v_proj", "down_proj"],
    )
    result = train(cfg)
    merged = AutoModelForCausalLM.from_pretrained(result.model_path)
    assert plain_val_loss(merged, val_examples(cfg, tokenizer)) == pytest.approx(result.val_loss, rel=1e-4)
    base, mine = (
        load_file(Path(tiny_dir) / "model.safetensors"),
        load_file(Path(result.model_path) / "model.safetensors"),
    )
    assert torch.equal(base["model.embed_tokens.weight"], mine["model.embed_tokens.weight"])
    assert not torch.equal(
        base["model.layers.0.self_attn.q_proj.weight"], mine["model.layers.0.self_attn.q_proj.weight"]
    )
    assert not [p for p in Path(result.model_path).iterdir() if p.suffix in (".bin", ".pt", ".pkl")]


@pytest.mark.parametrize("method", ["lora", "prompt"])
def test_classification_learns_the_labels(tmp_path, tiny_dir, method):
    cfg = make_config(
        tmp_path,
        tiny_dir,
        task="classification",
        method=method,
        num_virtual_tokens=4,
        n_train=36,
        max_steps=20,
        eval_every=10,
        lr=2e-2,
        label_smoothing=0.05,
    )
    reports = Reports()
    result = train(cfg, reports)
    assert result.labels == ["complaint", "praise", "question"]
    assert result.layout == "padded"
    assert np.mean([r["train_loss"] for r in reports[-4:]]) < np.mean([r["train_loss"] for r in reports[:4]])
    assert result.val_accuracy is not None and result.val_accuracy > 0.5
    assert "val_accuracy" in reports[-1]
    base = AutoModelForSequenceClassification.from_pretrained(
        tiny_dir, num_labels=3, id2label=dict(enumerate(result.labels)), pad_token_id=0
    )
    model = PeftModel.from_pretrained(base, result.adapter_path).eval()
    rows = records("classification", 36 + 6)[36:]
    tok = AutoTokenizer.from_pretrained(result.adapter_path)
    with torch.no_grad():  # one example at a time: no padding at all
        logits = torch.cat([model(**tok(r["text"], return_tensors="pt")).logits for r in rows])
    truth = torch.tensor([result.labels.index(r["label"]) for r in rows])
    assert float(F.cross_entropy(logits, truth)) == pytest.approx(result.val_loss, rel=1e-4)
    assert float((logits.argmax(-1) == truth).float().mean()) == pytest.approx(result.val_accuracy)


def test_chat_examples_learn_only_what_the_assistant_says(tokenizer):
    chat = {"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is my order?"},
        {"role": "assistant", "content": "It ships today."}, {"role": "user", "content": "谢谢"},
        {"role": "assistant", "content": "不客气！"},
    ]}  # fmt: skip
    data = tokenize([chat], tokenizer, "chat", 512)
    assert (
        tokenizer.decode(data.targets[data.targets != IGNORE])
        == "It ships today.<|im_end|>不客气！<|im_end|>"
    )
    tokenizer = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    tokenizer.chat_template = CHAT_TEMPLATE.replace("{%- generation -%}", "").replace(
        "{%- endgeneration -%}", ""
    )
    fallback = tokenize([chat], tokenizer, "chat", 512)  # no {% generation %}: masked by rendering prefixes
    learned = tokenizer.decode(fallback.targets[fallback.targets != IGNORE])
    assert "It ships today.<|im_end|>" in learned and "不客气！<|im_end|>" in learned
    assert "order" not in learned and "brief" not in learned and "谢谢" not in learned


def test_instruction_examples_learn_only_the_output_with_or_without_a_chat_template(tokenizer):
    row = {"instruction": "Answer briefly.", "input": "Where is my order?", "output": "It ships today."}
    with_template = tokenize([row], tokenizer, "instruction", 512)
    assert (
        tokenizer.decode(with_template.targets[with_template.targets != IGNORE])
        == "It ships today.<|im_end|>"
    )
    assert "Answer briefly.\n\nWhere is my order?" in tokenizer.decode(with_template.ids)
    plain = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    plain.chat_template = None
    data = tokenize([row], plain, "instruction", 512)
    assert plain.decode(data.targets[data.targets != IGNORE]) == "It ships today.<|endoftext|>"
    assert plain.decode(data.ids).startswith(
        "### Instruction:\nAnswer briefly.\n\n### Input:\nWhere is my order?"
    )


def test_an_instruction_run_trains_through_the_chat_template(tmp_path, tiny_dir):
    result = train(make_config(tmp_path, tiny_dir, task="instruction", max_steps=3))
    assert result.status == "succeeded" and result.examples == {"train": 24, "validation": 6, "dropped": 0}


@pytest.mark.parametrize("layout", ["packed", "varlen", "padded"])
def test_batching_never_lets_examples_attend_to_each_other(tiny_dir, tokenizer, layout):
    model = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    data = tokenize(records("chat", 12), tokenizer, "chat", 512)
    assert len(set(data.lengths.tolist())) > 4
    selector = LogitSelector(model)
    with torch.no_grad():
        alone = [
            float(token_losses(model, collate(data, [i], 0, "padded"), virtual=0, selector=selector).mean())
            for i in range(len(data))
        ]
        batch = collate(data, np.arange(len(data)), tokenizer.pad_token_id, layout)
        losses = token_losses(model, batch, virtual=0, selector=selector)
    together = torch.zeros(len(data)).index_add_(0, batch.target_example, losses)
    together /= torch.bincount(batch.target_example, minlength=len(data))
    assert together.tolist() == pytest.approx(alone, abs=1e-5)
    if layout != "padded":
        assert batch.attention_mask is None
        width = batch.input_ids.shape[1]
        assert width == (data.lengths.sum() if layout == "varlen" else data.lengths.max())
        leaky = batch.position_ids.flatten().cumsum(
            0
        )  # positions that never restart: examples see each other
        batch.position_ids = torch.arange(leaky.numel()).view_as(batch.position_ids) % width
        with torch.no_grad():
            leaked = token_losses(model, batch, virtual=0, selector=selector)
        assert not torch.allclose(leaked, losses, atol=1e-3)  # the comparison above can see a leak


class AllVisible(torch.nn.Module):
    """A model that lets the whole row attend causally, as one that ignored restarting positions would."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()

    def forward(self, input_ids, **kwargs):
        return self.model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)


def test_packing_is_used_only_where_the_model_keeps_examples_apart(tmp_path, tiny_dir, monkeypatch):
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    assert packing_is_exact(model, torch.device("cpu"))
    assert packing_is_exact(model.to(torch.bfloat16), torch.device("cpu"))
    assert not packing_is_exact(AllVisible(model), torch.device("cpu"))
    monkeypatch.setattr(loop, "packing_is_exact", lambda model, device: False)
    assert train(make_config(tmp_path, tiny_dir, max_steps=2)).layout == "padded"


def test_padded_batches_are_grouped_by_length_and_cover_each_example_once_per_epoch(tokenizer):
    data = tokenize(records("chat", 400), tokenizer, "chat", 512)

    def padding(grouped: bool) -> int:
        plan = StepPlan(data.lengths, batch_size=8, grad_accum=1, world=1, seed=3, grouped=grouped)
        seen = np.concatenate([plan.step_examples(0, s) for s in range(plan.steps_per_epoch)])
        assert sorted(seen.tolist()) == list(range(400))
        return sum(int(data.lengths[b].max()) * len(b) - int(data.lengths[b].sum())
                   for s in range(plan.steps_per_epoch) for b in plan.batches(0, s))  # fmt: skip

    assert padding(grouped=True) < padding(grouped=False) / 3
    again = StepPlan(data.lengths, batch_size=8, grad_accum=1, world=1, seed=3, grouped=True)
    other_epoch = [again.step_examples(1, s).tolist() for s in range(again.steps_per_epoch)]
    assert other_epoch != [again.step_examples(0, s).tolist() for s in range(again.steps_per_epoch)]


def test_early_stopping_fires_and_keeps_the_best_weights(tmp_path, tiny_dir, tokenizer):
    cfg = make_config(
        tmp_path,
        tiny_dir,
        max_steps=20,
        eval_every=1,
        early_stopping_patience=2,
        early_stopping_min_delta=100.0,
    )
    reports = Reports()
    result = train(cfg, reports)
    assert result.stopped_early and result.final_step == 3 and reports[-1]["step"] == 3
    assert result.best_step == 1 and result.weights == "best"
    assert [s for s, _ in result.val_losses] == [1, 2, 3]
    assert json.loads((tmp_path / "run" / "best" / "best.json").read_text())["step"] == 1
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_dir), result.adapter_path)
    assert plain_val_loss(reloaded, val_examples(cfg, tokenizer)) == pytest.approx(
        result.val_losses[0][1], rel=1e-5
    )


def test_stop_from_the_report_saves_a_checkpoint_and_returns_cancelled(tmp_path, tiny_dir):
    result = train(make_config(tmp_path, tiny_dir), Reports(stop_at=2))
    assert result.status == "cancelled" and result.final_step == 2
    assert result.checkpoint_path == str(tmp_path / "run" / "checkpoints" / "step-00000002")
    assert json.loads((tmp_path / "run" / "result.json").read_text())["status"] == "cancelled"
    assert not (tmp_path / "run" / "adapter").exists()


def test_out_of_memory_becomes_a_train_error_with_a_hint(tmp_path, tiny_dir, monkeypatch):
    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(loop, "token_losses", oom)
    with pytest.raises(TrainError, match="smaller batch_size.*gradient_checkpointing.*LoRA"):
        train(make_config(tmp_path, tiny_dir))


def test_gradient_checkpointing_gives_the_same_run(tmp_path, tiny_dir):
    plain = train(make_config(tmp_path / "a", tiny_dir, max_steps=3))
    checkpointed = train(make_config(tmp_path / "b", tiny_dir, max_steps=3, gradient_checkpointing=True))
    assert np.allclose(checkpointed.train_losses, plain.train_losses, rtol=1e-5, atol=0)
