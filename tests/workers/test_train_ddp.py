"""Two processes under torchrun (gloo, CPU) train as one process does on the same global batch."""

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from workers.train import ConfigError, TrainConfig, launch, train
from workers.train.demo import write_demo_data


def make_config(tmp_path, tiny_dir, name: str, batch_size: int, **overrides) -> TrainConfig:
    files = write_demo_data(tmp_path / "data", "chat", 24, 6)
    fields = {
        "base_model_path": str(tiny_dir),
        "output_dir": str(tmp_path / name),
        "max_seq_len": 256,
        "batch_size": batch_size,
        "max_steps": 6,
        "lr": 2e-2,
        "lora_dropout": 0.0,
        "target_modules": ["all-linear"],
        "eval_every": 3,
        "checkpoint_every": 2,
    }
    return TrainConfig(**(fields | files | overrides))


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path, tiny_dir):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as torchrun gives each of its processes
    try:
        single = train(make_config(tmp_path, tiny_dir, "single", batch_size=4))
    finally:
        torch.set_num_threads(before)

    cfg = make_config(tmp_path, tiny_dir, "ddp", batch_size=2)
    seen: list[dict] = []

    def report(**metrics):
        seen.append(metrics)
        return "stop" if metrics["step"] == 2 else None

    stopped = launch(cfg, n_procs=2, backend="gloo", report=report)
    assert stopped.status == "cancelled" and 2 <= stopped.final_step <= 3  # STOP is seen at the next report
    resumed = launch(cfg, n_procs=2, backend="gloo", report=report, resume=True)

    assert resumed.status == "succeeded" and resumed.final_step == 6 and resumed.layout == "packed"
    assert [m["step"] for m in seen] == [*range(1, stopped.final_step + 1), *range(stopped.final_step + 1, 7)]
    assert resumed.tokens_seen == single.tokens_seen
    ours, theirs = np.array(resumed.train_losses), np.array(single.train_losses)
    assert ours[:, 0].tolist() == theirs[:, 0].tolist()
    assert np.allclose(ours[:, 1], theirs[:, 1], rtol=1e-4, atol=0)
    assert np.allclose(np.array(resumed.val_losses), np.array(single.val_losses), rtol=1e-4, atol=0)
    a = load_file(Path(resumed.adapter_path) / "adapter_model.safetensors")
    b = load_file(Path(single.adapter_path) / "adapter_model.safetensors")
    assert all(torch.allclose(a[name], b[name], rtol=1e-3, atol=1e-5) for name in a)


def test_launch_raises_the_workers_config_error(tmp_path, tiny_dir):
    cfg = make_config(tmp_path, tiny_dir, "bad", batch_size=2, target_modules=["no_such_proj"])
    with pytest.raises(ConfigError) as caught:
        launch(cfg, n_procs=1, backend="gloo")
    assert "'no_such_proj' matches no module" in caught.value.problems["target_modules"][0]
