"""Validation of the error notebook's pages: list filters, case edits, status changes, bulk actions, new cases."""

from datetime import date
from urllib.parse import urlencode

from django import forms
from django.contrib.auth import get_user_model

from datasets_app.models import CaseStatus, Severity, Source, Tag, TaskType
from datasets_app.selectors import CaseFilters

MAX_QUERY = 200


def filters_from(data, problems: list[str] | None = None) -> CaseFilters:
    """The list filters in a query string; a bad value is dropped and named in `problems`, never a 500."""
    problems = problems if problems is not None else []
    filters = CaseFilters(
        tag=data.get("tag", "").strip()[:50],
        product=data.get("product", "").strip()[:100],
        q=data.get("q", "").strip()[:MAX_QUERY],
    )
    for name, allowed in (("status", CaseStatus), ("severity", Severity), ("source", Source)):
        value = data.get(name, "").strip()
        if value and value not in allowed.values:
            problems.append(f"{name}: “{value}” is not one of {', '.join(allowed.values)}; filter ignored")
        elif value:
            setattr(filters, name, value)
    assignee = data.get("assignee", "").strip()
    if assignee and assignee != "none" and not assignee.isdigit():
        problems.append(f"assignee: “{assignee}” is not a user; filter ignored")
    elif assignee:
        filters.assignee = assignee
    for name in ("date_from", "date_to"):
        value = data.get(name, "").strip()
        if not value:
            continue
        try:
            setattr(filters, name, date.fromisoformat(value))
        except ValueError:
            problems.append(f"{name}: “{value}” is not a date (use YYYY-MM-DD); filter ignored")
    return filters


def filters_query(filters: CaseFilters, **extra) -> str:
    """The filters as a query string (empty values left out), to carry them through links and forms."""
    pairs = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in vars(filters).items() if v}
    pairs.update({k: v for k, v in extra.items() if v})
    return urlencode(pairs)


def int_or_none(value) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _users():
    return get_user_model().objects.filter(is_active=True).order_by("username")


def _active_tags():
    return Tag.objects.filter(is_active=True).order_by("label", "name")


class CaseEditForm(forms.Form):
    """Expected output and the other editable fields. Only the fields a form posts are changed."""

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    expected_output = forms.CharField(
        required=False, strip=False, widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "true"})
    )
    severity = forms.ChoiceField(choices=Severity.choices)
    task_type = forms.ChoiceField(choices=TaskType.choices)
    product = forms.CharField(required=False, max_length=100)
    feature = forms.CharField(required=False, max_length=100)
    model_version = forms.CharField(required=False, max_length=200)
    assignee = forms.ModelChoiceField(queryset=_users(), required=False, empty_label="(unassigned)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = _users()
        if self.is_bound:  # a partial form (triage posts only the expected output) leaves the rest alone
            for name in list(self.fields):
                if name != "version" and name not in self.data:
                    del self.fields[name]

    def changes(self) -> dict:
        return {k: v for k, v in self.cleaned_data.items() if k != "version"}

    @classmethod
    def for_case(cls, case) -> "CaseEditForm":
        fields = ("expected_output", "severity", "task_type", "product", "feature", "model_version")
        initial = {name: getattr(case, name) for name in fields}
        return cls(initial={**initial, "assignee": case.assignee_id, "version": case.version})


class CaseTagsForm(forms.Form):
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    tags = forms.ModelMultipleChoiceField(
        queryset=_active_tags(), to_field_name="name", required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tags"].queryset = _active_tags()

    @classmethod
    def for_case(cls, case) -> "CaseTagsForm":
        return cls(initial={"version": case.version, "tags": [t.name for t in case.tags.all()]})


class StatusForm(forms.Form):
    """The PM's own status moves; approve and reject have their own views and permission."""

    status = forms.ChoiceField(
        choices=[(s, s) for s in (CaseStatus.NEW, CaseStatus.TRIAGED, CaseStatus.CORRECTED)]
    )
    version = forms.IntegerField(required=False, min_value=1)


class RejectForm(forms.Form):
    reason = forms.CharField(max_length=2000)
    version = forms.IntegerField(required=False, min_value=1)


class CommentForm(forms.Form):
    body = forms.CharField(max_length=10_000, widget=forms.Textarea(attrs={"rows": 3}))


BULK_ACTIONS = ("tag", "untag", "assign", "status", "delete")
BULK_STATUSES = (
    CaseStatus.TRIAGED,
    CaseStatus.NEW,
    CaseStatus.CORRECTED,
    CaseStatus.APPROVED,
    CaseStatus.REJECTED,
)


def bulk_permission(action: str, status: str = "") -> str:
    """The permission a bulk action needs on top of cases.view."""
    if action == "delete":
        return "cases.delete"
    if action == "status" and status in (CaseStatus.APPROVED, CaseStatus.REJECTED):
        return "cases.approve"
    return "cases.edit"


class BulkForm(forms.Form):
    ids = forms.TypedMultipleChoiceField(
        coerce=int, choices=(), error_messages={"required": "select cases first"}
    )
    action = forms.ChoiceField(choices=[(a, a) for a in BULK_ACTIONS])
    tag = forms.CharField(required=False, max_length=50)
    assignee = forms.CharField(required=False, max_length=20)
    status = forms.ChoiceField(required=False, choices=[("", "—")] + [(s, s) for s in BULK_STATUSES])
    reason = forms.CharField(required=False, max_length=2000)
    confirm = forms.CharField(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        values = self.data.getlist("ids") if hasattr(self.data, "getlist") else self.data.get("ids", [])
        self.fields["ids"].choices = [(v, v) for v in values if str(v).isdigit()]

    def clean(self):
        data = super().clean()
        action = data.get("action")
        if action in ("tag", "untag") and not data.get("tag"):
            self.add_error("tag", "choose a tag")
        if action == "assign" and data.get("assignee") not in ("", "none") and not data["assignee"].isdigit():
            self.add_error("assignee", "choose a user")
        if action == "status" and not data.get("status"):
            self.add_error("status", "choose a status")
        if action == "status" and data.get("status") == CaseStatus.REJECTED and not data["reason"].strip():
            self.add_error("reason", "a rejection needs a reason")
        if action == "delete" and data.get("confirm") != "yes":
            self.add_error("confirm", "deleting cases needs an explicit confirmation (confirm=yes)")
        return data

    def service_arguments(self) -> dict:
        """action, value and reason as cases_bulk_action takes them."""
        data = self.cleaned_data
        action = data["action"]
        value = {
            "tag": data["tag"],
            "untag": data["tag"],
            "assign": data["assignee"],
            "status": data["status"],
        }
        value = value.get(action, "")
        if action == "assign" and value == "none":
            value = ""
        return {"action": action, "value": value, "reason": data["reason"].strip()}


class CaseCreateForm(forms.Form):
    system_prompt = forms.CharField(required=False, strip=False, widget=forms.Textarea(attrs={"rows": 2}))
    user_input = forms.CharField(strip=False, widget=forms.Textarea(attrs={"rows": 4}))
    bad_output = forms.CharField(strip=False, widget=forms.Textarea(attrs={"rows": 4}))
    expected_output = forms.CharField(required=False, strip=False, widget=forms.Textarea(attrs={"rows": 4}))
    tags = forms.ModelMultipleChoiceField(
        queryset=_active_tags(), to_field_name="name", required=False, widget=forms.CheckboxSelectMultiple
    )
    severity = forms.ChoiceField(choices=Severity.choices, initial=Severity.MEDIUM)
    task_type = forms.ChoiceField(choices=TaskType.choices, initial=TaskType.CHAT)
    product = forms.CharField(required=False, max_length=100)
    feature = forms.CharField(required=False, max_length=100)
    model_version = forms.CharField(required=False, max_length=200)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tags"].queryset = _active_tags()

    def clean(self):
        data = super().clean()
        for name in ("user_input", "bad_output"):
            if name in data and not data[name].strip():
                self.add_error(name, "this field cannot be blank")
        return data

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        messages = (
            [{"role": "system", "content": data["system_prompt"]}] if data["system_prompt"].strip() else []
        )
        messages.append({"role": "user", "content": data["user_input"]})
        fields = (
            "severity",
            "task_type",
            "product",
            "feature",
            "model_version",
            "expected_output",
            "bad_output",
        )
        return {
            "messages": messages,
            "tags": [t.name for t in data["tags"]],
            **{name: data[name] for name in fields},
        }
