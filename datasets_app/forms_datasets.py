"""Validation of the dataset pages: a new dataset, an uploaded source file, and the recipe form of a new version.

The recipe form is flat, one input per setting. `RecipeForm.recipe()` turns it into the nested recipe dict that
datasets_app/pipeline/recipe.py checks; every problem of that check (keyed by a dotted recipe path such as
"steps.split.train") is put next to the input it concerns, and a path no input stands for goes to the list at the
top of the form. `initial_from(recipe)` is the way back, to start a version from another one's settings.
"""

import re

from django import forms

from datasets_app.models import Dataset, DatasetTask, Tag
from datasets_app.pipeline.recipe import LANGUAGES, SENSITIVE_ACTIONS, Recipe, RecipeError
from datasets_app.selectors_datasets import version_choices

API_KEY_KEPT = "***"  # what the page shows for a back-translation key copied from the version it started from


class DatasetForm(forms.Form):
    name = forms.CharField(max_length=100)
    task_type = forms.ChoiceField(choices=DatasetTask.choices)
    product = forms.CharField(max_length=100, required=False)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    is_general = forms.BooleanField(required=False, help_text=Dataset._meta.get_field("is_general").help_text)


class SourceFileForm(forms.Form):
    file = forms.FileField(
        help_text="JSONL, CSV, Parquet, or a zip of a Hugging Face datasets folder (save_to_disk)."
    )


# ---- the recipe ----------------------------------------------------------------------------------------------------

# form field -> the recipe path it stands for; problems of a longer path go to the field of its longest known prefix
PATHS = {
    "use_cases": "sources.cases",
    "case_tags": "sources.cases.tags",
    "case_products": "sources.cases.products",
    "case_date_from": "sources.cases.date_from",
    "case_date_to": "sources.cases.date_to",
    "files": "sources.files",
    "parent_version": "sources.parent_version",
    "replay_version": "sources.replay.version",
    "replay_ratio": "sources.replay.ratio",
    "nfkc": "steps.normalise.nfkc",
    "strip_invisible": "steps.normalise.strip_invisible",
    "collapse_whitespace": "steps.normalise.collapse_whitespace",
    "min_tokens": "steps.filter.min_tokens",
    "max_tokens": "steps.filter.max_tokens",
    "tokenizer": "steps.filter.tokenizer",
    "drop_degenerate": "steps.filter.drop_degenerate",
    "languages": "steps.filter.languages",
    "sensitive_action": "steps.sensitive.action",
    "labels": "steps.integrity.labels",
    "json_output": "steps.integrity.json_output",
    "dedup_exact": "steps.dedup.exact",
    "dedup_near": "steps.dedup.near",
    "dedup_threshold": "steps.dedup.threshold",
    "synonyms_ratio": "steps.augment.synonyms.ratio",
    "synonyms_table": "steps.augment.synonyms.table",
    "noise_ratio": "steps.augment.noise.ratio",
    "noise_rate": "steps.augment.noise.rate",
    "bt_ratio": "steps.augment.backtranslation.ratio",
    "bt_endpoint": "steps.augment.backtranslation.endpoint",
    "bt_model": "steps.augment.backtranslation.model",
    "bt_api_key": "steps.augment.backtranslation.api_key",
    "bt_pivot": "steps.augment.backtranslation.pivot",
    "split_train": "steps.split.train",
    "split_validation": "steps.split.validation",
    "split_test": "steps.split.test",
    "split_seed": "steps.split.seed",
    "stratify": "steps.split.stratify",
    "pinned_test_version": "steps.split.pinned_test_version",
}
FIELD_OF_PATH = {path: name for name, path in PATHS.items()} | {
    "sources.replay": "replay_version",
    "steps.split": "split_train",
    "steps.augment.synonyms": "synonyms_ratio",
    "steps.augment.noise": "noise_ratio",
    "steps.augment.backtranslation": "bt_ratio",
}
SPLIT_FIELDS = ("split_train", "split_validation", "split_test")


def field_for(path: str) -> str | None:
    """The form field a recipe problem belongs to, or None (then it is listed at the top)."""
    path = re.sub(r"\[\d+\]", "", path)
    while path:
        if path in FIELD_OF_PATH:
            return FIELD_OF_PATH[path]
        path = path.rpartition(".")[0]
    return None


def _words(text: str) -> list[str]:
    """A comma list (ASCII or full-width commas) as its non-empty items."""
    return [w.strip() for w in re.split(r"[,，]", text or "") if w.strip()]


def _synonym_lines(table: dict) -> str:
    return "\n".join(f"{word}: {', '.join(synonyms)}" for word, synonyms in table.items())


def _checkbox(**kwargs) -> forms.BooleanField:
    return forms.BooleanField(required=False, **kwargs)


def _version_field(label: str, help_text: str = "") -> forms.TypedChoiceField:
    return forms.TypedChoiceField(
        label=label, required=False, coerce=int, empty_value=None, choices=(), help_text=help_text
    )


class RecipeForm(forms.Form):
    from_version = forms.IntegerField(required=False, widget=forms.HiddenInput)
    # sources
    use_cases = _checkbox(label="Approved error cases")
    case_tags = forms.ModelMultipleChoiceField(
        queryset=Tag.objects.none(), to_field_name="name", required=False, label="Tags (any of; none = all)",
        widget=forms.SelectMultiple(attrs={"size": 6}),
    )  # fmt: skip
    case_products = forms.CharField(required=False, label="Products", help_text="comma list; empty = all")
    case_date_from = forms.DateField(
        required=False, label="Created from", widget=forms.DateInput(attrs={"type": "date"})
    )
    case_date_to = forms.DateField(
        required=False, label="Created to", widget=forms.DateInput(attrs={"type": "date"})
    )
    files = forms.TypedMultipleChoiceField(
        coerce=int, required=False, choices=(), label="Uploaded files", widget=forms.CheckboxSelectMultiple
    )
    parent_version = _version_field("Parent version", "every row of it is read again (then the steps run)")
    replay_version = _version_field(
        "Replay version", "general-purpose rows added to train against forgetting"
    )
    replay_ratio = forms.FloatField(
        required=False, label="Replay ratio", help_text="replayed rows ÷ task rows"
    )
    # steps
    nfkc = _checkbox(label="NFKC (full-width → ASCII)")
    strip_invisible = _checkbox(label="Strip invisible and control characters")
    collapse_whitespace = _checkbox(label="Collapse whitespace")
    min_tokens = forms.IntegerField(label="Min tokens")
    max_tokens = forms.IntegerField(label="Max tokens")
    tokenizer = forms.CharField(
        required=False, label="Tokenizer folder", help_text="a local Hugging Face tokenizer; empty = estimate"
    )
    drop_degenerate = _checkbox(label="Drop degenerate answers (empty, repetitive, boilerplate)")
    languages = forms.MultipleChoiceField(
        required=False, choices=[(x, x) for x in LANGUAGES], widget=forms.CheckboxSelectMultiple,
        label="Languages (none = any)",
    )  # fmt: skip
    sensitive_action = forms.ChoiceField(
        choices=[(x, x) for x in SENSITIVE_ACTIONS], label="Sensitive words", widget=forms.RadioSelect
    )
    labels = forms.CharField(required=False, label="Label set", help_text="classification only; comma list")
    json_output = _checkbox(label="The answer must be JSON")
    dedup_exact = _checkbox(label="Drop exact duplicates")
    dedup_near = _checkbox(label="Drop near duplicates")
    dedup_threshold = forms.FloatField(label="Near-duplicate threshold (Jaccard)")
    synonyms_ratio = forms.FloatField(label="Synonym swap ratio")
    synonyms_table = forms.CharField(
        required=False, label="Synonym table", widget=forms.Textarea(attrs={"rows": 3}),
        help_text="one word a line: word: synonym, synonym",
    )  # fmt: skip
    noise_ratio = forms.FloatField(label="Character noise ratio")
    noise_rate = forms.FloatField(label="Noise rate (share of characters)")
    bt_ratio = forms.FloatField(label="Back-translation ratio")
    bt_endpoint = forms.CharField(required=False, label="Endpoint (OpenAI-compatible base URL)")
    bt_model = forms.CharField(required=False, label="Model")
    bt_api_key = forms.CharField(
        required=False, label="API key", widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"})
    )  # fmt: skip
    bt_pivot = forms.CharField(label="Pivot language")
    split_train = forms.FloatField(label="Train")
    split_validation = forms.FloatField(label="Validation")
    split_test = forms.FloatField(label="Test")
    split_seed = forms.IntegerField(label="Seed")
    stratify = _checkbox(label="Stratify by category")
    pinned_test_version = _version_field("Pinned test split", "reuse that version's test split verbatim")

    def __init__(self, *args, dataset: Dataset, kept_api_key: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.dataset, self.kept_api_key, self.top_errors = dataset, kept_api_key, []
        self.fields["case_tags"].queryset = Tag.objects.filter(is_active=True).order_by("label", "name")
        self.fields["files"].choices = [(f.pk, f"{f.name} ({f.file_format})") for f in dataset.files.all()]
        for name, kind in (("parent_version", "parent"), ("replay_version", "replay"),
                           ("pinned_test_version", "pinned")):  # fmt: skip
            self.fields[name].choices = [("", "—"), *version_choices(dataset, kind)]

    def clean_synonyms_table(self) -> dict[str, list[str]]:
        table, problems = {}, []
        for number, line in enumerate((self.cleaned_data.get("synonyms_table") or "").splitlines(), 1):
            if not line.strip():
                continue
            word, colon, rest = line.partition(":")
            if not colon:
                word, colon, rest = line.partition("：")
            if not colon or not word.strip() or not _words(rest):
                problems.append(f"line {number}: write it as “word: synonym, synonym”")
                continue
            table[word.strip()] = _words(rest)
        if problems:
            raise forms.ValidationError(problems)
        return table

    def clean(self):
        data = super().clean()
        try:
            Recipe.from_dict({**self.recipe(), "task_type": self.dataset.task_type})
        except RecipeError as e:
            self.add_recipe_errors(e.problems)
        return data

    def add_recipe_errors(self, problems: dict[str, list[str]]) -> None:
        """Each problem next to its input (a split ratio problem also shows by the other ratios' inputs)."""
        for path, messages in problems.items():
            name = field_for(path)
            if name is None:
                self.top_errors += [f"{path}: {m}" for m in messages]
            elif name not in self.errors:  # a type error of the input itself says enough
                self.add_error(name, list(messages))

    def has_split_errors(self) -> bool:
        return any(name in self.errors for name in SPLIT_FIELDS)

    def recipe(self) -> dict:
        """The recipe dict from the cleaned values; an input that failed its own check is left to its default."""
        d = self.cleaned_data
        recipe: dict = {"sources": {}, "steps": {}}

        def put(path: str, value) -> None:
            *parents, leaf = path.split(".")
            node = recipe
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value

        if d.get("use_cases"):
            cases = {
                "tags": [t.name for t in d.get("case_tags") or []],
                "products": _words(d.get("case_products")),
            }
            for name in ("case_date_from", "case_date_to"):
                cases[name.removeprefix("case_")] = d[name].isoformat() if d.get(name) else ""
            put("sources.cases", cases)
        else:
            put("sources.cases", None)
        if d.get("replay_version") is not None:
            ratio = d.get("replay_ratio")
            put("sources.replay", {"version": d["replay_version"], "ratio": 0.2 if ratio is None else ratio})
        skip = {"use_cases", "case_tags", "case_products", "case_date_from", "case_date_to", "replay_version",
                "replay_ratio", "bt_api_key"}  # fmt: skip
        for name, path in PATHS.items():
            if name in skip or name not in d:
                continue
            value = d[name]
            if name in ("labels",):
                value = _words(value)
            elif name in ("files", "languages"):
                value = list(value)
            if value is None and name not in ("parent_version", "pinned_test_version"):
                continue  # an empty number: the recipe's default
            put(path, value)
        key = d.get("bt_api_key") or ""
        put("steps.augment.backtranslation.api_key", key or self.kept_api_key)
        return recipe


def initial_from(recipe: dict | None, task_type: str) -> dict:
    """The form's initial values for a recipe (None: the defaults, with the approved error cases on)."""
    try:
        full = Recipe.from_dict({**(recipe or {}), "task_type": task_type}).to_dict()
    except RecipeError:
        full = Recipe(task_type=task_type).to_dict()
        if recipe:  # an old recipe that no longer checks: keep what can be read of it
            full["sources"].update(recipe.get("sources") or {})
    initial = {}
    for name, path in PATHS.items():
        node = full
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        initial[name] = node
    cases = full["sources"].get("cases")
    initial["use_cases"] = cases is not None or recipe is None
    initial.update(case_tags=(cases or {}).get("tags", []), case_products=", ".join((cases or {}).get("products", [])),
                   case_date_from=(cases or {}).get("date_from") or None, case_date_to=(cases or {}).get("date_to") or None)  # fmt: skip
    replay = full["sources"].get("replay") or {}
    initial.update(replay_version=replay.get("version"), replay_ratio=replay.get("ratio", 0.2))
    initial["labels"] = ", ".join(initial.get("labels") or [])
    initial["synonyms_table"] = _synonym_lines(initial.get("synonyms_table") or {})
    initial["bt_api_key"] = ""
    return initial
