"""Leakage check of a run: which of its examples the model already saw in training, exactly or nearly.

The model version's training data is on record (its lineage names the dataset versions that trained it and its
bases); their train rows stream past a near-duplicate index of the run's examples, as the dataset build's own
test-against-train check does (datasets_app.pipeline.leakage). A base registered from a folder has no training
data on record: the check says so instead of claiming zero.
"""

from itertools import chain

from datasets_app.pipeline.leakage import KINDS, leak_matches
from datasets_app.pipeline.types import Example
from datasets_app.services.leakage import model_training_versions
from datasets_app.services.version_rows import version_examples
from evaluation_app.models import EvalRun
from evaluation_app.services.examples import EvalExample

LISTED = 200


def run_leakage(run: EvalRun, examples: list[EvalExample]) -> tuple[dict, list[str]]:
    """(the run's leakage summary, per example "exact" | "near" | "")."""
    trained_on = model_training_versions(run.model_version)
    if not trained_on:
        note = "no training data on record for this model version (a base model): nothing to check against"
        return {
            "checked": False,
            "exact": 0,
            "near": 0,
            "examples": [],
            "training_versions": [],
            "note": note,
        }, [""] * len(examples)
    threshold = float(((trained_on[-1].recipe or {}).get("dedup") or {}).get("threshold") or 0.8)
    test = [Example(e.task_type, e.fields, "eval", {"position": e.position}) for e in examples]
    train = chain.from_iterable(version_examples(v.pk, split="train") for v in trained_on)
    found = leak_matches(train, test, threshold)
    kinds = [KINDS.get(int(k), "") for k in found.kind]
    listed = [{"position": e.position, "key": e.key, "kind": kind, "case": e.case_id}
              for e, kind in zip(examples, kinds, strict=True) if kind][:LISTED]  # fmt: skip
    summary = {
        "checked": True, "exact": kinds.count("exact"), "near": kinds.count("near"), "examples": listed,
        "checked_train": found.checked_train, "threshold": threshold,
        "training_versions": [{"id": v.pk, "label": str(v)} for v in trained_on], "note": "",
    }  # fmt: skip
    return summary, kinds
