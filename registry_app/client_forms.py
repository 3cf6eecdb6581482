"""Forms of the client-application pages: types only; registry_app.services.clients checks the rest."""

from django import forms


class ClientAppForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="The product that calls the gateway, e.g. support-widget."
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    rate_limit_per_minute = forms.IntegerField(
        min_value=0,
        max_value=1_000_000,
        initial=600,
        help_text="Requests per minute over all its tokens; 0: no limit.",
    )

    def add_service_errors(self, problems: dict) -> None:
        for field, messages in problems.items():
            for message in messages:
                self.add_error(field if field in self.fields else None, message)


class ClientTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Where it is used, e.g. production or staging.")
    expires_in_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=3650,
        label="Expires in (days)",
        help_text="Empty: never expires.",
    )

    add_service_errors = ClientAppForm.add_service_errors
