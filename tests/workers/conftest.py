"""Fixtures shared by the engine's tests: the tiny model (built once per module) and one torch thread."""

from pathlib import Path

import pytest
import torch

from workers.tiny import build_tiny_model


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model's matrices are too small to share between threads; on a busy machine two threads fight."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")
