"""The study form: types only (JSON objects parse, counts are numbers); the service checks the values."""

import json

from django import forms

from registry_app.models import ModelVersion, VersionFormat
from training_app.forms import METHODS, ready_versions

DEFAULT_FIXED = {"max_steps": 200, "eval_every": 25, "batch_size": 8}
DEFAULT_SPACE = {
    "lr": {"type": "log_uniform", "low": 1e-5, "high": 1e-3},
    "lora_r": {"type": "choice", "choices": [4, 8, 16, 32]},
    "epochs": {"type": "int", "low": 1, "high": 3},
}
SPACE_HELP = (
    'One entry per setting: {"type": "log_uniform" | "uniform" | "int", "low": …, "high": …} '
    'or {"type": "choice", "choices": […]}. Any setting of the fine-tune form may be searched.'
)


class JSONObjectField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "mono"})

    def to_python(self, value):
        text = super().to_python(value).strip()
        if not text:
            return {}
        try:
            data = json.loads(text)
        except ValueError as e:
            raise forms.ValidationError(f"is not valid JSON: {e}") from e
        if not isinstance(data, dict):
            raise forms.ValidationError("must be a JSON object")
        return data

    def prepare_value(self, value):
        return json.dumps(value, indent=2) if isinstance(value, dict) else value


class StudyForm(forms.Form):
    name = forms.CharField(max_length=200)
    base = forms.ModelChoiceField(queryset=ModelVersion.objects.none(), label="Base model")
    dataset_version = forms.ModelChoiceField(queryset=None, label="Dataset version",
                                             help_text="needs a validation split: trials are ranked by its loss")  # fmt: skip
    method = forms.ChoiceField(choices=[(m, m) for m in METHODS])
    hyperparameters = JSONObjectField(
        required=False, label="Fixed settings", help_text="the same in every trial"
    )
    search_space = JSONObjectField(label="Ranges", help_text=SPACE_HELP)
    coarse_trials = forms.IntegerField(label="Coarse trials (TPE)", min_value=1, max_value=200)
    fine_trials = forms.IntegerField(label="Fine trials (grid around the best)", min_value=0, max_value=200)
    parallelism = forms.IntegerField(min_value=1, max_value=32, help_text="trials queued at once")
    seed = forms.IntegerField()
    prune_startup_trials = forms.IntegerField(label="Prune after", min_value=0, max_value=100,
                                              help_text="completed trials before the median pruner acts")  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["base"].queryset = (
            ModelVersion.objects.filter(format=VersionFormat.HF).select_related("model").order_by("-pk")
        )
        self.fields["dataset_version"].queryset = ready_versions()

    def add_service_errors(self, problems: dict[str, list[str]]) -> None:
        """Range problems under the ranges field ("lr: …"), the engine's under the fixed settings ("lr: …")."""
        for key, messages in problems.items():
            for message in messages:
                if key.startswith("search_space."):
                    self.add_error("search_space", f"{key.removeprefix('search_space.')}: {message}")
                elif key in self.fields:
                    self.add_error(key, message)
                else:
                    self.add_error("hyperparameters", f"{key}: {message}")


INITIAL = {"hyperparameters": DEFAULT_FIXED, "search_space": DEFAULT_SPACE, "coarse_trials": 8, "fine_trials": 4,
           "parallelism": 1, "seed": 0, "prune_startup_trials": 2, "method": "lora"}  # fmt: skip
