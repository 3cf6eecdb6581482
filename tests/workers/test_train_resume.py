"""A run stopped and resumed ends bit for bit where an uninterrupted run ends; checkpoints are atomic and rotated."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from workers.train import TrainConfig, TrainError, train
from workers.train.demo import write_demo_data


def make_config(tmp_path, tiny_dir, name: str, **overrides) -> TrainConfig:
    files = write_demo_data(tmp_path / "data", "chat", 20, 4)
    fields = {
        "base_model_path": str(tiny_dir),
        "output_dir": str(tmp_path / name),
        "max_seq_len": 256,
        "batch_size": 3,
        "grad_accum": 2,
        "epochs": 2,  # 4 steps per epoch: the stop falls inside the second epoch
        "lr": 1e-2,
        "eval_every": 2,
        "checkpoint_every": 3,
        "seed": 7,
    }
    return TrainConfig(**(fields | files | overrides))


def stop_at(step: int):
    def report(**metrics):
        return "stop" if metrics["step"] == step else None

    return report


def final_weights(result) -> dict[str, torch.Tensor]:
    folder = Path(result.adapter_path or result.model_path)
    return load_file(folder / ("adapter_model.safetensors" if result.adapter_path else "model.safetensors"))


SETTINGS = {
    # dropout draws random numbers, packing and accumulation exercise the data position
    "lora-dropout-packed": {"method": "lora", "lora_dropout": 0.2, "target_modules": ["all-linear"]},
    # every optimizer state, SWA's average and schedule, FGM, smoothing, length-grouped batches
    "full-swa-fgm-padded": {
        "method": "full",
        "lr": 1e-3,
        "packing": False,
        "swa_start": 0.5,
        "swa_lr": 5e-4,
        "fgm_epsilon": 0.1,
        "label_smoothing": 0.1,
        "weight_decay": 0.01,
        "warmup_steps": 2,
        "scheduler": "linear",
    },
}


@pytest.mark.parametrize("setting", SETTINGS)
def test_a_stopped_and_resumed_run_equals_an_uninterrupted_one(tmp_path, tiny_dir, setting):
    straight = train(make_config(tmp_path, tiny_dir, "straight", **SETTINGS[setting]))
    assert straight.status == "succeeded" and straight.final_step == 8

    cfg = make_config(tmp_path, tiny_dir, "stopped", **SETTINGS[setting])
    stopped = train(cfg, stop_at(5))
    assert stopped.status == "cancelled" and stopped.final_step == 5
    assert stopped.checkpoint_path.endswith("step-00000005")
    resumed = train(cfg, resume=True)

    assert resumed.status == "succeeded" and resumed.final_step == 8
    assert resumed.train_losses == straight.train_losses  # exact floats, the steps before the stop included
    assert resumed.val_losses == straight.val_losses
    assert (resumed.best_step, resumed.tokens_seen, resumed.weights) == (
        straight.best_step,
        straight.tokens_seen,
        straight.weights,
    )
    mine, theirs = final_weights(resumed), final_weights(straight)
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[name], theirs[name]) for name in mine)


def test_only_the_newest_checkpoints_are_kept_and_each_is_complete(tmp_path, tiny_dir):
    cfg = make_config(tmp_path, tiny_dir, "run", checkpoint_every=1, keep_checkpoints=2, epochs=1)
    train(cfg)
    root = Path(cfg.output_dir) / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == [
        "step-00000002",
        "step-00000003",
    ]  # the last step writes outputs
    state = json.loads((root / "step-00000003" / "state.json").read_text())
    assert {"model", "optimizer", "scheduler", "rng", "trainer"} <= {k for k, _ in state["__d"]}
    assert not [p for p in Path(cfg.output_dir).rglob("*") if p.name.startswith(".tmp-")]


def test_resume_without_a_checkpoint_starts_from_the_beginning(tmp_path, tiny_dir):
    cfg = make_config(tmp_path, tiny_dir, "fresh", epochs=1, eval_every=0, checkpoint_every=0)
    assert train(cfg, resume=True).final_step == 4


def test_resume_refuses_a_checkpoint_of_different_data(tmp_path, tiny_dir):
    cfg = make_config(tmp_path, tiny_dir, "changed")
    train(cfg, stop_at(1))
    write_demo_data(tmp_path / "data", "chat", 20, 4, seed=99)
    with pytest.raises(TrainError, match="different training data"):
        train(cfg, resume=True)


def test_a_fresh_run_in_a_used_folder_replaces_the_earlier_runs_checkpoints(tmp_path, tiny_dir):
    cfg = make_config(tmp_path, tiny_dir, "reused", checkpoint_every=1, keep_checkpoints=5)
    train(cfg, stop_at(5))
    again = make_config(tmp_path, tiny_dir, "reused", checkpoint_every=1, keep_checkpoints=5, eval_every=0)
    train(again, stop_at(2))  # no evaluation before the stop: no best weights of its own yet
    root = Path(cfg.output_dir) / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["step-00000001", "step-00000002"]
    assert not (Path(cfg.output_dir) / "best").exists()  # the earlier run's best weights are gone too
