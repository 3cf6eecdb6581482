"""A person's good/bad judgement of one prediction: what the LLM judge's agreement (Cohen's kappa) is measured on."""

from django.core.exceptions import ValidationError

from evaluation_app.models import EvalResult

LABELS = ("good", "bad", "")


def eval_result_label(*, user, result: EvalResult, label: str) -> EvalResult:
    if label not in LABELS:
        raise ValidationError({"label": ['must be "good", "bad" or empty (to clear it)']})
    result.human_label, result.human_labelled_by = label, (user if label else None)
    result.save(update_fields=["human_label", "human_labelled_by"])
    return result
