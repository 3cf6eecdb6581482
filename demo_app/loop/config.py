"""Which base each ``--model`` trains, on which path, with which training settings.

The classification defaults were tuned on all-MiniLM-L6-v2 and the seed's intent cases (see the numbers in the
loop's module docstring): the LoRA adapter wraps every linear layer of the encoder (query, key, value and both
dense layers) and the classification head is trained whole (PEFT's SEQ_CLS task puts it in modules_to_save),
with a learning rate that suits a freshly initialised head. The chat defaults are a short LoRA run.

MiniLM reads English only: its (uncased English) WordPiece vocabulary has no entry for 77% of the Chinese
characters in the seed's intent cases (904 of 1,176 become [UNK]), so a Chinese message reaches it as a row of
[UNK]s that no training can route. Its path therefore filters the cases to English (the recipe's language filter,
shown in the version's recipe and data card); a multilingual encoder would take them all.
"""

from dataclasses import dataclass, field

from demo_app.catalog import CHAT_DATASET, FEATURE_CHAT, FEATURE_INTENT, INTENT_DATASET, INTENTS


@dataclass(frozen=True)
class LoopPath:
    """One of the demo's two paths: the dataset it builds, the feature its cases belong to, its dataset task."""

    task_type: str  # dataset task type: "classification" or "chat"
    feature: str
    dataset: str


CLASSIFICATION = LoopPath("classification", FEATURE_INTENT, INTENT_DATASET)
CHAT = LoopPath("chat", FEATURE_CHAT, CHAT_DATASET)

CLASSIFIER_TRAINING = {
    "epochs": 15,
    "batch_size": 8,
    "lr": 1e-3,
    "lora_r": 16,
    "lora_alpha": 32.0,
    "lora_dropout": 0.1,
    "target_modules": ["query", "key", "value", "dense"],
    "warmup_ratio": 0.1,
    "max_seq_len": 128,
    "labels": list(INTENTS),
    "seed": 42,
}
CHAT_TRAINING = {
    "epochs": 3,
    "batch_size": 8,
    "lr": 3e-4,
    "lora_r": 16,
    "lora_alpha": 32.0,
    "target_modules": ["all-linear"],
    "warmup_ratio": 0.05,
    "max_seq_len": 384,
    "seed": 42,
}


@dataclass(frozen=True)
class DemoSpec:
    """``base``: the registered base model's name (``manage.py demo_models`` registers the real ones)."""

    base: str
    path: LoopPath
    training: dict = field(default_factory=dict)
    languages: tuple[str, ...] = ()  # the recipe's language filter; empty: every language


SPECS = {
    "minilm": DemoSpec("all-minilm-l6-v2", CLASSIFICATION, CLASSIFIER_TRAINING, languages=("en",)),
    "tiny-bert": DemoSpec("tiny-bert", CLASSIFICATION, CLASSIFIER_TRAINING),
    "smollm2": DemoSpec("smollm2-135m-instruct", CHAT, CHAT_TRAINING),
    "tiny": DemoSpec("tiny", CHAT, {**CHAT_TRAINING, "epochs": 2, "max_seq_len": 256}),
}

# the dataset version's split: a fifth held out for the test (the comparison report), a few rows for validation
SPLIT = {"train": 0.75, "validation": 0.05, "test": 0.2, "seed": 42, "stratify": True}
TARGET = "staging"  # where the promotion request asks the version to go
JOB_DEADLINE_S = 3600.0  # the longest the run waits for one job that a worker took
