"""Classifier predictions and saliency on a tiny sequence classifier built from the tiny Llama, full and adapter."""

import json
import shutil

import pytest
import torch

from workers.classify import ClassifyError, classify, load_classifier, saliency

LABELS = ["negative", "neutral", "positive"]
TEXTS = [
    "the parcel arrived broken and late",
    "ok",
    "",
    "absolutely wonderful service, thank you so much for the quick help",
    "it is a phone",
    "terrible",
    "fine i guess, nothing special about it at all really",
]


def head_kwargs(tokenizer) -> dict:
    return {
        "num_labels": len(LABELS),
        "id2label": dict(enumerate(LABELS)),
        "label2id": {name: i for i, name in enumerate(LABELS)},
        "pad_token_id": tokenizer.pad_token_id
        if tokenizer.pad_token_id is not None
        else tokenizer.eos_token_id,
    }


def build_classifier(tiny_dir, out, arch: str):
    """A random classifier over the tiny tokenizer: the tiny Llama with a ``score`` head (causal, rotary
    positions), or a tiny BERT (bidirectional, absolute positions: the MiniLM family), saved as safetensors."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
    )

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    if arch == "llama":
        model = AutoModelForSequenceClassification.from_pretrained(tiny_dir, **head_kwargs(tokenizer))
        with torch.no_grad():
            model.score.weight.normal_(0, 1.0)  # a head that tells the labels apart
    else:
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=256,
            **head_kwargs(tokenizer),
        )
        model = BertForSequenceClassification(config)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def classifier_dir(tiny_dir, tmp_path_factory):
    return build_classifier(tiny_dir, tmp_path_factory.mktemp("classifier") / "model", "llama")


@pytest.fixture(scope="module", params=["llama", "bert"])
def loaded(request, tiny_dir, classifier_dir, tmp_path_factory):
    if request.param == "llama":
        return load_classifier(str(classifier_dir), device="cpu")
    folder = build_classifier(tiny_dir, tmp_path_factory.mktemp("bert") / "model", "bert")
    return load_classifier(str(folder), device="cpu")


def test_it_classifies_in_input_order_with_probabilities_per_label(loaded):
    model, tokenizer = loaded
    seen = []
    results = classify(model, tokenizer, TEXTS, max_batch_size=3, progress=lambda *a: seen.append(a))
    assert len(results) == len(TEXTS)
    for text, result in zip(TEXTS, results, strict=True):
        assert list(result.probs) == LABELS
        assert sum(result.probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert result.label == max(result.probs, key=result.probs.get)
        assert result.tokens == max(1, len(tokenizer(text)["input_ids"]))
    assert seen == [(3, 7), (6, 7), (7, 7)]
    assert len({r.label for r in results}) > 1  # the head is not constant


def test_batched_predictions_equal_one_text_at_a_time(loaded):
    model, tokenizer = loaded
    batched = classify(model, tokenizer, TEXTS, max_batch_size=32)
    single = [classify(model, tokenizer, [text])[0] for text in TEXTS]
    for one, other in zip(batched, single, strict=True):
        assert one.label == other.label
        assert torch.allclose(
            torch.tensor(list(one.probs.values())), torch.tensor(list(other.probs.values())), atol=1e-5
        )


def test_truncation_caps_the_tokens_read(loaded):
    model, tokenizer = loaded
    assert classify(model, tokenizer, [TEXTS[3]], max_length=4)[0].tokens == 4
    assert classify(model, tokenizer, []) == []


def test_saliency_gives_one_normalised_score_per_token_and_depends_on_the_label(loaded):
    model, tokenizer = loaded
    text = TEXTS[0]
    ids = tokenizer(text)["input_ids"]
    negative = saliency(model, tokenizer, text, label="negative")
    positive = saliency(model, tokenizer, text, label="positive")
    assert [token for token, _ in negative] == tokenizer.convert_ids_to_tokens(ids)
    assert max(abs(score) for _, score in negative) == pytest.approx(1.0)
    assert max(abs(score) for _, score in positive) == pytest.approx(1.0)
    assert not torch.allclose(torch.tensor([s for _, s in negative]), torch.tensor([s for _, s in positive]))
    predicted = classify(model, tokenizer, [text])[0].label
    assert saliency(model, tokenizer, text) == saliency(model, tokenizer, text, label=predicted)
    assert all(p.grad is None for p in model.parameters())


def test_saliency_rejects_an_unknown_label(loaded):
    model, tokenizer = loaded
    with pytest.raises(ClassifyError, match="unknown label 'angry'"):
        saliency(model, tokenizer, "hello", label="angry")


def test_an_adapter_over_the_causal_base_loads_merged_with_its_labels(tiny_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_dir, **head_kwargs(tokenizer))
    lora = LoraConfig(
        task_type="SEQ_CLS", r=4, target_modules=["q_proj", "v_proj"], modules_to_save=["score"]
    )
    peft_model = get_peft_model(base, lora)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                param.normal_(0, 0.5)  # a trained-looking adapter, not the identity
    adapter = tmp_path / "run" / "adapter"
    peft_model.save_pretrained(adapter, safe_serialization=True)
    tokenizer.save_pretrained(adapter)
    (tmp_path / "run" / "result.json").write_text(json.dumps({"labels": LABELS}))
    merged = peft_model.merge_and_unload().eval()

    model, loaded_tokenizer = load_classifier(str(adapter), base_dir=str(tiny_dir), device="cpu")
    assert model.config.id2label == dict(enumerate(LABELS))
    ours = classify(model, loaded_tokenizer, TEXTS)
    reference = classify(merged, tokenizer, TEXTS)
    for one, other in zip(ours, reference, strict=True):
        assert one.label == other.label
        assert torch.allclose(
            torch.tensor(list(one.probs.values())), torch.tensor(list(other.probs.values())), atol=1e-5
        )


def test_it_refuses_folders_it_cannot_use(tiny_dir, classifier_dir, tmp_path):
    with pytest.raises(ClassifyError, match="does not exist"):
        load_classifier(str(tmp_path / "missing"))
    with pytest.raises(ClassifyError, match="no sequence-classification model"):
        load_classifier(str(tiny_dir))  # a causal LM: no head to read
    pickled = tmp_path / "pickled"
    shutil.copytree(classifier_dir, pickled)
    for weights in pickled.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ClassifyError, match="no .safetensors weights"):
        load_classifier(str(pickled))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(ClassifyError, match="base_dir"):
        load_classifier(str(adapter))
