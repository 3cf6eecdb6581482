"""The compression form, one per method: it carries only the fields that method takes (quantisation: backend and
the INT4 group size; pruning: sparsity (not 2:4), then-INT8 and the recovery fine-tune; distillation: a student
or the shape of a smaller copy of the teacher, alpha, temperature and its training; pruning's recovery may be
taught by the source with the same alpha and temperature), plus the source and the
evaluation set every method has. Types and the two plain ranges (sparsity in (0, 1), temperature above 0) are
checked here; everything else (shapes, hardware, data) by ``compression_submit``, whose problems come back beside
their fields. Help texts are the engine's CompressConfig field docs."""

from django import forms

from datasets_app.models import DatasetVersion, VersionStatus
from registry_app.models import ModelVersion, VersionFormat, VersionSource
from training_app.forms import ready_versions
from workers.compress.config import ACTIVATION_SCALES, BACKENDS, GROUP_SIZES, LABELS, PRUNE, QUANTIZE

TRAINING = ("steps", "learning_rate", "dataset_version")
TEACHER = ("recovery_teacher", "alpha", "temperature")
PRUNING = ("sparsity", "then_int8", *TRAINING, *TEACHER)
STUDENT = ("student", "student_layers", "student_hidden_size", "student_intermediate_size", "student_heads")
METHOD_FIELDS: dict[str, tuple[str, ...]] = {
    "int8_dynamic": ("activation_scales",),
    "int8_weight_only": ("backend",),
    "int4_weight_only": ("backend", "group_size"),
    "prune_magnitude": PRUNING,
    "prune_2_4": ("then_int8", *TRAINING, *TEACHER),
    "prune_heads": PRUNING,
    "prune_mlp": PRUNING,
    "distill": (*STUDENT, "alpha", "temperature", "then_int8", *TRAINING),
}
COMMON = ("source", "eval_dataset_version", "eval_split")
# fields that are versions or the evaluation choice, not engine settings
NOT_SETTINGS = ("source", "dataset_version", "student", "eval_dataset_version", "eval_split", "method")
DEFAULTS = {"sparsity": 0.5, "steps": 0, "learning_rate": 5e-5, "alpha": 0.5, "temperature": 2.0,
            "group_size": 128, "backend": "torchao", "eval_split": "test",
            "activation_scales": "tensor"}  # fmt: skip


def _all_fields() -> dict[str, forms.Field]:
    return {
        "source": forms.ModelChoiceField(queryset=ModelVersion.objects.none(), label="Source version",
                                         help_text="The version compressed (the teacher, for distillation)."),
        "eval_dataset_version": forms.ModelChoiceField(
            queryset=DatasetVersion.objects.none(), required=False, label="Evaluation dataset version",
            help_text="Source and result are both scored on it; empty: benchmark only."),
        "eval_split": forms.ChoiceField(choices=[(s, s) for s in ("test", "validation", "train")],
                                        label="Evaluation split"),
        "activation_scales": forms.ChoiceField(
            choices=[(c, c) for c in ACTIVATION_SCALES], required=False, label="Activation scales",
            help_text="tensor: one scale per batch (fastest); token: one per token (more predictions equal to "
                      "the source's, ~15% slower)."),
        "backend": forms.ChoiceField(choices=[(b, b) for b in BACKENDS],
                                     help_text="torchao, or bitsandbytes (CUDA only, when installed)."),
        "group_size": forms.TypedChoiceField(choices=[(g, g) for g in GROUP_SIZES], coerce=int, label="Group size",
                                             help_text="INT4: weights per quantisation group."),
        "sparsity": forms.FloatField(help_text="Share of weights (magnitude), heads or MLP channels removed, "
                                               "strictly between 0 and 1."),
        "then_int8": forms.BooleanField(required=False, label="Then INT8",
                                        help_text="Quantise the result with INT8 dynamic (CPU serving)."),
        "steps": forms.IntegerField(min_value=0, label="Training steps",
                                    help_text="Recovery fine-tune after pruning (0: none); distillation needs ≥ 1."),
        "learning_rate": forms.FloatField(label="Learning rate"),
        "dataset_version": forms.ModelChoiceField(
            queryset=DatasetVersion.objects.none(), required=False, label="Training dataset version",
            help_text="The recovery fine-tune's or the distillation's data."),
        "student": forms.ModelChoiceField(
            queryset=ModelVersion.objects.none(), required=False, label="Student version",
            help_text="A smaller registered base of the same task and tokenizer; or leave it empty and shrink a "
                      "copy of the teacher below."),
        "student_layers": forms.IntegerField(required=False, min_value=1, label="Student layers",
                                             help_text="Keep this many of the teacher's layers (evenly spaced)."),
        "student_hidden_size": forms.IntegerField(required=False, min_value=1, label="Student hidden size"),
        "student_intermediate_size": forms.IntegerField(required=False, min_value=1,
                                                        label="Student intermediate size"),
        "student_heads": forms.IntegerField(required=False, min_value=1, label="Student heads"),
        "recovery_teacher": forms.BooleanField(
            required=False, label="Source teaches the recovery",
            help_text="During the recovery steps the unpruned source is the teacher (alpha, temperature below), "
                      "not the labels alone: keeps more of its accuracy."),
        "alpha": forms.FloatField(required=False, help_text="Weight of the KL term: alpha · T² · KL + (1 − alpha) · "
                                                             "cross-entropy (empty: 0.5)."),
        "temperature": forms.FloatField(required=False,
                                        help_text="Softmax temperature of teacher and student; above 0 (empty: 2)."),
        # the method is the page's; a hidden field so that the service's problems about it have a place
        "method": forms.CharField(required=False, widget=forms.HiddenInput),
    }  # fmt: skip


class CompressForm(forms.Form):
    def __init__(self, method: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.method = method
        every = _all_fields()
        for name in (*COMMON, *METHOD_FIELDS[method], "method"):
            self.fields[name] = every[name]
        self.fields["source"].queryset = (
            ModelVersion.objects.filter(format__in=[VersionFormat.HF, VersionFormat.PEFT_ADAPTER])
            .select_related("model").order_by("model__name", "-number")
        )  # fmt: skip
        self.fields["eval_dataset_version"].queryset = (
            DatasetVersion.objects.filter(status=VersionStatus.READY)
            .select_related("dataset")
            .order_by("-pk")
        )
        if "dataset_version" in self.fields:
            self.fields["dataset_version"].queryset = ready_versions()
        if "student" in self.fields:
            self.fields["student"].queryset = (
                ModelVersion.objects.filter(format=VersionFormat.HF, source__in=[VersionSource.BASE, VersionSource.FINE_TUNE])
                .select_related("model").order_by("model__name", "-number")
            )  # fmt: skip

    @property
    def label(self) -> str:
        return LABELS[self.method]

    def method_fields(self) -> list:
        return [self[name] for name in METHOD_FIELDS[self.method]]

    def clean_sparsity(self):
        value = self.cleaned_data.get("sparsity")
        if value is not None and not 0 < value < 1:
            raise forms.ValidationError(f"must be strictly between 0 and 1 (got {value:g})")
        return value

    def clean_temperature(self):
        value = self.cleaned_data.get("temperature")
        if value is not None and value <= 0:
            raise forms.ValidationError(f"must be above 0 (got {value:g})")
        return value

    def options(self) -> dict:
        """The engine settings the user chose (CompressConfig field names); versions are passed apart."""
        data = self.cleaned_data
        return {
            name: data[name]
            for name in self.fields
            if name not in NOT_SETTINGS and data.get(name) not in (None, "")
        }

    def submit_arguments(self) -> dict:
        data = self.cleaned_data
        return {"source": data["source"], "method": self.method, "options": self.options(),
                "dataset_version": data.get("dataset_version"), "student": data.get("student"),
                "eval_dataset_version": data.get("eval_dataset_version"),
                "eval_split": data.get("eval_split") or "test"}  # fmt: skip

    def add_service_errors(self, problems: dict[str, list[str]]) -> None:
        """Each problem beside the field it names; a setting this form has no field for becomes a form error."""
        for key, messages in problems.items():
            for message in messages:
                if key in self.fields:
                    self.add_error(key, message)
                else:
                    self.add_error(None, f"{key}: {message}")


def is_method(method: str) -> bool:
    return method in METHOD_FIELDS


__all__ = ["CompressForm", "DEFAULTS", "METHOD_FIELDS", "PRUNE", "QUANTIZE", "is_method"]
