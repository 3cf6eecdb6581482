"""Evaluation forms: types only. What values are allowed is the services' business
(evaluation_app.services.submit / compare), whose ValidationError is put back beside the fields here.

The run form is flat HTML (no JS needed): the rules are a small formset of rows (kind + the fields that kind
reads), the few-shot turns a JSON-lines textarea, the judge and generation settings plain fields gathered into
the dicts the service takes.
"""

import json

from django import forms

from datasets_app.models import DatasetVersion, VersionStatus
from evaluation_app.models import EvalRun, Lang, Suite
from llmops.jobs import JobStatus
from registry_app.models import ModelVersion

RULE_KINDS = [
    ("", "—"),
    ("regex_must", "regex must match"),
    ("regex_must_not", "regex must not match"),
    ("json_valid", "valid JSON"),
    ("json_schema", "JSON schema"),
    ("keywords_required", "keywords required"),
    ("keywords_forbidden", "keywords forbidden"),
    ("length", "length (characters)"),
]
RUBRICS = [("correctness", "correctness"), ("helpfulness", "helpfulness"), ("safety", "safety")]
SPLITS = [("test", "test"), ("validation", "validation"), ("train", "train")]
# service problem key -> the form field it is shown beside
SERVICE_FIELDS = {"judge": "judge_base_url", "generation": "max_new_tokens"}


class RuleForm(forms.Form):
    kind = forms.ChoiceField(choices=RULE_KINDS, required=False)
    name = forms.CharField(max_length=100, required=False)
    pattern = forms.CharField(max_length=500, required=False, help_text="regex rules")
    ignore_case = forms.BooleanField(required=False, label="ignore case")
    keywords = forms.CharField(max_length=1000, required=False, help_text="comma-separated")
    schema = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), label="JSON schema")
    min_chars = forms.IntegerField(required=False, min_value=0)
    max_chars = forms.IntegerField(required=False, min_value=0)

    def to_rule(self) -> dict | None:
        """The rule dict workers.evaluate.rules reads, or None for an empty row."""
        data = self.cleaned_data
        kind = data.get("kind")
        if not kind:
            return None
        rule: dict = {"kind": kind}
        if data.get("name"):
            rule["name"] = data["name"]
        if kind.startswith("regex"):
            rule["pattern"] = data.get("pattern") or ""
            if data.get("ignore_case"):
                rule["flags"] = "i"
        elif kind == "json_schema":
            rule["schema"] = data.get("schema") or ""
        elif kind.startswith("keywords"):
            rule["keywords"] = [k.strip() for k in (data.get("keywords") or "").split(",") if k.strip()]
        elif kind == "length":
            for key in ("min_chars", "max_chars"):
                if data.get(key) is not None:
                    rule[key] = data[key]
        return rule


RuleFormSet = forms.formset_factory(RuleForm, extra=3, max_num=20)


def ready_versions():
    return DatasetVersion.objects.filter(status=VersionStatus.READY).select_related("dataset").order_by("-pk")


class RunForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    model_version = forms.ModelChoiceField(queryset=ModelVersion.objects.none(), label="Model version")
    dataset_version = forms.ModelChoiceField(
        queryset=DatasetVersion.objects.none(), required=False, label="Dataset version",
        help_text="leave empty to run a product's regression suite instead",
    )  # fmt: skip
    split = forms.ChoiceField(choices=SPLITS, initial="test")
    product = forms.CharField(
        max_length=100, required=False, label="Regression suite of product",
        help_text="without a dataset version: the product's approved error cases (empty: every product)",
    )  # fmt: skip
    suites = forms.MultipleChoiceField(
        choices=Suite.choices, widget=forms.CheckboxSelectMultiple, required=False, initial=["task"]
    )
    system_prompt = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    few_shot = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, label="Few-shot turns",
        help_text='one JSON object a line: {"user": "...", "assistant": "..."}',
    )  # fmt: skip
    judge_base_url = forms.CharField(max_length=500, required=False, label="Judge base URL")
    judge_model = forms.CharField(max_length=200, required=False, label="Judge model")
    judge_rubrics = forms.MultipleChoiceField(
        choices=RUBRICS, widget=forms.CheckboxSelectMultiple, required=False, initial=["correctness"],
        label="Judge rubrics",
    )  # fmt: skip
    judge_api_key_env = forms.CharField(
        max_length=100, required=False, label="API key environment variable",
        help_text="the name of a variable on the workers, never the key itself",
    )  # fmt: skip
    max_new_tokens = forms.IntegerField(required=False, label="Max new tokens")
    temperature = forms.FloatField(required=False, help_text="empty or 0: greedy")
    stop = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        label="Stop sequences",
        help_text="one a line",
    )
    general_pack = forms.BooleanField(required=False, initial=True, label="Score the general-capability pack")
    pass_threshold = forms.FloatField(initial=0.5, label="Pass threshold")
    limit = forms.IntegerField(required=False, help_text="score only the first N examples")
    lang = forms.ChoiceField(
        choices=Lang.choices, initial=Lang.AUTO, required=False, label="Tokenise BLEU/ROUGE as"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model_version"].queryset = ModelVersion.objects.select_related("model").order_by(
            "model__name", "-number"
        )
        self.fields["dataset_version"].queryset = ready_versions()

    def clean_few_shot(self) -> list[dict]:
        turns, errors = [], []
        for number, line in enumerate((self.cleaned_data.get("few_shot") or "").splitlines(), 1):
            if not line.strip():
                continue
            try:
                turn = json.loads(line)
            except ValueError as exc:
                errors.append(f"line {number}: not JSON ({exc.msg})")
                continue
            if not isinstance(turn, dict) or not {"user", "assistant"} <= set(turn):
                errors.append(f'line {number}: needs "user" and "assistant"')
                continue
            turns.append({"user": str(turn["user"]), "assistant": str(turn["assistant"])})
        if errors:
            raise forms.ValidationError(errors)
        return turns

    def judge(self) -> dict | None:
        data = self.cleaned_data
        if not data.get("judge_base_url") and not data.get("judge_model"):
            return None
        judge = {"base_url": data["judge_base_url"], "model": data["judge_model"],
                 "rubrics": list(data.get("judge_rubrics") or ["correctness"])}  # fmt: skip
        if data.get("judge_api_key_env"):
            judge["api_key_env"] = data["judge_api_key_env"]
        return judge

    def generation(self) -> dict:
        data = self.cleaned_data
        generation: dict = {}
        if data.get("max_new_tokens") is not None:
            generation["max_new_tokens"] = data["max_new_tokens"]
        if data.get("temperature"):
            generation.update(temperature=data["temperature"], do_sample=True)
        stop = [s for s in (data.get("stop") or "").splitlines() if s]
        if stop:
            generation["stop"] = stop
        return generation

    def submit_kwargs(self, rules: list[dict]) -> dict:
        data = self.cleaned_data
        return {"name": data["name"], "model_version": data["model_version"],
                "dataset_version": data.get("dataset_version"), "split": data["split"],
                "product": data.get("product") or "", "suites": list(data.get("suites") or ["task"]),
                "rules": rules, "judge": self.judge(), "generation": self.generation(),
                "system_prompt": data.get("system_prompt") or "", "few_shot": data["few_shot"],
                "general_pack": data["general_pack"], "pass_threshold": data["pass_threshold"],
                "limit": data.get("limit"), "lang": data.get("lang") or "auto"}  # fmt: skip

    def add_service_errors(self, problems: dict[str, list[str]]) -> list[str]:
        """Field problems beside their fields; the rules' problems come back to be shown above the rules."""
        rule_problems = []
        for key, messages in problems.items():
            if key == "rules":
                rule_problems.extend(messages)
                continue
            target = SERVICE_FIELDS.get(key, key)
            for message in messages:
                self.add_error(target if target in self.fields else None, message)
        return rule_problems


def comparable_runs():
    live = (JobStatus.SUCCEEDED, JobStatus.QUEUED, JobStatus.RUNNING)
    return EvalRun.objects.filter(status__in=live).select_related("model_version__model").order_by("-pk")


class RunChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, run) -> str:
        name = f" “{run.name}”" if run.name else ""
        return f"#{run.pk}{name}: {run.model_version} on {run.source_label} ({run.status})"


class ReportForm(forms.Form):
    baseline = RunChoiceField(queryset=EvalRun.objects.none(), label="Baseline run")
    candidate = RunChoiceField(queryset=EvalRun.objects.none(), label="Candidate run")
    name = forms.CharField(max_length=200, required=False)
    forgetting_threshold = forms.FloatField(
        required=False, min_value=0, max_value=1, label="Forgetting threshold",
        help_text="a general-pack score drop beyond this (0..1) is flagged; empty for the default",
    )  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["baseline"].queryset = comparable_runs()
        self.fields["candidate"].queryset = comparable_runs()

    def add_service_errors(self, problems: dict[str, list[str]]) -> None:
        for key, messages in problems.items():
            for message in messages:
                self.add_error(key if key in self.fields else None, message)


class LabelForm(forms.Form):
    label = forms.ChoiceField(choices=[("good", "good"), ("bad", "bad"), ("", "clear")], required=False)
