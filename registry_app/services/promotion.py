"""Promotion writes: requests, architects' decisions, alias moves, rollback, gate policies, and the audit log.

Every decision goes through here so that its rules hold for the pages and the API alike:
- only holders of registry.approve decide, never on their own request (PermissionDenied, with the reason);
- the gate is evaluated again when an architect approves (production may have moved since the request), and each
  failed item needs a written override reason; the results and the reasons go into the audit snapshot;
- an alias held by one version per family (staging, production) is moved by ``alias_set``, which first moves the
  previous holder aside (production → archived, staging → candidate) and records an AliasChange;
- every write appends an AuditEntry (append-only: the model, its queryset and a PostgreSQL trigger refuse changes).
Families are locked (select_for_update) while their aliases move, so two approvals cannot interleave.
"""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from llmops.roles import has_perm
from registry_app import gate, selectors
from registry_app.models import (
    PROMOTION_TARGETS,
    SINGLE_ALIASES,
    Alias,
    AliasChange,
    AuditEntry,
    GatePolicy,
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
    RequestStatus,
)

OWN_REQUEST = "the requester cannot approve their own request"
DISPLACED = {Alias.PRODUCTION: Alias.ARCHIVED, Alias.STAGING: Alias.CANDIDATE}
MAX_COMMENT = 5000


def audit(*, actor, action: str, model=None, version=None, request=None, comment: str = "", snapshot=None):
    """Append one entry to the audit log."""
    if model is None and version is not None:
        model = version.model
    return AuditEntry.objects.create(actor=actor, action=action, model=model, version=version, request=request,
                                     comment=comment or "", snapshot=snapshot or {})  # fmt: skip


def _version_label(version: ModelVersion | None) -> str | None:
    return None if version is None else f"{version.model.name} v{version.number}"


def _lock_family(model: RegisteredModel) -> RegisteredModel:
    return RegisteredModel.objects.select_for_update().get(pk=model.pk)


def gate_check(version: ModelVersion) -> tuple[list[dict], object]:
    """The gate rows for a version now, and the comparison report they read (None when there is none)."""
    facts, report = selectors.gate_facts(version)
    return gate.evaluate(selectors.gate_items(version.model), facts), report


@transaction.atomic
def alias_set(
    *, user, version: ModelVersion, alias: str, reason: str = "manual", request=None
) -> ModelVersion:
    """Point ``alias`` at ``version``; a single alias's previous holder is moved aside first."""
    if alias not in Alias.values:
        raise ValidationError({"alias": [f"must be one of {', '.join(a for a in Alias.values if a)}"]})
    model, given = _lock_family(version.model), version
    version = ModelVersion.objects.select_for_update().select_related("model").get(pk=version.pk)
    previous = None
    if alias in SINGLE_ALIASES:
        previous = model.versions.filter(alias=alias).exclude(pk=version.pk).first()
        if previous is not None:
            previous.alias = DISPLACED[alias]
            previous.save(update_fields=["alias"])
    old = version.alias
    version.alias = alias
    version.save(update_fields=["alias"])
    given.alias = alias
    AliasChange.objects.create(model=model, alias=alias, version=version, previous=previous, reason=reason,
                               request=request, actor=user)  # fmt: skip
    audit(actor=user, action="alias.moved", model=model, version=version, request=request,
          snapshot={"alias": alias, "from": old, "reason": reason, "previous": _version_label(previous),
                    "previous_now": previous.alias if previous else None})  # fmt: skip
    return version


@transaction.atomic
def promotion_request_create(
    *, user, version: ModelVersion, target: str, comment: str = ""
) -> PromotionRequest:
    problems: dict[str, list[str]] = {}
    version.refresh_from_db(fields=["alias"])
    if target not in PROMOTION_TARGETS:
        problems["target"] = [f"must be one of {', '.join(PROMOTION_TARGETS)} (got {target!r})"]
    elif version.alias == target:
        problems["target"] = [f"{_version_label(version)} already holds {target}"]
    elif PromotionRequest.objects.filter(
        version=version, target=target, status=RequestStatus.PENDING
    ).exists():
        problems["target"] = [f"an open request to promote {_version_label(version)} to {target} exists"]
    if len(comment or "") > MAX_COMMENT:
        problems["comment"] = [f"must be at most {MAX_COMMENT} characters"]
    if problems:
        raise ValidationError(problems)
    rows, report = gate_check(version)
    request = PromotionRequest.objects.create(version=version, target=target, comment=comment or "",
                                              report=report, gate=rows, requested_by=user)  # fmt: skip
    audit(actor=user, action="promotion.requested", version=version, request=request, comment=comment,
          snapshot={"target": target, "gate": rows, "report": getattr(report, "pk", None)})  # fmt: skip
    return request


def _decider_check(user, request: PromotionRequest) -> None:
    if not has_perm(user, "registry.approve"):
        raise PermissionDenied("your roles do not include the permission registry.approve")
    if request.requested_by_id == user.pk:
        raise PermissionDenied(OWN_REQUEST)


def _pending(request: PromotionRequest) -> PromotionRequest:
    locked = PromotionRequest.objects.select_for_update().select_related("version__model").get(pk=request.pk)
    if locked.status != RequestStatus.PENDING:
        raise ValidationError({"status": [f"request #{locked.pk} is already {locked.status}"]})
    return locked


def _overrides(rows: list[dict], given: dict | None) -> tuple[dict[str, str], dict[str, list[str]]]:
    given = given if isinstance(given, dict) else {}
    kept, problems = {}, {}
    for row in gate.failed(rows):
        reason = given.get(row["key"])
        reason = reason.strip() if isinstance(reason, str) else ""
        if reason:
            kept[row["key"]] = reason
        else:
            problems[f"override_{row['key']}"] = [
                f"the gate item {row['key']} ({row['label']}) failed: overriding it needs a written reason"
            ]
    return kept, problems


@transaction.atomic
def promotion_approve(
    *, user, request: PromotionRequest, comment: str, overrides: dict[str, str] | None = None
):
    _decider_check(user, request)
    _lock_family(request.version.model)
    request = _pending(request)
    rows, report = gate_check(request.version)
    kept, problems = _overrides(rows, overrides)
    if request.version.alias == request.target:
        problems["target"] = [f"{_version_label(request.version)} already holds {request.target}"]
    if problems:
        raise ValidationError(problems)
    request.gate, request.report, request.overrides = rows, report, kept
    request.status, request.decided_by, request.decided_at = RequestStatus.APPROVED, user, timezone.now()
    request.decision_comment = comment or ""
    request.save(update_fields=["gate", "report", "overrides", "status", "decided_by", "decided_at",
                                "decision_comment"])  # fmt: skip
    alias_set(user=user, version=request.version, alias=request.target, reason="promotion", request=request)
    audit(actor=user, action="promotion.approved", version=request.version, request=request, comment=comment,
          snapshot={"target": request.target, "gate": rows, "overrides": kept,
                    "report": getattr(report, "pk", None)})  # fmt: skip
    return request


@transaction.atomic
def promotion_reject(*, user, request: PromotionRequest, comment: str) -> PromotionRequest:
    _decider_check(user, request)
    if not (comment or "").strip():
        raise ValidationError({"comment": ["a rejection needs a comment saying why"]})
    request = _pending(request)
    request.status, request.decided_by, request.decided_at = RequestStatus.REJECTED, user, timezone.now()
    request.decision_comment = comment.strip()
    request.save(update_fields=["status", "decided_by", "decided_at", "decision_comment"])
    audit(actor=user, action="promotion.rejected", version=request.version, request=request, comment=comment,
          snapshot={"target": request.target, "gate": request.gate})  # fmt: skip
    return request


@transaction.atomic
def promotion_withdraw(*, user, request: PromotionRequest) -> PromotionRequest:
    if request.requested_by_id != user.pk:
        raise PermissionDenied("only the requester can withdraw a promotion request")
    request = _pending(request)
    request.status, request.decided_at = RequestStatus.WITHDRAWN, timezone.now()
    request.save(update_fields=["status", "decided_at"])
    audit(actor=user, action="promotion.withdrawn", version=request.version, request=request,
          snapshot={"target": request.target})  # fmt: skip
    return request


@transaction.atomic
def production_rollback(*, user, model: RegisteredModel, comment: str = "") -> ModelVersion:
    """Production goes back to the previous production version; the current one is archived."""
    if not has_perm(user, "registry.rollback"):
        raise PermissionDenied("your roles do not include the permission registry.rollback")
    model = _lock_family(model)
    current = selectors.production_of(model)
    target = selectors.previous_production(model)
    if target is None:
        raise ValidationError({"model": [f"{model.name} has no previous production version to roll back to"]})
    alias_set(user=user, version=target, alias=Alias.PRODUCTION, reason="rollback")
    audit(actor=user, action="production.rollback", model=model, version=target, comment=comment,
          snapshot={"from": _version_label(current), "to": _version_label(target)})  # fmt: skip
    target.refresh_from_db()
    return target


@transaction.atomic
def gate_policy_update(*, user, model: RegisteredModel, items: dict) -> GatePolicy:
    if not has_perm(user, "registry.gate"):
        raise PermissionDenied("your roles do not include the permission registry.gate")
    cleaned, problems = gate.validate_items(items)
    if problems:
        raise ValidationError(problems)
    policy, _ = GatePolicy.objects.select_for_update().get_or_create(model=model)
    old = dict(policy.items or {})
    policy.items, policy.updated_by, policy.updated_at = cleaned, user, timezone.now()
    policy.save()
    audit(actor=user, action="gate.updated", model=model, snapshot={"old": old, "new": cleaned})
    return policy
