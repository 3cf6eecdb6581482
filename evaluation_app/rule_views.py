"""Rules declared per dataset: a small form of rows (kind, pattern / keywords / schema / length bounds)."""

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render

from datasets_app.models import Dataset
from evaluation_app.forms import RuleFormSet
from evaluation_app.services.dataset_rules import dataset_rules_set
from llmops.roles import role_required


def rule_initial(rule: dict) -> dict:
    """A stored rule as the initial values of one form row."""
    schema = rule.get("schema", "")
    return {
        "kind": rule.get("kind", ""), "name": rule.get("name", ""), "pattern": rule.get("pattern", ""),
        "ignore_case": "i" in (rule.get("flags") or ""), "keywords": ", ".join(rule.get("keywords") or []),
        "schema": json.dumps(schema) if isinstance(schema, dict) else schema,
        "min_chars": rule.get("min_chars"), "max_chars": rule.get("max_chars"),
    }  # fmt: skip


@role_required("evaluation.submit")
def dataset_rules(request, pk: int):
    dataset = get_object_or_404(Dataset, pk=pk)
    initial = [rule_initial(rule) for rule in dataset.eval_rules or []]
    formset = RuleFormSet(request.POST or None, prefix="rules", initial=initial)
    problems: list[str] = []
    if request.method == "POST" and formset.is_valid():
        rules = [rule for form in formset.forms if (rule := form.to_rule())]
        try:
            dataset_rules_set(user=request.user, dataset=dataset, rules=rules)
        except ValidationError as e:
            problems = e.message_dict.get("rules", e.messages)
        else:
            messages.success(
                request, f"{len(rules)} rule(s) saved; every evaluation of {dataset} applies them."
            )
            return redirect("evaluation:dataset-rules", pk=dataset.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "evaluation_app/dataset_rules.html",
                  {"dataset": dataset, "rules": formset, "rule_problems": problems}, status=status)  # fmt: skip
