"""The intent router's base: the registered classification base with a head over the demo's intents.

all-MiniLM-L6-v2 ships as a sentence encoder (``BertModel``): it has no classification head, so as such it can be
neither evaluated as a classifier nor compared. The loop therefore registers, once, a sibling base named
``<base>-intents``: the same encoder weights and tokenizer with a ``BertForSequenceClassification`` head over
``INTENTS``, initialised with a fixed seed (so it routes no better than chance). That version is the baseline the
report compares with, and the base the LoRA adapter is trained on (its head is trained whole). A base whose head
already names exactly these intents is used as it is.

The folder is built once by ``workers.demo_models.build_once`` (a temporary sibling, marked with its source, then
renamed into place), so a crash leaves no half folder and a second run reuses it. Runs in
the loop's process (a command or a worker), never in the web process: transformers is imported here lazily.
"""

import json
from pathlib import Path

from django.conf import settings

from registry_app.models import ModelTask, ModelVersion
from registry_app.services import base_model_ensure

HEAD_SEED = 0


def _labels_of(folder: Path) -> list[str] | None:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not any(str(a).endswith("ForSequenceClassification") for a in config.get("architectures") or []):
        return None
    id2label = config.get("id2label") or {}
    return [str(id2label[k]) for k in sorted(id2label, key=int)]


def router_base(*, user, base: ModelVersion, labels: list[str]) -> tuple[ModelVersion, bool]:
    """(the base to train and compare with, whether it was registered just now)."""
    if _labels_of(Path(base.artifact_uri)) == list(labels):
        return base, False
    from workers.demo_models import build_once

    name = f"{base.model.name}-intents"
    source = {"base": base.sha256, "labels": list(labels), "seed": HEAD_SEED}
    folder = build_once(Path(settings.ARTIFACT_ROOT) / "base-models" / name, source,
                        lambda building: _write(Path(base.artifact_uri), building, labels))  # fmt: skip
    return base_model_ensure(user=user, name=name, path=folder, task=ModelTask.CLASSIFICATION)


def _write(base_dir: Path, building: Path, labels: list[str]) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(HEAD_SEED)
    tokenizer = AutoTokenizer.from_pretrained(base_dir, trust_remote_code=False)
    model = AutoModelForSequenceClassification.from_pretrained(
        base_dir, trust_remote_code=False, use_safetensors=True, dtype=torch.float32,
        num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)}, ignore_mismatched_sizes=True,
    )  # fmt: skip
    model.save_pretrained(building, safe_serialization=True)
    tokenizer.save_pretrained(building)
