"""Fixtures shared by the engine's tests: one torch thread (the tiny model comes from tests/conftest.py)."""

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model's matrices are too small to share between threads; on a busy machine two threads fight."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
