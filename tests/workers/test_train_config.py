"""The engine refuses bad settings and bad data early, naming every problem at once."""

import ast
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from workers.train import ConfigError, TrainConfig, TrainError, check_against_model, train
from workers.train.demo import write_demo_data
from workers.train.methods import QLORA_NEEDS_CUDA

PACKAGE = Path(__file__).resolve().parents[2] / "workers" / "train"


def config(tmp_path, tiny_dir, **overrides) -> TrainConfig:
    files = write_demo_data(tmp_path / "data", overrides.get("task", "chat"), 8, 4)
    fields = {"base_model_path": str(tiny_dir), "output_dir": str(tmp_path / "run"), "max_seq_len": 128}
    return TrainConfig(**(fields | files | overrides))


def test_a_config_with_defaults_is_valid():
    assert TrainConfig(base_model_path="m", output_dir="o", train_file="t.jsonl").validate()


def test_it_lists_every_problem_at_once():
    bad = TrainConfig(
        base_model_path="",
        output_dir="o",
        train_file="t.jsonl",
        task="poetry",
        method="lora",
        lr=-1e-4,
        lora_r=0,
        lora_dropout=1.5,
        batch_size=0,
        max_steps=10,
        warmup_steps=10,
        scheduler="step",
        precision="fp8",
        label_smoothing=1.0,
        swa_start=1.5,
        early_stopping_patience=2,
        keep_checkpoints=0,
        labels=["a"],
    )
    with pytest.raises(ConfigError) as caught:
        bad.validate()
    problems = caught.value.problems
    assert set(problems) == {
        "base_model_path", "task", "lr", "lora_r", "lora_dropout", "batch_size", "warmup_steps", "scheduler",
        "precision", "label_smoothing", "swa_start", "early_stopping_patience", "keep_checkpoints", "labels",
    }  # fmt: skip
    assert problems["lr"] == ["must be a positive number (got -0.0001)"]
    assert "nothing of 10 steps" in problems["warmup_steps"][0]
    assert problems["early_stopping_patience"] == ["needs validation_file"]
    assert "lr: must be a positive number" in str(caught.value)


def test_prompt_methods_cannot_merge_and_take_no_target_modules():
    with pytest.raises(ConfigError) as caught:
        TrainConfig("m", "o", "t", method="prefix", merge_weights=True, target_modules=["q_proj"]).validate()
    assert set(caught.value.problems) == {"merge_weights", "target_modules"}


def test_from_dict_names_unknown_missing_and_mistyped_fields():
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_dict(
            {"output_dir": "o", "train_file": 3, "lr": "fast", "packing": 1, "colour": "red"}
        )
    assert caught.value.problems == {
        "colour": ["is not a known setting"],
        "base_model_path": ["is required"],
        "train_file": ["must be a string (got 3)"],
        "lr": ["must be a number (got 'fast')"],
        "packing": ["must be true or false (got 1)"],
    }


def test_it_round_trips_through_json():
    original = TrainConfig("m", "o", "t", target_modules=["q_proj"], labels=[], max_steps=5, lora_alpha=8)
    assert TrainConfig.from_dict(json.loads(json.dumps(original.to_dict()))) == original


def test_an_unknown_target_module_is_named_with_what_the_model_has(tiny_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    with pytest.raises(ConfigError) as caught:
        check_against_model(
            TrainConfig("m", "o", "t", target_modules=["q_proj", "query_key_value"], max_seq_len=4096), model
        )
    problems = caught.value.problems
    assert len(problems["target_modules"]) == 1
    assert "'query_key_value' matches no module" in problems["target_modules"][0]
    assert "q_proj" in problems["target_modules"][0] and "down_proj" in problems["target_modules"][0]
    assert problems["max_seq_len"] == ["4096 exceeds the model's 512 positions"]


def test_qlora_is_refused_on_a_machine_without_cuda(tmp_path, tiny_dir):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError) as caught:
        train(config(tmp_path, tiny_dir, method="qlora"))
    assert caught.value.problems == {"method": [QLORA_NEEDS_CUDA]}
    assert not (tmp_path / "run").exists()


def test_a_missing_base_model_is_named_before_any_work(tmp_path):
    missing = tmp_path / "no-such-model"
    cfg = TrainConfig(str(missing), str(tmp_path / "run"), str(tmp_path / "missing.jsonl"))
    with pytest.raises(TrainError, match=f"base model folder {missing} does not exist"):
        train(cfg)
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "config.json").write_text("{}")
    (tmp_path / "pickled" / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(TrainError, match="no .safetensors weights"):
        train(TrainConfig(str(tmp_path / "pickled"), str(tmp_path / "run"), "t.jsonl"))
    assert not (tmp_path / "run").exists()


def test_bad_data_lines_are_listed_with_their_numbers(tmp_path, tiny_dir):
    cfg = config(tmp_path, tiny_dir)
    lines = [
        json.dumps(
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
        ),
        "{not json",
        json.dumps({"messages": [{"role": "user", "content": "no answer"}]}),
        "",
        json.dumps({"messages": [{"role": "robot", "content": "beep"}]}),
        json.dumps(["a list"]),
    ]
    Path(cfg.train_file).write_text("\n".join(lines))
    Path(cfg.validation_file).write_text(json.dumps({"text": "wrong format"}))
    with pytest.raises(ConfigError) as caught:
        train(cfg)
    assert caught.value.problems["train_file"] == [
        "line 2: not JSON (Expecting property name enclosed in double quotes)",
        "line 3: has no assistant message to learn from",
        "line 5: messages[0] needs a role (system, user, assistant, tool) and a string content",
        "line 6: must be a JSON object",
    ]
    assert caught.value.problems["validation_file"] == ["line 1: needs a non-empty list 'messages'"]


def test_classification_labels_outside_the_list_are_named(tmp_path, tiny_dir):
    cfg = config(tmp_path, tiny_dir, task="classification", labels=["complaint", "praise"])
    with pytest.raises(ConfigError) as caught:
        train(cfg)
    assert caught.value.problems["train_file"] == ["labels not in the label list: question"]


def test_warmup_longer_than_the_run_is_refused_once_the_steps_are_known(tmp_path, tiny_dir):
    with pytest.raises(ConfigError) as caught:
        train(config(tmp_path, tiny_dir, epochs=1, batch_size=4, warmup_steps=2))
    assert caught.value.problems == {
        "warmup_steps": ["2 warm-up steps leave nothing of the 2 training steps"]
    }


def test_the_engine_never_imports_django():
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = [a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names]
        names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] == "django"], path.name
