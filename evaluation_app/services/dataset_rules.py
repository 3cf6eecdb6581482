"""Rules declared once per dataset: every evaluation of one of its versions applies them (before the run's own)."""

from django.core.exceptions import ValidationError

from datasets_app.models import Dataset


def dataset_rules_set(*, user, dataset: Dataset, rules: list[dict]) -> Dataset:
    from workers.evaluate.rules import RuleError, validate_rules

    try:
        dataset.eval_rules = validate_rules(list(rules))
    except RuleError as e:
        raise ValidationError({"rules": e.problems}) from e
    dataset.save(update_fields=["eval_rules"])
    return dataset
