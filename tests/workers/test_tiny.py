"""The tiny offline model: builds in seconds, loads with the Auto classes, chats, trains with LoRA."""

import ast
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

import workers.tiny as tiny
from workers.tiny import TinyModelSpec, build_model, build_tiny_model, build_tokenizer

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Where is my order?"},
    {"role": "assistant", "content": "It ships today."},
    {"role": "user", "content": "谢谢"},
    {"role": "assistant", "content": "不客气！"},
]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tokenizer(tiny_dir):
    return AutoTokenizer.from_pretrained(tiny_dir, trust_remote_code=False)


def load_model(path: Path):
    return AutoModelForCausalLM.from_pretrained(path, trust_remote_code=False)


def test_it_loads_with_auto_classes_without_remote_code(tiny_dir, tokenizer):
    model = load_model(tiny_dir)
    assert isinstance(model, LlamaForCausalLM)
    assert model.dtype == torch.float32
    assert model.config.vocab_size == len(tokenizer) == TinyModelSpec().vocab_size
    assert model.config.tie_word_embeddings is False
    assert not list(tiny_dir.glob("*.py"))


def test_special_token_ids_are_set_in_config_and_generation_config(tiny_dir, tokenizer):
    model = load_model(tiny_dir)
    eos, im_start, im_end = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    assert tokenizer.eos_token_id == tokenizer.pad_token_id == tokenizer.bos_token_id == eos
    assert len({eos, im_start, im_end}) == 3
    assert model.config.eos_token_id == model.config.pad_token_id == model.config.bos_token_id == eos
    assert model.generation_config.pad_token_id == eos
    assert set(model.generation_config.eos_token_id) == {eos, im_end}


def test_english_and_chinese_text_round_trip_through_the_tokenizer(tokenizer):
    text = "The refund policy is thirty days. 退款政策是三十天。 x = 42"
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert len(ids) < len(text.encode("utf-8"))  # BPE merges actually compress


def test_same_seed_gives_identical_weights(tiny_dir):
    spec = TinyModelSpec()
    first = build_model(spec, build_tokenizer(spec)).state_dict()
    second = build_model(spec, build_tokenizer(spec)).state_dict()
    other = build_model(TinyModelSpec(seed=1), build_tokenizer(spec)).state_dict()
    saved = load_file(tiny_dir / "model.safetensors")
    assert first.keys() == second.keys() == saved.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert all(torch.equal(first[name], saved[name]) for name in first)
    assert not torch.equal(first["model.embed_tokens.weight"], other["model.embed_tokens.weight"])


def test_chat_template_renders_roles_and_generation_prompt(tokenizer):
    rendered = tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True)
    assert rendered == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nWhere is my order?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    full = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert full.endswith("<|im_start|>assistant\n不客气！<|im_end|>\n")


def test_assistant_mask_covers_only_assistant_tokens(tokenizer):
    encoded = tokenizer.apply_chat_template(
        CONVERSATION, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = encoded["input_ids"], encoded["assistant_masks"]
    assert len(ids) == len(mask)
    learned = tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert learned == "It ships today.<|im_end|>不客气！<|im_end|>"


def test_rebuild_is_a_no_op_when_spec_unchanged(tiny_dir, monkeypatch):
    before = (tiny_dir / "model.safetensors").stat()

    def must_not_build(*args, **kwargs):
        raise AssertionError("rebuilt although the spec is unchanged")

    monkeypatch.setattr(tiny, "_write_build", must_not_build)
    assert build_tiny_model(tiny_dir, TinyModelSpec()) == tiny_dir
    after = (tiny_dir / "model.safetensors").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_changed_spec_replaces_the_old_build(tiny_dir, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(tiny_dir, target)
    build_tiny_model(target, TinyModelSpec(seed=7))
    assert json.loads((target / tiny.SPEC_FILE).read_text())["spec"]["seed"] == 7
    old, new = load_file(tiny_dir / "model.safetensors"), load_file(target / "model.safetensors")
    assert not torch.equal(old["lm_head.weight"], new["lm_head.weight"])
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folders left behind


def test_a_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    def half_write(folder, spec):
        (folder / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(tiny, "_write_build", half_write)
    with pytest.raises(RuntimeError, match="disk full"):
        build_tiny_model(tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_it_saves_only_safetensors(tiny_dir):
    names = {p.name for p in tiny_dir.iterdir()}
    assert "model.safetensors" in names
    pickled = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}
    assert not [name for name in names if Path(name).suffix in pickled]


def test_greedy_generation_runs(tiny_dir, tokenizer):
    model = load_model(tiny_dir)
    prompt = tokenizer.apply_chat_template(
        CONVERSATION[:2], add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )
    kwargs = {"max_new_tokens": 5, "min_new_tokens": 5, "do_sample": False}
    first = model.generate(**prompt, **kwargs)
    second = model.generate(**prompt, **kwargs)
    assert first.shape == (1, prompt["input_ids"].shape[1] + 5)
    assert torch.equal(first, second)


def test_a_lora_adapter_attaches_and_a_training_step_lowers_loss(tiny_dir, tokenizer):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    model = get_peft_model(load_model(tiny_dir), lora)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    assert {name.split(".")[-4] for name in trainable} == {"q_proj", "v_proj"}

    batch = tokenizer(["Where is my order?", "你好！有什么可以帮您的吗？"], padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    losses = []
    for _ in range(8):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05


def test_cli_prints_the_output_path(tiny_dir, capsys):
    tiny.main([str(tiny_dir)])
    assert capsys.readouterr().out.strip() == str(tiny_dir)


def test_the_module_never_imports_django():
    tree = ast.parse(Path(tiny.__file__).read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.split(".")[0] == "django"]
