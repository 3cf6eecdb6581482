"""Quantisation and reloading (workers.compress.quantize, workers.compress.load) on the tiny Llama and tiny BERT."""

import json
import shutil

import pytest
import torch

from workers.compress.config import CompressConfig, CompressError, ConfigError
from workers.compress.load import load_model
from workers.compress.quantize import check_runtime, has_int4_cpu_kernel, quantize_model, save_quantized
from workers.generate.loading import folder_size_bytes

TEXTS = [
    f"order {i}: the parcel arrived {word} and I would like {want} for item {i * 7}"
    for i, (word, want) in enumerate(
        [
            (w, x)
            for w in ("late", "broken", "early", "wet", "open")
            for x in ("a refund", "help", "a swap", "a call")
        ]
    )
]  # 20 texts


def _config(method, task, tmp_path, **kwargs):
    return CompressConfig(
        method=method, model_path="src", output_dir=str(tmp_path), task=task, device="cpu", **kwargs
    )


def _logits(model, tokenizer, texts=TEXTS):
    """Per text: the classifier's logits, or a causal LM's next-token logits after the text's last token."""
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**enc).logits
    if logits.dim() == 3:
        last = enc["attention_mask"].sum(1) - 1
        logits = logits[torch.arange(len(texts)), last]
    return logits


def _source(request, task):
    return request.getfixturevalue("tiny_dir" if task == "causal_lm" else "tiny_bert_dir")


CASES = [
    (task, method)
    for task in ("causal_lm", "classification")
    for method in ("int8_dynamic", "int8_weight_only")
] + [("classification", "int8_dynamic:token")]  # one activation scale per token (workers.compress.pertoken)


@pytest.fixture(scope="module", params=CASES, ids=[f"{t}-{m}" for t, m in CASES])
def saved(request, tmp_path_factory):
    """(task, source folder, saved folder, fp32 logits, quantised logits before saving, details)."""
    task, method = request.param
    method, _, scales = method.partition(":")
    torch.set_num_threads(1)
    source = _source(request, task)
    out = tmp_path_factory.mktemp(f"{task}-{method}-{scales}") / "model"
    model, tokenizer = load_model(source, task, device="cpu")
    before = _logits(model, tokenizer)
    config = _config(method, task, out.parent, activation_scales=scales or "tensor")
    details = quantize_model(model, config)
    after = _logits(model, tokenizer)
    save_quantized(model, tokenizer, out, config, details, source)
    return task, source, out, before, after, details


def test_the_quantised_folder_is_smaller_than_the_source(saved):
    _, source, out, *_ = saved
    assert folder_size_bytes(out) < 0.5 * folder_size_bytes(source)


def test_a_reloaded_folder_gives_exactly_the_logits_of_the_model_before_saving(saved):
    task, _, out, _, after, _ = saved
    model, tokenizer = load_model(out, task)
    assert torch.equal(_logits(model, tokenizer), after)


def test_quantised_predictions_agree_with_float32_on_most_texts(saved):
    """The tiny models are random, so their top two logits are often closer than the INT8 rounding noise (about
    0.02 on the Llama's logits); 18 of 20 agreeing leaves room for two such near-ties while still failing on a
    broken quantisation (which agrees on about a third for three labels, almost never for 768 tokens)."""
    _, _, _, before, after, _ = saved
    assert (before.argmax(-1) == after.argmax(-1)).float().mean() >= 0.9
    assert not torch.equal(before, after)  # it really was quantised


def test_the_folder_is_safetensors_only_and_describes_its_quantisation(saved):
    from registry_app.services import model_folder_problems

    _, _, out, _, _, details = saved
    assert model_folder_problems(out, "hf") == []
    manifest = json.loads((out / "quantization.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["method"] == details["method"]
    kinds = {meta["kind"] for meta in manifest["modules"].values()}
    assert "embedding_int8_rows" in kinds
    assert kinds & {"int8_dynamic", "torchao"}
    assert details["quantized_linear"] == len(details["modules"]) > 0
    scales = {
        meta.get("activation_scales")
        for meta in manifest["modules"].values()
        if meta["kind"] == "int8_dynamic"
    }
    assert scales <= {details.get("activation_scales")}


def test_per_token_scales_keep_ordinary_tokens_precise_beside_an_outlier_token():
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    from torch.ao.quantization import per_channel_dynamic_qconfig

    from workers.compress.pertoken import TokenScaledLinear

    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 32)
    linear.qconfig = per_channel_dynamic_qconfig
    x = torch.randn(12, 64)
    x[0] *= 100  # a [CLS]-like row a hundred times larger than the others
    with torch.no_grad():
        exact = linear(x)
        per_batch = (DynamicLinear.from_float(linear)(x) - exact)[1:].abs().max()
        per_token = TokenScaledLinear.from_float(linear)(x) - exact
    assert per_token[1:].abs().max() < per_batch / 10
    assert per_token[0].abs().max() < 0.02 * exact[0].abs().max()  # the outlier row itself stays right too


def test_activation_scales_are_checked():
    with pytest.raises(ConfigError) as caught:
        CompressConfig(
            method="prune_mlp", model_path="m", output_dir="o", activation_scales="token"
        ).validate()
    assert caught.value.problems["activation_scales"] == [
        "applies to INT8 dynamic quantisation (the method, or then INT8)"
    ]
    with pytest.raises(ConfigError, match="must be one of tensor, token"):
        CompressConfig(
            method="int8_dynamic", model_path="m", output_dir="o", activation_scales="row"
        ).validate()
    CompressConfig(
        method="prune_mlp", model_path="m", output_dir="o", activation_scales="token", then_int8=True
    ).validate()


def test_the_classification_head_stays_in_float_and_says_why(tiny_bert_dir, tmp_path):
    model, _ = load_model(tiny_bert_dir, "classification", device="cpu")
    details = quantize_model(model, _config("int8_dynamic", "classification", tmp_path))
    assert "classification head" in details["left_in_float"]["classifier"]
    assert isinstance(model.classifier, torch.nn.Linear)
    assert "classifier" not in details["modules"]


def test_after_pruning_the_int8_step_is_int8_dynamic(tiny_bert_dir, tmp_path):
    model, _ = load_model(tiny_bert_dir, "classification", device="cpu")
    config = _config("prune_mlp", "classification", tmp_path, then_int8=True, sparsity=0.5)
    assert quantize_model(model, config)["method"] == "int8_dynamic"


def test_a_tied_output_projection_is_stored_once_and_stays_tied_after_reloading(tiny_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_dir, tie_word_embeddings=True)
    model.tie_weights()
    assert model.lm_head.weight is model.model.embed_tokens.weight
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    config = _config("int8_dynamic", "causal_lm", tmp_path)
    details = quantize_model(model, config)
    assert "tied" in details["left_in_float"]["lm_head"]
    before = _logits(model, tokenizer)
    save_quantized(model, tokenizer, tmp_path / "model", config, details, tiny_dir)
    reloaded, _ = load_model(tmp_path / "model", "causal_lm")
    assert reloaded.lm_head.weight is reloaded.model.embed_tokens.weight
    assert torch.equal(_logits(reloaded, tokenizer), before)


@pytest.mark.skipif(has_int4_cpu_kernel(), reason="this machine has a CPU INT4 kernel")
def test_int4_on_cpu_is_refused_naming_the_missing_kernel(tmp_path):
    with pytest.raises(CompressError, match="INT4") as caught:
        check_runtime(_config("int4_weight_only", "causal_lm", tmp_path), "cpu")
    assert "kernel" in str(caught.value)


def test_bitsandbytes_without_cuda_is_refused_with_the_reason(tmp_path):
    config = _config("int8_weight_only", "causal_lm", tmp_path, backend="bitsandbytes")
    with pytest.raises(CompressError, match="bitsandbytes"):
        check_runtime(config, "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_asking_for_cuda_without_a_gpu_is_refused(tmp_path):
    with pytest.raises(CompressError, match="no CUDA GPU"):
        check_runtime(_config("int8_weight_only", "causal_lm", tmp_path), "cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="INT4 weight-only needs a CUDA GPU here")
def test_int4_round_trips_on_a_gpu(tiny_dir, tmp_path):
    model, tokenizer = load_model(tiny_dir, "causal_lm", device="cuda")
    config = CompressConfig(
        method="int4_weight_only",
        model_path=str(tiny_dir),
        output_dir=str(tmp_path),
        group_size=32,
        device="cuda",
    )
    details = quantize_model(model, config)
    assert details["group_size"] == 32 and details["modules"]
    enc = tokenizer(TEXTS, return_tensors="pt", padding=True).to("cuda")
    with torch.no_grad():
        before = model(**enc).logits
    save_quantized(model, tokenizer, tmp_path / "model", config, details, tiny_dir)
    assert folder_size_bytes(tmp_path / "model") < 0.5 * folder_size_bytes(tiny_dir)
    reloaded, _ = load_model(tmp_path / "model", "causal_lm", device="cuda")
    with torch.no_grad():
        assert torch.equal(reloaded(**enc).logits, before)


@pytest.fixture(scope="module")
def bert_int8(tiny_bert_dir, tmp_path_factory):
    """One INT8 dynamic classifier folder, for the tests that spoil a copy of it."""
    out = tmp_path_factory.mktemp("bert-int8") / "model"
    model, tokenizer = load_model(tiny_bert_dir, "classification", device="cpu")
    config = _config("int8_dynamic", "classification", out.parent)
    save_quantized(model, tokenizer, out, config, quantize_model(model, config), tiny_bert_dir)
    return out


@pytest.fixture
def copied(bert_int8, tmp_path):
    shutil.copytree(bert_int8, tmp_path / "copy")
    return "classification", tmp_path / "copy"


@pytest.mark.parametrize(
    "content, reason",
    [
        ("{not json", "cannot be read"),
        (json.dumps({"format_version": 99}), "format_version 99"),
        ("[]", "JSON object"),
    ],
)
def test_a_bad_quantization_json_is_refused_naming_the_file(copied, content, reason):
    task, folder = copied
    (folder / "quantization.json").write_text(content)
    with pytest.raises(CompressError, match=reason) as caught:
        load_model(folder, task)
    assert str(folder / "quantization.json") in str(caught.value)


def test_a_quantised_folder_without_its_weights_is_refused_naming_the_file(copied):
    task, folder = copied
    (folder / "model.safetensors").unlink()
    with pytest.raises(CompressError, match="model.safetensors"):
        load_model(folder, task)


def test_a_module_the_weights_do_not_hold_is_refused(copied):
    task, folder = copied
    manifest = json.loads((folder / "quantization.json").read_text())
    manifest["modules"]["bert.encoder.layer.0.output.dense"] = manifest["modules"].pop(
        "bert.encoder.layer.1.output.dense"
    )
    (folder / "quantization.json").write_text(json.dumps(manifest))
    with pytest.raises(CompressError, match="does not match"):
        load_model(folder, task)


@pytest.mark.parametrize("task", ["causal_lm", "classification"])
def test_load_model_delegates_a_plain_folder_to_the_task_loader(request, task):
    source = _source(request, task)
    model, tokenizer = load_model(source, task, device="cpu")
    assert type(model).__name__.endswith(
        "ForCausalLM" if task == "causal_lm" else "ForSequenceClassification"
    )
    assert isinstance(model.get_input_embeddings().weight, torch.nn.Parameter)
    assert _logits(model, tokenizer).shape[0] == len(TEXTS)


def test_load_model_reports_a_missing_folder_as_a_compress_error(tmp_path):
    with pytest.raises(CompressError, match=str(tmp_path / "nowhere")):
        load_model(tmp_path / "nowhere", "causal_lm")
    with pytest.raises(CompressError, match="has no"):
        load_model(tmp_path, "classification")


def test_int8_after_pruning_passes_the_runtime_check_whatever_device_pruned(tmp_path):
    for device in ("auto", "cpu"):
        config = _config("prune_mlp", "classification", tmp_path, then_int8=True, sparsity=0.5)
        config.device = device
        check_runtime(config, "cpu")  # no error: INT8 dynamic quantises on the CPU
    check_runtime(_config("int8_dynamic", "classification", tmp_path), None)
