"""Structured pruning and students on the tiny causal LM (Llama, GQA) and the tiny BERT classifier."""

import pytest
import torch

from workers.compress.config import CompressError
from workers.compress.structure import (
    calibration_batches,
    from_pretrained,
    make_student,
    parameter_count,
    prune_heads,
    prune_mlp,
)

TEXTS = ["where is my parcel", "I want a refund for the broken phone", "my invoice is wrong", "hello"] * 2


@pytest.fixture
def calibration(tiny_dir):
    from transformers import AutoTokenizer

    return calibration_batches(AutoTokenizer.from_pretrained(tiny_dir), TEXTS, max_len=16, batch_size=3)


@pytest.fixture
def inputs(calibration):
    return calibration[0]


def reloaded(model, path, kind: str):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    model.save_pretrained(path)
    cls = AutoModelForCausalLM if kind == "causal" else AutoModelForSequenceClassification
    return from_pretrained(cls, path).eval()


def same_logits(a, b, inputs) -> bool:
    with torch.no_grad():
        return torch.equal(a(**inputs).logits, b(**inputs).logits)


def test_calibration_batches_are_padded_batches_of_the_texts(calibration):
    assert [len(b["input_ids"]) for b in calibration] == [3, 3, 2]
    assert all(set(b) == {"input_ids", "attention_mask"} for b in calibration)
    assert all(b["input_ids"].shape[1] <= 16 for b in calibration)
    assert int(calibration[0]["attention_mask"].sum()) < calibration[0]["attention_mask"].numel()  # padded


@pytest.mark.parametrize("use_calibration", [False, True])
def test_head_pruning_removes_whole_kv_groups_and_reloads_identically(
    causal, calibration, inputs, tmp_path, use_calibration
):
    before = parameter_count(causal)
    details = prune_heads(causal, 0.5, calibration if use_calibration else None)
    # 2 layers × one of 2 KV groups: 2 query heads (q and o: 16 × 64 each) and 1 KV head (k and v: 16 × 64)
    assert before - parameter_count(causal) == 2 * (2 * 2 * 16 * 64 + 2 * 16 * 64)
    assert details["unit"] == "key/value groups" and details["sparsity_reached"] == 0.5
    assert details["importance"] == ("activation" if use_calibration else "weight_norm")
    assert all(len(gone) == 1 for gone in details["removed_per_layer"].values())
    c = causal.config
    assert (c.num_attention_heads, c.num_key_value_heads, c.head_dim) == (2, 1, 16)
    again = reloaded(causal, tmp_path, "causal")
    assert same_logits(causal, again, inputs)
    prompt = {k: v[:1] for k, v in inputs.items()}
    tokens = again.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert tokens.shape[1] == prompt["input_ids"].shape[1] + 4


def test_activation_and_weight_importance_can_choose_differently(tiny_dir, calibration):
    from transformers import AutoModelForCausalLM

    chosen = set()
    for data in (None, calibration):
        model = AutoModelForCausalLM.from_pretrained(tiny_dir)
        gone = prune_mlp(model, 0.5, data)
        chosen.add(tuple(model.model.layers[0].mlp.down_proj.weight[0, :4].tolist()))
        assert gone["kept_per_layer"] == 64
    assert len(chosen) == 2


def test_mlp_pruning_shrinks_every_layer_and_the_model_still_generates(causal, inputs, tmp_path):
    before = parameter_count(causal)
    details = prune_mlp(causal, 0.25)
    assert causal.config.intermediate_size == 96
    assert before - parameter_count(causal) == 2 * 3 * 32 * 64  # gate and up rows, down columns
    assert details["sparsity_reached"] == 0.25
    assert details["parameter_share_removed"] == pytest.approx((before - parameter_count(causal)) / before)
    again = reloaded(causal, tmp_path, "causal")
    assert same_logits(causal, again, inputs)
    assert (tmp_path / "model.safetensors").stat().st_size < 4 * before


def test_bert_head_pruning_reloads_through_the_recorded_heads(bert, calibration, inputs, tmp_path):
    from transformers import AutoModelForSequenceClassification

    before = parameter_count(bert)
    details = prune_heads(bert, 0.5, calibration)
    # 2 layers × 2 heads of 16: q, k, v rows (16 × 64 + 16 bias each) and attention.output columns (64 × 16)
    assert before - parameter_count(bert) == 2 * 2 * (3 * (16 * 64 + 16) + 64 * 16)
    assert details["unit"] == "attention heads"
    assert bert.config.pruned_heads == {str(i): heads for i, heads in details["removed_per_layer"].items()}
    again = reloaded(bert, tmp_path, "bert")
    assert same_logits(bert, again, inputs)
    with pytest.raises(RuntimeError):  # a plain loader refuses rather than loading wrong shapes
        AutoModelForSequenceClassification.from_pretrained(tmp_path)


def test_pruning_bert_heads_twice_keeps_the_original_numbering(bert, inputs, tmp_path):
    prune_heads(bert, 0.25)
    prune_heads(bert, 0.34)  # 3 heads left -> 2
    assert all(len(gone) == 2 for gone in bert.config.pruned_heads.values())
    assert same_logits(bert, reloaded(bert, tmp_path, "bert"), inputs)


def test_bert_mlp_pruning_reloads_identically_and_still_classifies(bert, inputs, tmp_path):
    details = prune_mlp(bert, 0.5)
    assert bert.config.intermediate_size == 64 and details["removed_per_layer"] == {0: 64, 1: 64}
    again = reloaded(bert, tmp_path, "bert")
    assert same_logits(bert, again, inputs)
    with torch.no_grad():
        assert again(**inputs).logits.shape == (3, 3)


def test_it_refuses_a_sparsity_that_removes_nothing_or_everything(causal, bert):
    with pytest.raises(CompressError, match="2 key/value groups"):
        prune_heads(causal, 0.2)
    with pytest.raises(CompressError, match="between 0 and 1"):
        prune_mlp(bert, 1.0)


@pytest.mark.parametrize("use_calibration", [False, True])
def test_a_narrow_shallow_bert_student_has_at_most_half_the_parameters(
    bert, calibration, inputs, tmp_path, use_calibration
):
    teacher = parameter_count(bert)
    student = make_student(
        bert, layers=1, hidden_size=32, calibration=calibration if use_calibration else None
    )
    assert parameter_count(bert) == teacher  # the teacher is untouched
    assert parameter_count(student) <= teacher / 2
    c = student.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads) == (1, 32, 2)
    assert student.bert.embeddings.word_embeddings.weight.shape[1] == 32
    again = reloaded(student, tmp_path, "bert")
    assert type(again).from_pretrained(tmp_path) is not None  # a plain loader takes it too
    assert same_logits(student.eval(), again, inputs)


def test_a_llama_student_keeps_first_and_last_layers_and_renumbers_them():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=5,
                         num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    teacher = LlamaForCausalLM(config).eval()
    student = make_student(teacher, layers=3).eval()
    assert len(teacher.model.layers) == 5  # untouched
    for kept, original in zip(student.model.layers, (0, 2, 4), strict=True):
        assert torch.equal(kept.mlp.down_proj.weight, teacher.model.layers[original].mlp.down_proj.weight)
    assert [layer.self_attn.layer_idx for layer in student.model.layers] == [0, 1, 2]
    prompt = torch.tensor([[1, 5, 7, 9]])
    with_cache = student.generate(prompt, max_new_tokens=5, do_sample=False)
    without = student.generate(prompt, max_new_tokens=5, do_sample=False, use_cache=False)
    assert torch.equal(with_cache, without)


def test_a_narrow_llama_student_reloads_identically_and_generates(tiny_dir, inputs, tmp_path):
    from transformers import AutoModelForCausalLM

    teacher = AutoModelForCausalLM.from_pretrained(tiny_dir)
    student = make_student(teacher, layers=1, intermediate_size=64, heads=1, hidden_size=32)
    c = student.config
    assert (c.num_hidden_layers, c.hidden_size, c.intermediate_size) == (1, 32, 64)
    assert (c.num_key_value_heads, c.num_attention_heads, c.head_dim) == (1, 2, 16)
    assert student.lm_head.weight.shape == (c.vocab_size, 32)
    assert parameter_count(student) < parameter_count(teacher) / 2
    again = reloaded(student, tmp_path, "causal")
    assert same_logits(student.eval(), again, inputs)
    prompt = {k: v[:1] for k, v in inputs.items()}
    assert (
        again.generate(**prompt, max_new_tokens=3, do_sample=False).shape[1]
        == prompt["input_ids"].shape[1] + 3
    )


def test_it_refuses_a_student_bigger_than_its_teacher_or_with_mismatched_bert_heads(bert, causal):
    with pytest.raises(CompressError, match="layers must be between 1 and 2"):
        make_student(causal, layers=3)
    with pytest.raises(CompressError, match="hidden size / 16"):
        make_student(bert, hidden_size=32, heads=3)
