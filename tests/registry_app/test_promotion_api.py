"""Promotion API: request, read, approve, reject, roll back; the same refusals as the pages, as JSON."""

from registry_app.models import Alias, AuditEntry, RequestStatus
from registry_app.services.promotion import alias_set
from tests.registry_app import test_promotion
from tests.registry_app.test_promotion import comparison

family = test_promotion.family  # the shared fixture


def test_a_data_scientist_requests_and_an_architect_approves_past_a_failed_item_with_a_reason(world, family):
    v1, v2 = family
    comparison(v1, v2, delta=0.0)
    created = world.api("Data Scientist").post(
        "/api/v1/promotions",
        {"version": v2.pk, "target": "production", "comment": "parity, smaller"},
        format="json",
    )
    assert created.status_code == 201, created.data
    pk = created.data["id"]
    assert [(r["key"], r["passed"]) for r in created.data["gate"]] == [
        ("min_gain", False),
        ("no_leakage", True),
    ]
    assert world.api("PM").get(f"/api/v1/promotions/{pk}").data["version"]["model"] == "bot"

    architect = world.api("Architect")
    refused = architect.post(f"/api/v1/promotions/{pk}/approve", {"comment": "ok"}, format="json")
    assert refused.status_code == 400
    assert "min_gain" in refused.data["error"]["fields"]["override_min_gain"][0]
    approved = architect.post(f"/api/v1/promotions/{pk}/approve",
                              {"overrides": {"min_gain": "half the size at parity"}}, format="json")  # fmt: skip
    assert approved.status_code == 200, approved.data
    assert approved.data["status"] == "approved" and approved.data["version"]["alias"] == "production"
    assert approved.data["overrides"] == {"min_gain": "half the size at parity"}


def test_pms_and_data_scientists_get_403_and_the_requester_gets_the_reason(world, family):
    comparison(*family)
    created = world.api("Architect").post(
        "/api/v1/promotions", {"version": family[1].pk, "target": "staging"}
    )
    pk = created.data["id"]
    for role in ("PM", "Data Scientist"):
        for action in ("approve", "reject"):
            assert (
                world.api(role).post(f"/api/v1/promotions/{pk}/{action}", {"comment": "x"}).status_code == 403
            )
    own = world.api("Architect").post(f"/api/v1/promotions/{pk}/approve", {})
    assert own.status_code == 403
    assert own.data["error"]["message"] == "the requester cannot approve their own request"


def test_bad_requests_name_their_fields(world, family):
    api = world.api("Data Scientist")
    bad = api.post("/api/v1/promotions", {"version": 999999, "target": "moon"}, format="json")
    assert bad.status_code == 400 and set(bad.data["error"]["fields"]) == {"version", "target"}
    held = api.post("/api/v1/promotions", {"version": family[0].pk, "target": "production"}, format="json")
    assert held.status_code == 400 and "already holds production" in held.data["error"]["fields"]["target"][0]
    created = api.post("/api/v1/promotions", {"version": family[1].pk, "target": "staging"}, format="json")
    reject = world.api("Architect").post(f"/api/v1/promotions/{created.data['id']}/reject", {}, format="json")
    assert reject.status_code == 400 and "comment" in reject.data["error"]["fields"]
    done = world.api("Architect").post(
        f"/api/v1/promotions/{created.data['id']}/reject", {"comment": "later"}
    )
    assert done.status_code == 200 and done.data["status"] == RequestStatus.REJECTED
    assert world.api("PM").get("/api/v1/promotions/999999").status_code == 404


def test_rollback_through_the_api(world, family):
    v1, v2 = family
    api = world.api("Architect")
    none = api.post("/api/v1/models/bot/rollback", {}, format="json")
    assert (
        none.status_code == 400
        and "no previous production version" in none.data["error"]["fields"]["model"][0]
    )
    alias_set(user=world.users["Architect"], version=v2, alias=Alias.PRODUCTION, reason="promotion")
    assert world.api("Data Scientist").post("/api/v1/models/bot/rollback", {}).status_code == 403
    response = api.post("/api/v1/models/bot/rollback", {"comment": "latency"}, format="json")
    assert response.status_code == 200
    assert response.data == {"model": "bot", "production": {**response.data["production"], "number": 1}}
    assert AuditEntry.objects.get(action="production.rollback").comment == "latency"
    assert api.post("/api/v1/models/nobody/rollback", {}).status_code == 404
