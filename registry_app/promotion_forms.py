"""Promotion forms: types only; registry_app.services.promotion and registry_app.gate say what is allowed, and their
problems are shown by the field they name (``add_service_errors``)."""

from django import forms

from registry_app.gate import ITEMS, validate_items
from registry_app.models import PROMOTION_TARGETS
from registry_app.services.promotion import MAX_COMMENT


def add_service_errors(form: forms.Form, problems: dict) -> None:
    for key, messages in problems.items():
        form.add_error(key if key in form.fields else None, messages)


class PromotionRequestForm(forms.Form):
    target = forms.ChoiceField(choices=[(t.value, t.label) for t in PROMOTION_TARGETS])
    comment = forms.CharField(
        required=False, max_length=MAX_COMMENT, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="why this version should be promoted (what it fixes, which evaluation shows it)",
    )  # fmt: skip


class ApproveForm(forms.Form):
    """A comment, and one override reason field per gate item that failed."""

    comment = forms.CharField(
        required=False, max_length=MAX_COMMENT, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args, failed: list[dict] = (), **kwargs):
        super().__init__(*args, **kwargs)
        for row in failed:
            self.fields[f"override_{row['key']}"] = forms.CharField(
                required=False, max_length=2000, label=f"Override reason: {row['label']}",
                widget=forms.Textarea(attrs={"rows": 2}),
                help_text="this item failed; approving past it needs a written reason",
            )  # fmt: skip

    def overrides(self) -> dict[str, str]:
        return {name.removeprefix("override_"): value for name, value in self.cleaned_data.items()
                if name.startswith("override_") and value}  # fmt: skip


class RejectForm(forms.Form):
    comment = forms.CharField(
        required=False, max_length=MAX_COMMENT, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="required: tell the requester why",
    )  # fmt: skip


class GatePolicyForm(forms.Form):
    """One field per gate item; empty means not checked. Ranges are checked by gate.validate_items."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for item in ITEMS:
            if item.kind == "metric":
                field = forms.CharField(required=False, max_length=100)
            elif item.kind == "flag":
                field = forms.BooleanField(required=False)
            else:
                field = forms.FloatField(required=False)
            field.label, field.help_text = item.label, item.help
            self.fields[item.key] = field

    def clean(self):
        """Range problems beside type problems, so that every bad field is named at once."""
        cleaned = super().clean()
        for key, reasons in validate_items(self.items())[1].items():
            self.add_error(key if key in self.fields else None, reasons)
        return cleaned

    def items(self) -> dict:
        """The policy's items: empty numbers and unticked flags are left out."""
        data = {}
        for key, value in self.cleaned_data.items():
            if value in (None, "", False):
                continue
            data[key] = int(value) if key == "max_size_bytes" and float(value).is_integer() else value
        return data


def initial_policy(items: dict) -> dict:
    return {item.key: items.get(item.key) for item in ITEMS if items.get(item.key) is not None}
