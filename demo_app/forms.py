from django import forms

from demo_app.models import DemoModel


class DemoRunForm(forms.Form):
    model = forms.ChoiceField(choices=DemoModel.choices, initial=DemoModel.MINILM)
    steps = forms.IntegerField(
        required=False, min_value=1, max_value=100_000, help_text="Optimizer steps; empty: the tuned default."
    )
