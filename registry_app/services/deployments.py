"""Deployments: what a client's ``model`` name serves, and the A/B split of its traffic between the family's
production version and one or more candidates (e.g. 90/10). The gateway (registry_app.gateway) routes by these
rows; the A/B dashboard (registry_app.experiments) reads what it logged.

- A deployment is running (traffic split by the variants' weights) or stopped (all traffic to production). Saving
  a new split with ``deployment_update`` starts the experiment again.
- Exactly one variant is the production arm: it follows the family's production alias (version None, the usual
  choice: it moves when production moves) or is pinned to the version production points at now. The others are
  candidates pinned to versions of the same family.
- Every problem is gathered under the name of its input (``name``, ``model``, ``variants``, and
  ``variants.<row>.<label|version|weight>`` with rows counted from 0) and nothing is written when there is one.
- The winner of an experiment is promoted through the gate: ``experiment_promote_winner`` files a promotion
  request to production for it, which an architect decides like any other.
- Creating, changing and stopping are audited.
"""

import re

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from llmops.roles import has_perm
from registry_app.models import (
    Alias,
    Deployment,
    DeploymentStatus,
    DeploymentVariant,
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
)

SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")
MAX_VARIANTS = 10
MAX_WEIGHT = 1_000_000
MAX_LABEL = 40


def _audit(**kwargs):
    from registry_app.services.promotion import audit

    return audit(**kwargs)


def _require_manage(user) -> None:
    if not has_perm(user, "serving.manage"):
        raise PermissionDenied("your roles do not include the permission serving.manage")


def follows_production(variant_version: ModelVersion | None) -> bool:
    """Whether a variant's version makes it the production arm."""
    return variant_version is None or variant_version.alias == Alias.PRODUCTION


def _name_problems(name, model, problems: dict) -> None:
    if not isinstance(name, str) or not name.strip():
        problems.setdefault("name", []).append("Give the deployment a name: the `model` clients will send.")
        return
    if len(name) > 100 or not SLUG.match(name):
        problems.setdefault("name", []).append(
            "Use at most 100 letters, digits, hyphens or underscores (it is the `model` clients send)."
        )
        return
    if Deployment.objects.filter(name=name).exists():
        problems.setdefault("name", []).append(f"A deployment named {name!r} exists already.")
    other = RegisteredModel.objects.filter(name=name)
    if isinstance(model, RegisteredModel):
        other = other.exclude(pk=model.pk)
    if other.exists():
        problems.setdefault("name", []).append(
            f"{name!r} is another model family's name: clients sending it must keep reaching that family."
        )


def _variant_problems(model: RegisteredModel, variants, problems: dict) -> list[dict]:
    """The variants as clean dicts; their problems go into ``problems``."""
    if not isinstance(variants, list | tuple) or not variants:
        problems.setdefault("variants", []).append("Add at least one variant (the production one).")
        return []
    if len(variants) > MAX_VARIANTS:
        problems.setdefault("variants", []).append(f"At most {MAX_VARIANTS} variants, not {len(variants)}.")
    clean, seen = [], set()
    for i, raw in enumerate(variants):
        raw = raw if isinstance(raw, dict) else {}
        label = raw.get("label").strip() if isinstance(raw.get("label"), str) else ""
        version, weight = raw.get("version"), raw.get("weight")
        key = f"variants.{i}"
        if not label or len(label) > MAX_LABEL:
            problems.setdefault(f"{key}.label", []).append(
                f"Variant {i + 1}: give a label of 1 to {MAX_LABEL} characters (e.g. production, candidate-1)."
            )
        elif label in seen:
            problems.setdefault(f"{key}.label", []).append(
                f"Variant {i + 1}: the label {label!r} is used twice."
            )
        seen.add(label)
        if version is not None and not isinstance(version, ModelVersion):
            problems.setdefault(f"{key}.version", []).append(f"Variant {i + 1}: choose a registered version.")
            version = None
        elif version is not None and version.model_id != model.pk:
            problems.setdefault(f"{key}.version", []).append(
                f"Variant {i + 1}: {version} is not a version of {model.name}."
            )
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 < weight <= MAX_WEIGHT:
            problems.setdefault(f"{key}.weight", []).append(
                f"Variant {i + 1}: the weight must be a whole number from 1 to {MAX_WEIGHT}."
            )
        clean.append({"label": label, "version": version, "weight": weight})
    arms = sum(1 for v in clean if follows_production(v["version"]))
    if arms != 1:
        problems.setdefault("variants", []).append(
            "Exactly one variant must serve production: follow the production alias (no version) or pin the "
            f"version production points at now; {arms} do."
        )
    return clean


def _split(deployment: Deployment) -> list[dict]:
    return [
        {"label": v.label, "version": v.version_id, "weight": v.weight} for v in deployment.variants.all()
    ]


def _write_variants(deployment: Deployment, variants: list[dict]) -> None:
    deployment.variants.all().delete()
    DeploymentVariant.objects.bulk_create(
        DeploymentVariant(deployment=deployment, label=v["label"], version=v["version"], weight=v["weight"],
                          position=i)
        for i, v in enumerate(variants)
    )  # fmt: skip


@transaction.atomic
def deployment_create(*, user, model: RegisteredModel, name: str, variants: list[dict]) -> Deployment:
    """A running deployment of ``model`` named ``name`` with these variants ({label, version|None, weight})."""
    _require_manage(user)
    problems: dict[str, list[str]] = {}
    if not isinstance(model, RegisteredModel):
        problems["model"] = ["Choose a registered model family."]
    _name_problems(name, model, problems)
    clean = _variant_problems(model, variants, problems) if "model" not in problems else []
    if problems:
        raise ValidationError(problems)
    deployment = Deployment.objects.create(name=name, model=model, created_by=user)
    _write_variants(deployment, clean)
    _audit(actor=user, action="deployment.created", model=model,
           comment=f"deployment {name} created", snapshot={"deployment": name, "variants": _split(deployment)})  # fmt: skip
    return deployment


@transaction.atomic
def deployment_update(*, user, deployment: Deployment, variants: list[dict]) -> Deployment:
    """Replace the split; a stopped deployment runs again with it (a new experiment)."""
    _require_manage(user)
    deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
    problems: dict[str, list[str]] = {}
    clean = _variant_problems(deployment.model, variants, problems)
    if problems:
        raise ValidationError(problems)
    before = _split(deployment)
    _write_variants(deployment, clean)
    restarted = deployment.status != DeploymentStatus.RUNNING
    deployment.status, deployment.stopped_at = DeploymentStatus.RUNNING, None
    deployment.save(update_fields=["status", "stopped_at"])
    _audit(actor=user, action="deployment.updated", model=deployment.model,
           comment=f"deployment {deployment.name}: split changed" + (" and restarted" if restarted else ""),
           snapshot={"deployment": deployment.name, "before": before, "after": _split(deployment)})  # fmt: skip
    return deployment


@transaction.atomic
def deployment_stop(*, user, deployment: Deployment, comment: str = "") -> Deployment:
    """Stop the experiment: all traffic goes to production; the variants stay for the record."""
    _require_manage(user)
    deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
    if deployment.status == DeploymentStatus.STOPPED:
        raise ValidationError({"status": [f"The experiment on {deployment.name} is stopped already."]})
    deployment.status, deployment.stopped_at = DeploymentStatus.STOPPED, timezone.now()
    deployment.save(update_fields=["status", "stopped_at"])
    _audit(actor=user, action="experiment.stopped", model=deployment.model,
           comment=comment or f"experiment on {deployment.name} stopped: all traffic to production",
           snapshot={"deployment": deployment.name, "variants": _split(deployment)})  # fmt: skip
    return deployment


@transaction.atomic
def experiment_promote_winner(
    *, user, deployment: Deployment, label: str, comment: str = ""
) -> PromotionRequest:
    """File a promotion request to production for the version of the candidate ``label`` (through the gate)."""
    from registry_app.services.promotion import promotion_request_create

    _require_manage(user)
    variant = deployment.variants.select_related("version__model").filter(label=label).first()
    if variant is None:
        raise ValidationError({"label": [f"{deployment.name} has no variant {label!r}."]})
    if follows_production(variant.version):
        raise ValidationError({"label": [f"The variant {label!r} already serves production."]})
    note = comment or f"Winner of the A/B experiment on deployment {deployment.name} (variant {label})."
    return promotion_request_create(user=user, version=variant.version, target=Alias.PRODUCTION.value,
                                    comment=note)  # fmt: skip
