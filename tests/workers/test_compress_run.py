"""compress() from a source folder to a reloadable result, for every method on the tiny LM and the MiniLM-shaped
tiny BERT: the size shrinks where it should, the sparsity reached matches the request, the result reloads through
load_model and still answers, a "stop" ends the run without a model."""

import json

import pytest
import torch

from workers.compress import CompressConfig, compress, load_model
from workers.compress.measure import count_parameters
from workers.compress.structure import parameter_count

LABELS = ["billing", "shipping", "returns"]
CUES = {"billing": "invoice charge refund payment", "shipping": "parcel courier tracking delivery",
        "returns": "return exchange broken replace"}  # fmt: skip
TEXTS = ["where is my parcel", "I was charged twice", "the screen is broken, I want to return it",
         "invoice for March please", "courier lost my delivery", "exchange the shoes"]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    with open(folder / "labels.jsonl", "w") as f:
        for i in range(48):
            label = LABELS[i % 3]
            words = CUES[label].split()
            f.write(
                json.dumps({"text": f"{words[i % 4]} {words[(i + 1) % 4]} order {i}", "label": label}) + "\n"
            )
    with open(folder / "chat.jsonl", "w") as f:
        for i in range(24):
            messages = [{"role": "user", "content": f"Where is order {i}?"},
                        {"role": "assistant", "content": f"Order {i} ships in {i % 5 + 1} days."}]  # fmt: skip
            f.write(json.dumps({"messages": messages}) + "\n")
    return folder


def _classify(path, texts=TEXTS) -> torch.Tensor:
    model, tokenizer = load_model(str(path), "classification", device="cpu")
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits


def _next_tokens(path) -> torch.Tensor:
    model, tokenizer = load_model(str(path), "causal_lm", device="cpu")
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits[:, -1].argmax(-1)


def _run(source, tmp_path, method, task, report=None, **settings):
    config = CompressConfig(method=method, model_path=str(source), output_dir=str(tmp_path / method),
                            task=task, **settings)  # fmt: skip
    return compress(config, report) if report else compress(config)


def test_int8_dynamic_makes_a_smaller_quantised_folder_that_reloads_and_mostly_agrees(
    tiny_bert_dir, tmp_path
):
    result = _run(tiny_bert_dir, tmp_path, "int8_dynamic", "classification")
    assert result.status == "succeeded" and result.format == "quantized"
    assert result.size_after < 0.5 * result.size_before
    assert result.parameters_after == result.parameters_before  # quantised weights still count once each
    before, after = _classify(tiny_bert_dir), _classify(result.model_path)
    assert (before.argmax(-1) == after.argmax(-1)).float().mean() >= 5 / 6
    assert json.loads((tmp_path / "int8_dynamic" / "result.json").read_text())["format"] == "quantized"


def test_magnitude_pruning_with_recovery_keeps_the_requested_zeros_in_the_saved_model(
    tiny_bert_dir, tmp_path, data
):
    result = _run(tiny_bert_dir, tmp_path, "prune_magnitude", "classification", sparsity=0.4, steps=8,
                  batch_size=8, train_file=str(data / "labels.jsonl"))  # fmt: skip
    assert result.sparsity_requested == 0.4 and result.sparsity_reached == pytest.approx(0.4, abs=0.005)
    assert [step for step, _ in result.train_losses][-1] == 8
    model, _ = load_model(result.model_path, "classification", device="cpu")
    from workers.compress.prune import prunable_linears

    weights = [m.weight for m in prunable_linears(model).values()]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(0.4, abs=0.005)


def test_2_4_pruning_then_int8_gives_a_quantised_folder_that_reloads(tiny_bert_dir, tmp_path):
    result = _run(tiny_bert_dir, tmp_path, "prune_2_4", "classification", then_int8=True)
    assert result.sparsity_reached == pytest.approx(0.5) and result.format == "quantized"
    assert result.size_after < result.size_before
    assert _classify(result.model_path).shape == (len(TEXTS), 3)


def test_head_pruning_physically_shrinks_a_bert_and_the_folder_reloads(tiny_bert_dir, tmp_path):
    result = _run(tiny_bert_dir, tmp_path, "prune_heads", "classification", sparsity=0.5)
    assert result.sparsity_reached == 0.5 and result.parameters_after < result.parameters_before
    assert result.size_after < result.size_before
    model, _ = load_model(result.model_path, "classification", device="cpu")
    assert parameter_count(model) == result.parameters_after
    assert _classify(result.model_path).shape == (len(TEXTS), 3)


def test_mlp_pruning_of_the_causal_lm_shrinks_it_and_it_still_generates(tiny_dir, tmp_path):
    result = _run(tiny_dir, tmp_path, "prune_mlp", "causal_lm", sparsity=0.5)
    config = json.loads((tmp_path / "prune_mlp" / "model" / "config.json").read_text())
    assert config["intermediate_size"] == 64 and result.sparsity_reached == 0.5
    assert result.parameters_after < result.parameters_before
    model, tokenizer = load_model(result.model_path, "causal_lm", device="cpu")
    out = model.generate(**tokenizer(["hello"], return_tensors="pt"), max_new_tokens=4, do_sample=False)
    assert out.shape[1] > 1


def test_the_unpruned_source_can_teach_the_recovery(tiny_bert_dir, tmp_path, data):
    def losses(name, **teacher):
        result = _run(tiny_bert_dir, tmp_path / name, "prune_mlp", "classification", sparsity=0.5, steps=10,
                      batch_size=8, train_file=str(data / "labels.jsonl"), temperature=2.0, **teacher)  # fmt: skip
        assert "_teacher" not in result.details  # the teacher is not part of the written result
        return [loss for _, loss in result.train_losses]

    labels_only = losses("labels")
    # alpha 0: the source runs as the teacher but weighs nothing, so the losses are the labels-only run's
    assert losses("alpha0", recovery_teacher=True, alpha=0.0) == labels_only
    # alpha 1: the loss is the KL to the source's predictions alone
    taught = losses("alpha1", recovery_teacher=True, alpha=1.0)
    assert taught != labels_only and all(loss >= 0 for loss in taught)


def test_distillation_into_a_narrow_copy_keeps_at_most_half_the_parameters(tiny_bert_dir, tmp_path, data):
    result = _run(tiny_bert_dir, tmp_path, "distill", "classification", student_hidden_size=32, steps=10,
                  batch_size=8, train_file=str(data / "labels.jsonl"), temperature=2.0, alpha=0.5)  # fmt: skip
    assert result.parameters_after <= 0.5 * result.parameters_before
    assert result.details["student"]["hidden_size"] == 32 and len(result.train_losses) >= 1
    model, _ = load_model(result.model_path, "classification", device="cpu")
    assert count_parameters(model) == result.parameters_after and model.config.hidden_size == 32


def test_distillation_of_the_causal_lm_into_one_layer_then_int8(tiny_dir, tmp_path, data):
    result = _run(tiny_dir, tmp_path, "distill", "causal_lm", student_layers=1, steps=4, batch_size=4,
                  train_file=str(data / "chat.jsonl"), then_int8=True)  # fmt: skip
    assert result.format == "quantized" and result.details["student"]["layers"] == 1
    assert _next_tokens(result.model_path).shape == (len(TEXTS),)


def test_a_stop_answer_cancels_the_run_and_writes_no_model(tiny_bert_dir, tmp_path, data):
    seen = []

    def report(step=None, **metrics):
        seen.append(metrics.get("message") or step)
        return "stop" if len(seen) >= 3 else None

    result = _run(tiny_bert_dir, tmp_path, "prune_mlp", "classification", report=report, sparsity=0.5, steps=50,
                  batch_size=8, train_file=str(data / "labels.jsonl"))  # fmt: skip
    assert result.status == "cancelled"
    assert not (tmp_path / "prune_mlp" / "model").exists()


def test_the_plain_loaders_refuse_a_quantised_folder_instead_of_filling_it_with_random_weights(
    tiny_bert_dir, tiny_dir, tmp_path
):
    from workers.classify import ClassifyError, load_classifier
    from workers.generate import GenerateError, load_causal

    bert = _run(tiny_bert_dir, tmp_path / "bert", "int8_dynamic", "classification")
    with pytest.raises(ClassifyError, match="is quantised: load it with workers.compress.load_model"):
        load_classifier(bert.model_path)
    llama = _run(tiny_dir, tmp_path / "llama", "int8_dynamic", "causal_lm")
    with pytest.raises(GenerateError, match="is quantised"):
        load_causal(llama.model_path)


def test_distillation_into_a_smaller_registered_base_gives_it_the_teachers_labels(
    tiny_bert_dir, tmp_path, data
):
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    small = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64, max_position_embeddings=256)  # fmt: skip
    student_dir = tmp_path / "student"
    BertModel(small).save_pretrained(student_dir, safe_serialization=True)  # a plain encoder, as MiniLM ships
    tokenizer.save_pretrained(student_dir)
    result = _run(tiny_bert_dir, tmp_path, "distill", "classification", student_path=str(student_dir), steps=6,
                  batch_size=8, train_file=str(data / "labels.jsonl"))  # fmt: skip
    assert result.details["student"]["path"] == str(student_dir)
    model, _ = load_model(result.model_path, "classification", device="cpu")
    assert list(model.config.id2label.values()) == LABELS and model.config.num_hidden_layers == 1
    assert result.parameters_after < 0.5 * result.parameters_before
