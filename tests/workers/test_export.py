"""Exports of a version for other serving stacks, on the tiny models: merged folder, ONNX, Triton repository."""

import json
import sys
import types

import numpy as np
import pytest
import torch

from tests.conftest import TINY_BERT_LABELS
from workers.export import ExportError
from workers.export.merged import export_merged
from workers.export.triton import export_triton, model_name_for
from workers.generate import load_causal

PROMPTS = ["Where is my parcel?", "Refund please", "hello there"]


@pytest.fixture(scope="module")
def adapter_dir(tiny_dir, tmp_path_factory):
    """A LoRA adapter over the tiny causal model, random enough to change its answers."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_dir), lora)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.5)
    out = tmp_path_factory.mktemp("adapter") / "adapter"
    peft_model.save_pretrained(out, safe_serialization=True)
    return out


def greedy(model, tokenizer, text: str, n: int = 8) -> list[int]:
    ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)["input_ids"]  # fmt: skip
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=n,
                         pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    return out[0, ids.shape[1] :].tolist()


def test_a_merged_adapter_answers_as_the_adapter_over_its_base_and_reloads_without_peft(
    tiny_dir, adapter_dir, tmp_path
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = export_merged(
        adapter_dir, tmp_path / "merged", task="causal_lm", fmt="peft_adapter", base_dir=tiny_dir
    )
    assert result.notes["merged"] is True
    assert "model.safetensors" in result.files and "tokenizer.json" in result.files
    assert not any(name.startswith("adapter_") for name in result.files)
    assert not (tmp_path / "merged.partial").exists()

    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", use_safetensors=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged")
    adapted, adapted_tokenizer = load_causal(str(adapter_dir), base_dir=str(tiny_dir), device="cpu")
    base, _ = load_causal(str(tiny_dir), device="cpu")
    ours = [greedy(plain, tokenizer, p) for p in PROMPTS]
    assert ours == [greedy(adapted, adapted_tokenizer, p) for p in PROMPTS]
    assert ours != [greedy(base, adapted_tokenizer, p) for p in PROMPTS]


def test_a_full_folder_is_copied_file_for_file(tiny_bert_dir, tmp_path):
    result = export_merged(tiny_bert_dir, tmp_path / "out", task="classification", fmt="hf")
    assert result.notes["merged"] is False
    for name in result.files:
        assert (tmp_path / "out" / name).read_bytes() == (tiny_bert_dir / name).read_bytes()


def test_it_refuses_a_quantised_version_and_leaves_nothing_behind(tiny_dir, tmp_path):
    with pytest.raises(ExportError, match="quantised: its int8/int4 weights cannot be merged back"):
        export_merged(tiny_dir, tmp_path / "out", task="causal_lm", fmt="quantized")
    assert list(tmp_path.iterdir()) == []


def test_it_refuses_an_adapter_without_its_base_and_a_folder_that_exists(adapter_dir, tiny_dir, tmp_path):
    with pytest.raises(ExportError, match="needs its base model folder"):
        export_merged(adapter_dir, tmp_path / "a", task="causal_lm", fmt="peft_adapter")
    (tmp_path / "b").mkdir()
    with pytest.raises(ExportError, match="already exists"):
        export_merged(tiny_dir, tmp_path / "b", task="causal_lm", fmt="hf")


def test_onnx_logits_match_torch_for_any_batch_and_length(tiny_bert_dir, tmp_path):
    import onnxruntime
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from workers.export.onnx import export_onnx

    result = export_onnx(tiny_bert_dir, tmp_path / "onnx", task="classification", fmt="hf")
    assert json.loads((tmp_path / "onnx" / "labels.json").read_text()) == {"labels": TINY_BERT_LABELS}
    assert {"model.onnx", "config.json", "tokenizer.json"} <= set(result.files)

    session = onnxruntime.InferenceSession(
        str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    names = [i.name for i in session.get_inputs()]
    assert names[:2] == ["input_ids", "attention_mask"] and [o.name for o in session.get_outputs()] == [
        "logits"
    ]
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "onnx")
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir).eval()
    for texts in (PROMPTS, ["one text only, a little longer than the others so the axes move"]):
        batch = tokenizer(texts, padding=True, return_tensors="np")
        ours = session.run(["logits"], {n: batch[n].astype(np.int64) for n in names})[0]
        with torch.no_grad():
            reference = model(**{n: torch.from_numpy(batch[n]) for n in names}).logits.numpy()
        np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_onnx_refuses_a_causal_language_model(tiny_dir, tmp_path):
    from workers.export.onnx import export_onnx

    with pytest.raises(ExportError, match="ONNX export is for classifiers only"):
        export_onnx(tiny_dir, tmp_path / "onnx", task="causal_lm", fmt="hf")
    assert not (tmp_path / "onnx").exists()


class FakeTensor:
    def __init__(self, name, array):
        self.name, self.array = name, array

    def as_numpy(self):
        return self.array


def fake_pb_utils():
    """The few names of Triton's triton_python_backend_utils that model.py uses (Triton is not installed here)."""
    pb = types.ModuleType("triton_python_backend_utils")
    pb.Tensor = FakeTensor
    pb.InferenceRequest = lambda inputs: {t.name: t for t in inputs}
    pb.get_input_tensor_by_name = lambda request, name: request.get(name)
    pb.TritonError = type("TritonError", (Exception,), {})
    pb.InferenceResponse = lambda output_tensors, error=None: types.SimpleNamespace(
        outputs={t.name: t.as_numpy() for t in output_tensors}, error=error
    )
    return pb


def load_backend(repo, model_name, monkeypatch):
    import importlib.util

    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake_pb_utils())
    spec = importlib.util.spec_from_file_location(
        "triton_model_under_test", repo / model_name / "1" / "model.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    backend = module.TritonPythonModel()
    config = {"parameters": {}}
    for line in (repo / model_name / "config.pbtxt").read_text().splitlines():
        if line.startswith("parameters:"):
            key, value = line.split('"')[1], line.split('"')[3]
            config["parameters"][key] = {"string_value": value}
    backend.initialize({"model_config": json.dumps(config), "model_instance_kind": "CPU"})
    return backend, sys.modules["triton_python_backend_utils"]


def request(pb, texts):
    return pb.InferenceRequest([pb.Tensor("TEXT", np.array([[t.encode()] for t in texts], dtype=np.object_))])


def test_a_triton_repository_for_a_classifier_answers_as_the_model(tiny_bert_dir, tmp_path, monkeypatch):
    from workers.classify import classify, load_classifier

    name = model_name_for("support/intents", 3)
    assert name == "support_intents-v3"
    result = export_triton(tiny_bert_dir, tmp_path / "repo", task="classification", fmt="hf", model_name=name,
                           max_batch_size=4)  # fmt: skip
    assert {f"{name}/config.pbtxt", f"{name}/1/model.py", f"{name}/1/model/model.safetensors"} <= set(
        result.files
    )
    config = (tmp_path / "repo" / name / "config.pbtxt").read_text()
    for field in (f'name: "{name}"', 'backend: "python"', "max_batch_size: 4",
                  '{ name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] }',
                  '{ name: "LABEL" data_type: TYPE_STRING dims: [ 1 ] }',
                  f'{{ name: "PROBS" data_type: TYPE_FP32 dims: [ {len(TINY_BERT_LABELS)} ] }}'):  # fmt: skip
        assert field in config

    backend, pb = load_backend(tmp_path / "repo", name, monkeypatch)
    responses = backend.execute([request(pb, PROMPTS[:2]), request(pb, PROMPTS[2:])])
    model, tokenizer = load_classifier(str(tiny_bert_dir), device="cpu")
    expected = classify(model, tokenizer, PROMPTS)
    got_labels = [v.decode() for r in responses for v in r.outputs["LABEL"].reshape(-1)]
    assert got_labels == [e.label for e in expected]
    got_probs = np.concatenate([r.outputs["PROBS"] for r in responses])
    np.testing.assert_allclose(got_probs, [list(e.probs.values()) for e in expected], atol=1e-5)


def test_a_triton_repository_for_a_merged_adapter_generates_its_greedy_answer(
    tiny_dir, adapter_dir, tmp_path, monkeypatch
):
    result = export_triton(adapter_dir, tmp_path / "repo", task="causal_lm", fmt="peft_adapter", base_dir=tiny_dir,
                           model_name="bot-v2", max_new_tokens=6)  # fmt: skip
    assert result.notes["merged"] is True
    config = (tmp_path / "repo" / "bot-v2" / "config.pbtxt").read_text()
    assert '{ name: "GENERATED_TEXT" data_type: TYPE_STRING dims: [ 1 ] }' in config and "LABEL" not in config

    backend, pb = load_backend(tmp_path / "repo", "bot-v2", monkeypatch)
    [response] = backend.execute([request(pb, PROMPTS)])
    assert response.error is None
    answers = [v.decode() for v in response.outputs["GENERATED_TEXT"].reshape(-1)]
    adapted, tokenizer = load_causal(str(adapter_dir), base_dir=str(tiny_dir), device="cpu")
    expected = [tokenizer.decode(greedy(adapted, tokenizer, p, 6), skip_special_tokens=True) for p in PROMPTS]
    assert answers == expected


def test_a_triton_export_refuses_an_unsafe_model_name(tiny_bert_dir, tmp_path):
    with pytest.raises(ExportError, match="model_name '../x'"):
        export_triton(tiny_bert_dir, tmp_path / "repo", task="classification", fmt="hf", model_name="../x")
