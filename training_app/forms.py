"""The fine-tune submit form: validation of types only; the engine's TrainConfig says what values are allowed."""

from django import forms

from datasets_app.models import DatasetVersion, VersionStatus
from registry_app.models import ModelVersion, VersionFormat

METHODS = ("lora", "qlora", "prefix", "prompt", "ia3", "full")
LORA = ("lora_r", "lora_alpha", "lora_dropout", "target_modules")
METHOD_FIELDS = {
    "lora": LORA,
    "qlora": LORA,
    "prefix": ("num_virtual_tokens",),
    "prompt": ("num_virtual_tokens",),
    "ia3": ("target_modules",),
    "full": (),
}
ALL_METHOD_FIELDS = ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "num_virtual_tokens")
COMMON = ("epochs", "batch_size", "grad_accum", "lr", "warmup_steps", "scheduler", "eval_every",
          "early_stopping_patience", "checkpoint_every", "seed", "max_seq_len", "packing")  # fmt: skip
PRESETS = {
    "quick-lora": ("Quick LoRA", {"method": "lora", "lora_r": 8, "lora_alpha": 16, "epochs": 1, "lr": 2e-4}),
    "thorough-lora": (
        "Thorough LoRA",
        {
            "method": "lora",
            "lora_r": 32,
            "lora_alpha": 64,
            "epochs": 3,
            "lr": 1e-4,
            "warmup_steps": 20,
            "eval_every": 50,
            "early_stopping_patience": 3,
            "checkpoint_every": 100,
        },
    ),  # fmt: skip
    "full": ("Full fine-tune", {"method": "full", "epochs": 2, "lr": 2e-5, "batch_size": 4, "grad_accum": 4}),
}
DEFAULTS = {"method": "lora", "lora_r": 16, "lora_alpha": 32.0, "lora_dropout": 0.05, "num_virtual_tokens": 20,
            "epochs": 1, "batch_size": 8, "grad_accum": 1, "lr": 2e-4, "warmup_steps": 0, "scheduler": "cosine",
            "eval_every": 0, "early_stopping_patience": 0, "checkpoint_every": 0, "seed": 42, "max_seq_len": 1024,
            "packing": True, "gpus": 1, "priority": 0}  # fmt: skip
# higher runs sooner on a busy gpu queue (llmops.jobs.broker_priority)
PRIORITIES = [(-2, "low"), (0, "normal"), (2, "high"), (5, "urgent")]


def ready_versions():
    return (
        DatasetVersion.objects.filter(status=VersionStatus.READY, counts__train__gt=0)
        .select_related("dataset")
        .order_by("-pk")
    )


class FineTuneForm(forms.Form):
    base = forms.ModelChoiceField(queryset=ModelVersion.objects.none(), label="Base model")
    dataset_version = forms.ModelChoiceField(queryset=DatasetVersion.objects.none(), label="Dataset version")
    method = forms.ChoiceField(choices=[(m, m) for m in METHODS])
    lora_r = forms.IntegerField(required=False, label="LoRA rank")
    lora_alpha = forms.FloatField(required=False, label="LoRA alpha")
    lora_dropout = forms.FloatField(required=False, label="LoRA dropout")
    target_modules = forms.CharField(required=False, help_text="comma-separated, empty for the default")
    num_virtual_tokens = forms.IntegerField(required=False, label="Virtual tokens")
    epochs = forms.IntegerField()
    batch_size = forms.IntegerField()
    grad_accum = forms.IntegerField(label="Gradient accumulation")
    lr = forms.FloatField(label="Learning rate")
    warmup_steps = forms.IntegerField()
    scheduler = forms.ChoiceField(choices=[(s, s) for s in ("cosine", "linear", "constant")])
    eval_every = forms.IntegerField()
    early_stopping_patience = forms.IntegerField()
    checkpoint_every = forms.IntegerField()
    seed = forms.IntegerField()
    max_seq_len = forms.IntegerField(label="Max sequence length")
    packing = forms.BooleanField(required=False)
    gpus = forms.IntegerField(label="GPUs")
    priority = forms.TypedChoiceField(
        choices=PRIORITIES, coerce=int, help_text="higher runs sooner when GPUs are busy"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["base"].queryset = (
            ModelVersion.objects.filter(format=VersionFormat.HF).select_related("model").order_by("-pk")
        )
        self.fields["dataset_version"].queryset = ready_versions()

    def method_value(self) -> str:
        value = (self.data.get("method") if self.is_bound else self.initial.get("method")) or "lora"
        return value if value in METHODS else "lora"

    def hyperparameters(self) -> dict:
        data = self.cleaned_data
        hp = {name: data[name] for name in COMMON if data.get(name) is not None}
        for name in METHOD_FIELDS[data["method"]]:
            if name == "target_modules":
                modules = [m.strip() for m in (data.get(name) or "").split(",") if m.strip()]
                if modules:
                    hp[name] = modules
            elif data.get(name) is not None:
                hp[name] = data[name]
        return hp

    def add_service_errors(self, problems: dict[str, list[str]]) -> list[str]:
        """Field problems beside their fields; the rest (unknown keys) come back as 'name: message' lines."""
        other = []
        for key, messages in problems.items():
            target = key if key in self.fields else None
            for message in messages:
                if target:
                    self.add_error(target, message)
                else:
                    other.append(f"{key}: {message}")
        return other
