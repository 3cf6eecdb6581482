"""The base model import form: types only; registry_app.base_imports says what is allowed."""

from django import forms

from registry_app.models import ImportSource, ModelTask


class BaseImportForm(forms.Form):
    # name and location are checked by the service, so that their problems show beside the others
    name = forms.CharField(
        max_length=100, required=False, help_text="a new model, or an existing one to add a base version to"
    )
    task = forms.ChoiceField(choices=ModelTask.choices, initial=ModelTask.CAUSAL_LM)
    source = forms.ChoiceField(
        choices=ImportSource.choices, initial=ImportSource.FOLDER, widget=forms.RadioSelect
    )
    location = forms.CharField(
        max_length=500, required=False, label="Folder or hub id",
        help_text="an absolute folder path under the import roots, or owner/name on the hub",
    )  # fmt: skip
    revision = forms.CharField(max_length=100, required=False, help_text="hub only: branch, tag or commit")

    def add_service_errors(self, problems: dict) -> None:
        for field, messages in problems.items():
            for message in messages:
                self.add_error(field if field in self.fields else None, message)
