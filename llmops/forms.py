from django import forms

from llmops.models import ApiToken, DiagnosticJob


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What this token is for, e.g. 'ci-pipeline'.")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the token a name.")
        if ApiToken.objects.filter(user=self.user, name=name, revoked_at__isnull=True).exists():
            raise forms.ValidationError(f"You already have an active token named “{name}”.")
        return name


class DiagnosticJobForm(forms.ModelForm):
    class Meta:
        model = DiagnosticJob
        fields = ["seconds", "queue", "fail_at_end"]
        help_texts = {
            "seconds": "How long the job sleeps (0 to 3600).",
            "queue": "Which workers should run it.",
        }
