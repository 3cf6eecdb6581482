"""Leakage of a version's test split into the training data of a model version.

A model version records which dataset version trained it (its lineage); a fine-tune of a fine-tune inherits its
base's training data too, so the whole base chain counts. The test rows (originals only) are indexed; every train
row of those versions (augmented copies included: the model saw them) streams past the index, as the build's own
test-against-train check does (pipeline/leakage.py). Versions and model versions never change, so a report is
cached under their ids and content hashes.
"""

from itertools import chain

from django.core.cache import cache

from datasets_app.models import DatasetVersion, VersionStatus
from datasets_app.pipeline.leakage import leakage_report
from datasets_app.services.version_rows import version_examples

CACHE_SECONDS = 7 * 24 * 3600


def model_training_versions(model_version) -> list[DatasetVersion]:
    """The ready dataset versions that trained ``model_version`` and the versions it was derived from, oldest
    first. A base model registered from a folder has none on record (its pretraining data is unknown)."""
    ids, seen, current = [], set(), model_version
    while current is not None and current.pk not in seen:
        seen.add(current.pk)
        dataset_version = (current.lineage or {}).get("dataset_version")
        if isinstance(dataset_version, int) and dataset_version not in ids:
            ids.append(dataset_version)
        current = current.base
    found = DatasetVersion.objects.filter(pk__in=ids, status=VersionStatus.READY).select_related("dataset")
    by_id = {v.pk: v for v in found}
    return [by_id[pk] for pk in reversed(ids) if pk in by_id]


def leakage_against_model(*, version: DatasetVersion, model_version) -> dict:
    """``leakage_report`` of the version's test split against the model's training rows, plus which versions
    those were: ``{"exact", "near", "examples", "checked_test", "checked_train", "training_versions",
    "threshold"}``."""
    trained_on = model_training_versions(model_version)
    threshold = float(((version.recipe or {}).get("dedup") or {}).get("threshold") or 0.8)
    parts = [f"{v.pk}.{v.content_sha256}" for v in [version, *trained_on]]
    key = f"leakage:{threshold}:" + ":".join(parts)
    report = cache.get(key)
    if report is None:
        test = version_examples(version.pk, split="test", originals_only=True)
        train = chain.from_iterable(version_examples(v.pk, split="train") for v in trained_on)
        report = leakage_report(train, test, threshold)
        cache.set(key, report, CACHE_SECONDS)
    return {**report, "threshold": threshold,
            "training_versions": [{"id": v.pk, "label": str(v)} for v in trained_on]}  # fmt: skip
