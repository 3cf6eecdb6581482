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


@pytest.fixture
def causal(tiny_dir):
    """A fresh float32 copy of the tiny causal LM (the compression tests cut it in place)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_dir).eval()


@pytest.fixture
def bert(tiny_bert_dir):
    """A fresh copy of the MiniLM-shaped tiny BERT classifier."""
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir).eval()
