"""Promotion services: requests, the approval matrix, overrides of failed gate items, alias moves and rollback.

Versions are registered over the tiny model folder; evaluation runs and comparison reports are crafted rows with
summaries (no training, no scoring)."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from evaluation_app.models import ComparisonReport, EvalRun, ReportStatus
from registry_app.models import Alias, AliasChange, AuditEntry, GatePolicy, RequestStatus
from registry_app.services import base_model_register, derived_version_register
from registry_app.services.promotion import (
    alias_set,
    gate_policy_update,
    production_rollback,
    promotion_approve,
    promotion_reject,
    promotion_request_create,
    promotion_withdraw,
)


def new_version(user, folder, base=None):
    if base is None:
        return base_model_register(user=user, name="bot", path=folder)
    return derived_version_register(
        user=user, base=base, path=folder, source="fine_tune", fmt="hf", lineage={}
    )


def comparison(baseline, candidate, delta=0.05, low=0.01, leaked=0) -> ComparisonReport:
    """A computed report of ``candidate`` against ``baseline`` (both ModelVersions), finished after both exist."""
    done = timezone.now() + timedelta(seconds=1)
    runs = [EvalRun.objects.create(model_version=v, status="succeeded", finished_at=done)
            for v in (baseline, candidate)]  # fmt: skip
    summary = {
        "metrics": [{"name": "accuracy", "label": "accuracy", "baseline": 0.8, "candidate": 0.8 + delta,
                     "delta": delta, "low": low, "high": delta + 0.03, "p_value": 0.01}],
        "forgetting": {"checked": True, "drop": 0.0, "baseline": 0.5, "candidate": 0.5},
        "leakage": {"count": leaked, "checked": True},
    }  # fmt: skip
    return ComparisonReport.objects.create(baseline=runs[0], candidate=runs[1], status=ReportStatus.READY,
                                           summary=summary, computed_at=done + timedelta(seconds=1))  # fmt: skip


@pytest.fixture
def family(world, tiny_dir):
    """bot v1 (base, in production), v2 (a fine-tune of v1) and a gate asking for a gain of 0.02 and no leakage."""
    scientist, architect = world.users["Data Scientist"], world.users["Architect"]
    v1 = new_version(scientist, tiny_dir)
    v2 = new_version(scientist, tiny_dir, base=v1)
    alias_set(user=architect, version=v1, alias=Alias.PRODUCTION)
    GatePolicy.objects.create(model=v1.model, items={"min_gain": 0.02, "no_leakage": True})
    return v1, v2


def test_a_request_stores_the_gate_evaluated_on_the_comparison_with_production(world, family):
    v1, v2 = family
    report = comparison(v1, v2)
    request = promotion_request_create(user=world.users["Data Scientist"], version=v2, target="production")
    assert request.report == report
    assert [(r["key"], r["passed"]) for r in request.gate] == [("min_gain", True), ("no_leakage", True)]
    entry = AuditEntry.objects.get(action="promotion.requested")
    assert entry.request == request and entry.snapshot["gate"] == request.gate


def test_without_a_comparison_every_report_item_fails_saying_so(world, family):
    request = promotion_request_create(
        user=world.users["Data Scientist"], version=family[1], target="staging"
    )
    assert request.report is None
    assert all(not r["passed"] and "no comparison with production yet" in r["detail"] for r in request.gate)


def test_a_request_refuses_an_unknown_target_a_held_alias_and_a_duplicate(world, family):
    v1, v2 = family
    scientist = world.users["Data Scientist"]
    with pytest.raises(ValidationError) as unknown:
        promotion_request_create(user=scientist, version=v2, target="heaven")
    with pytest.raises(ValidationError) as held:
        promotion_request_create(user=scientist, version=v1, target="production")
    promotion_request_create(user=scientist, version=v2, target="staging")
    with pytest.raises(ValidationError) as duplicate:
        promotion_request_create(user=scientist, version=v2, target="staging")
    assert "must be one of" in unknown.value.message_dict["target"][0]
    assert "already holds production" in held.value.message_dict["target"][0]
    assert "open request" in duplicate.value.message_dict["target"][0]


@pytest.mark.parametrize("role", ["PM", "Data Scientist", "Admin"])
def test_only_architects_decide(world, family, role):
    comparison(*family)
    request = promotion_request_create(user=world.users["Architect"], version=family[1], target="production")
    for decide in (lambda: promotion_approve(user=world.users[role], request=request, comment=""),
                   lambda: promotion_reject(user=world.users[role], request=request, comment="no")):  # fmt: skip
        with pytest.raises(PermissionDenied):
            decide()
    request.refresh_from_db()
    assert request.status == RequestStatus.PENDING


def test_the_requester_cannot_approve_their_own_request(world, family):
    comparison(*family)
    architect = world.users["Architect"]
    request = promotion_request_create(user=architect, version=family[1], target="production")
    with pytest.raises(PermissionDenied, match="the requester cannot approve their own request"):
        promotion_approve(user=architect, request=request, comment="mine")


def test_an_approval_moves_production_and_archives_the_previous_holder(world, family):
    v1, v2 = family
    comparison(v1, v2)
    architect = world.users["Architect"]
    request = promotion_request_create(user=world.users["Data Scientist"], version=v2, target="production")
    promotion_approve(user=architect, request=request, comment="ship it")
    v1.refresh_from_db(), v2.refresh_from_db(), request.refresh_from_db()
    assert (v1.alias, v2.alias) == (Alias.ARCHIVED, Alias.PRODUCTION)
    assert request.status == RequestStatus.APPROVED and request.decided_by == architect
    change = AliasChange.objects.filter(alias="production").first()
    assert (change.version, change.previous, change.request, change.reason) == (v2, v1, request, "promotion")
    entry = AuditEntry.objects.get(action="promotion.approved")
    assert entry.actor == architect and entry.comment == "ship it"
    assert [r["key"] for r in entry.snapshot["gate"]] == ["min_gain", "no_leakage"]


def test_a_failed_item_needs_a_written_reason_and_the_reason_is_audited(world, family):
    v1, v2 = family
    comparison(v1, v2, delta=0.01, leaked=2)  # both items fail
    architect = world.users["Architect"]
    request = promotion_request_create(user=world.users["Data Scientist"], version=v2, target="production")
    with pytest.raises(ValidationError) as refused:
        promotion_approve(user=architect, request=request, comment="", overrides={"min_gain": "   "})
    assert set(refused.value.message_dict) == {"override_min_gain", "override_no_leakage"}
    assert "min_gain" in refused.value.message_dict["override_min_gain"][0]
    v2.refresh_from_db()
    assert v2.alias == "" and not AuditEntry.objects.filter(action="promotion.approved").exists()

    reasons = {
        "min_gain": "a small gain is enough for this fix",
        "no_leakage": "the two leaked rows are greetings",
    }
    promotion_approve(user=architect, request=request, comment="ok", overrides=reasons)
    v2.refresh_from_db()
    assert v2.alias == Alias.PRODUCTION
    assert AuditEntry.objects.get(action="promotion.approved").snapshot["overrides"] == reasons


def test_a_rejection_needs_a_comment_and_a_decided_request_cannot_be_decided_again(world, family):
    comparison(*family)
    architect = world.users["Architect"]
    request = promotion_request_create(
        user=world.users["Data Scientist"], version=family[1], target="staging"
    )
    with pytest.raises(ValidationError) as no_comment:
        promotion_reject(user=architect, request=request, comment="  ")
    assert "comment" in no_comment.value.message_dict
    promotion_reject(user=architect, request=request, comment="evaluate on the new suite first")
    with pytest.raises(ValidationError, match="already rejected"):
        promotion_approve(user=architect, request=request, comment="")
    assert AuditEntry.objects.get(action="promotion.rejected").comment == "evaluate on the new suite first"


def test_only_the_requester_withdraws(world, family):
    scientist = world.users["Data Scientist"]
    request = promotion_request_create(user=scientist, version=family[1], target="staging")
    with pytest.raises(PermissionDenied):
        promotion_withdraw(user=world.users["Architect"], request=request)
    assert promotion_withdraw(user=scientist, request=request).status == RequestStatus.WITHDRAWN
    assert AuditEntry.objects.filter(action="promotion.withdrawn").count() == 1


def test_rollback_returns_production_to_the_previous_version_step_by_step(world, family, tiny_dir):
    v1, v2 = family
    architect = world.users["Architect"]
    v3 = new_version(world.users["Data Scientist"], tiny_dir, base=v1)
    alias_set(user=architect, version=v2, alias=Alias.PRODUCTION, reason="promotion")
    alias_set(user=architect, version=v3, alias=Alias.PRODUCTION, reason="promotion")

    assert production_rollback(user=architect, model=v1.model, comment="errors spiked") == v2
    v3.refresh_from_db()
    assert v3.alias == Alias.ARCHIVED
    entry = AuditEntry.objects.get(action="production.rollback")
    assert entry.snapshot == {"from": "bot v3", "to": "bot v2"} and entry.comment == "errors spiked"
    assert production_rollback(user=architect, model=v1.model) == v1  # not back to v3, which was rolled back
    with pytest.raises(ValidationError, match="no previous production version"):
        production_rollback(user=architect, model=v1.model)


def test_rollback_with_no_previous_production_is_a_clear_error(world, tiny_dir):
    version = new_version(world.users["Data Scientist"], tiny_dir)
    with pytest.raises(ValidationError) as refused:
        production_rollback(user=world.users["Architect"], model=version.model)
    assert refused.value.message_dict["model"] == ["bot has no previous production version to roll back to"]
    with pytest.raises(PermissionDenied):
        production_rollback(user=world.users["Data Scientist"], model=version.model)


def test_a_gate_policy_edit_is_validated_and_audited_with_old_and_new(world, family):
    model, architect = family[0].model, world.users["Architect"]
    with pytest.raises(ValidationError) as refused:
        gate_policy_update(user=architect, model=model, items={"max_size_bytes": -1, "speed": 3})
    assert set(refused.value.message_dict) == {"max_size_bytes", "speed"}
    assert GatePolicy.objects.get(model=model).items == {"min_gain": 0.02, "no_leakage": True}
    gate_policy_update(user=architect, model=model, items={"min_gain": 0.01, "max_size_bytes": 10**9})
    entry = AuditEntry.objects.get(action="gate.updated")
    assert entry.snapshot == {"old": {"min_gain": 0.02, "no_leakage": True},
                              "new": {"min_gain": 0.01, "max_size_bytes": 10**9}}  # fmt: skip
