"""Registering a base model: a safetensors Hugging Face folder becomes version 1 with its content hash; a folder
that is missing, has no config or holds pickles is refused naming the path."""

from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from registry_app.models import ModelVersion
from registry_app.services import base_model_register
from workers.tiny import build_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def test_a_tiny_model_folder_registers_as_version_1_with_its_sha256_and_size(world, tiny):
    version = base_model_register(
        user=world.users["Data Scientist"], name="tiny", path=tiny, task="causal_lm"
    )
    assert (version.number, version.source, version.format) == (1, "base", "hf")
    assert len(version.sha256) == 64 and version.size_bytes > 0
    again = base_model_register(user=world.users["Data Scientist"], name="tiny", path=tiny, task="causal_lm")
    assert again.number == 2 and again.sha256 == version.sha256 and again.model_id == version.model_id


def test_a_missing_folder_is_refused_naming_the_path(world, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ValidationError) as refused:
        base_model_register(user=None, name="ghost", path=missing, task="causal_lm")
    assert str(missing) in " ".join(refused.value.message_dict["path"])
    assert not ModelVersion.objects.exists()


def test_a_folder_with_pickled_weights_or_no_config_is_refused(world, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ValidationError) as refused:
        base_model_register(user=None, name="bad", path=folder, task="causal_lm")
    text = " ".join(refused.value.message_dict["path"])
    assert "config.json" in text and "safetensors" in text and "pickled" in text
