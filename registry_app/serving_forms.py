"""Deployment forms: types only; registry_app.services.deployments says what is allowed and its problems are put
back beside the fields here (``variants.<row>.<field>`` beside that row's field).

The family is chosen first (a plain GET form), so the variants' version selects list only that family's
versions plus "follow production"; the variants are a formset of rows (label, version, weight) and empty rows are
left out.
"""

from django import forms

from registry_app.models import ModelVersion, RegisteredModel

FOLLOW = ""
EXTRA_ROWS = 2


class FamilyForm(forms.Form):
    model = forms.ModelChoiceField(queryset=RegisteredModel.objects.order_by("name"), label="Model family")


class DeploymentForm(forms.Form):
    name = forms.CharField(
        max_length=100, required=False,
        help_text="the `model` clients send; letters, digits, hyphens and underscores",
    )  # fmt: skip

    def add_service_errors(self, problems: dict) -> None:
        for field, messages in problems.items():
            if field == "name":
                for message in messages:
                    self.add_error("name", message)


def version_choices(model: RegisteredModel) -> list[tuple[str, str]]:
    versions = ModelVersion.objects.filter(model=model).order_by("-number")
    return [(FOLLOW, "follow production (the alias)")] + [
        (str(v.pk), f"{v}{f' ({v.alias})' if v.alias else ''}") for v in versions
    ]


class VariantForm(forms.Form):
    label = forms.CharField(max_length=40, required=False)
    version = forms.ChoiceField(choices=[], required=False)
    weight = forms.IntegerField(required=False, help_text="share, relative to the others")

    def __init__(self, *args, choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"].choices = list(choices)

    def is_empty_row(self) -> bool:
        data = self.cleaned_data
        return (
            not (data.get("label") or "").strip() and data.get("weight") is None and not data.get("version")
        )


VariantFormSet = forms.formset_factory(VariantForm, extra=EXTRA_ROWS, max_num=10, absolute_max=10)


def variant_formset(model: RegisteredModel, data=None, initial=None):
    """Posted rows are compared with nothing (no ``initial``), so a row left as it was shown still counts."""
    return VariantFormSet(
        data, prefix="variants", initial=None if data is not None else initial,
        form_kwargs={"choices": version_choices(model)},
    )  # fmt: skip


def formset_variants(formset, model: RegisteredModel) -> tuple[list[dict], list]:
    """The non-empty rows as the service's variant dicts, and the forms they came from (same order)."""
    versions = {str(v.pk): v for v in ModelVersion.objects.filter(model=model)}
    variants, forms_used = [], []
    for form in formset.forms:
        if form.is_empty_row():
            continue
        data = form.cleaned_data
        variants.append({"label": (data.get("label") or "").strip(),
                         "version": versions.get(data.get("version") or FOLLOW),
                         "weight": data.get("weight")})  # fmt: skip
        forms_used.append(form)
    return variants, forms_used


def add_variant_errors(formset, forms_used: list, problems: dict) -> list[str]:
    """Row problems beside their fields; the problems about the split as a whole are returned."""
    general = []
    for key, messages in problems.items():
        parts = key.split(".")
        if parts[0] == "variants" and len(parts) == 3 and int(parts[1]) < len(forms_used):
            for message in messages:
                forms_used[int(parts[1])].add_error(parts[2], message)
        elif key not in ("name",):
            general.extend(messages)
    return general


def variants_initial(deployment) -> list[dict]:
    return [{"label": v.label, "version": str(v.version_id) if v.version_id else FOLLOW, "weight": v.weight}
            for v in deployment.variants.all()]  # fmt: skip


def default_split(model: RegisteredModel) -> list[dict]:
    """90/10 between production and the family's newest version that is not production."""
    newest = ModelVersion.objects.filter(model=model).exclude(alias="production").order_by("-number").first()
    return [{"label": "production", "version": FOLLOW, "weight": 90},
            {"label": "candidate-1", "version": str(newest.pk) if newest else FOLLOW, "weight": 10}]  # fmt: skip
