"""Promotion pages: the model card, the request form, the decision forms (403 for PMs and data scientists, refused
for the requester, override reasons per failed item), the gate policy form and the rollback button."""

from django.urls import reverse

from datasets_app.models import ErrorCase
from registry_app.models import Alias, AuditEntry, GatePolicy, PromotionRequest, RequestStatus
from registry_app.services.promotion import alias_set, promotion_request_create
from tests.registry_app import test_promotion
from tests.registry_app.test_promotion import comparison, new_version

family = test_promotion.family  # the shared fixture


def pending(world, version, by="Data Scientist", target="production"):
    return promotion_request_create(
        user=world.users[by], version=version, target=target, comment="<b>ship</b>"
    )


def test_the_model_card_shows_aliases_lineage_gate_drift_and_history(world, family, tiny_dir):
    v1, v2 = family
    ErrorCase.objects.create(bad_output="x", fingerprint="a", model_version="bot:v1", source="user_feedback")
    ErrorCase.objects.create(bad_output="y", fingerprint="b", model_version="bot:v1", source="user_feedback")
    report = comparison(v1, v2)
    pending(world, v2)
    page = world.client("PM").get(reverse("registry:family", kwargs={"name": "bot"}))
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-alias="production"><a href="/models/bot/v1/">v1</a>' in html
    assert 'data-version="2" data-depth="1"' in html  # v2 nested under its base v1
    assert f'href="/evaluations/reports/{report.pk}/"' in html or f"#{report.pk}:" in html
    assert 'data-item="min_gain"' in html and "candidate − production ≥ 0.02" in html
    assert 'data-drift="1"' in html and ">2</td>" in html
    assert 'data-action="promotion.requested"' in html and "v1 to production" not in html
    assert (
        "Roll back production" not in html and "Edit gate policy" not in html
    )  # a PM sees no architect tools


def test_the_request_form_previews_the_gate_and_files_the_request(world, family):
    v1, v2 = family
    comparison(v1, v2, delta=0.0)
    client, url = (
        world.client("Data Scientist"),
        reverse("registry:promotion-new", kwargs={"version_id": v2.pk}),
    )
    preview = client.get(url)
    assert preview.status_code == 200 and b'data-item="min_gain" data-passed="false"' in preview.content
    bad = client.post(url, {"target": "moon"})
    assert bad.status_code == 400 and b"Select a valid choice" in bad.content
    response = client.post(url, {"target": "production", "comment": "fixes refunds"})
    request = PromotionRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/models/promotions/{request.pk}/"
    again = client.post(url, {"target": "production"})
    assert (
        again.status_code == 400
        and b"an open request to promote bot v2 to production exists" in again.content
    )


def test_pms_and_data_scientists_get_403_from_the_decision_forms(world, family):
    request = pending(world, family[1], by="Architect")
    for role in ("PM", "Data Scientist"):
        for name in ("registry:promotion-approve", "registry:promotion-reject"):
            assert (
                world.client(role)
                .post(reverse(name, kwargs={"pk": request.pk}), {"comment": "x"})
                .status_code
                == 403
            )
    request.refresh_from_db()
    assert request.status == RequestStatus.PENDING


def test_an_architect_cannot_approve_their_own_request(world, family):
    request = pending(world, family[1], by="Architect")
    client = world.client("Architect")
    page = client.get(reverse("registry:promotion", kwargs={"pk": request.pk}))
    assert b'id="approve"' not in page.content and b"Withdraw request" in page.content
    refused = client.post(reverse("registry:promotion-approve", kwargs={"pk": request.pk}), {})
    assert refused.status_code == 403 and b"the requester cannot approve their own request" in refused.content


def test_a_failed_item_needs_its_override_reason_before_approval(world, family):
    v1, v2 = family
    comparison(v1, v2, delta=0.0)  # min_gain fails, no_leakage passes
    request = pending(world, v2)
    client = world.client("Architect")
    page = client.get(reverse("registry:promotion", kwargs={"pk": request.pk}))
    assert (
        b'data-item="min_gain" data-passed="false"' in page.content
        and b'name="override_min_gain"' in page.content
    )
    assert b"&lt;b&gt;ship&lt;/b&gt;" in page.content  # the requester's comment is escaped
    url = reverse("registry:promotion-approve", kwargs={"pk": request.pk})
    refused = client.post(url, {"comment": "ok"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="decision")
    assert refused.status_code == 400
    assert b"the gate item min_gain (Gain over production) failed" in refused.content
    assert b"<html" not in refused.content  # the decision partial only
    approved = client.post(url, {"comment": "ok", "override_min_gain": "parity is enough for this fix"})
    assert approved.status_code == 302
    v1.refresh_from_db(), v2.refresh_from_db()
    assert (v1.alias, v2.alias) == (Alias.ARCHIVED, Alias.PRODUCTION)
    entry = AuditEntry.objects.get(action="promotion.approved")
    assert entry.snapshot["overrides"] == {"min_gain": "parity is enough for this fix"}


def test_a_rejection_needs_a_comment(world, family):
    request = pending(world, family[1])
    client, url = world.client("Architect"), reverse("registry:promotion-reject", kwargs={"pk": request.pk})
    refused = client.post(url, {"comment": " "})
    assert refused.status_code == 400 and b"a rejection needs a comment" in refused.content
    assert client.post(url, {"comment": "no forgetting check"}).status_code == 302
    request.refresh_from_db()
    assert request.status == RequestStatus.REJECTED and request.decision_comment == "no forgetting check"


def test_the_promotion_list_puts_pending_requests_first(world, family, tiny_dir):
    v1, v2 = family
    v3 = new_version(world.users["Data Scientist"], tiny_dir, base=v1)
    first = pending(world, v2, target="staging")
    first.status = RequestStatus.REJECTED
    first.save()
    second = pending(world, v3)
    html = world.client("PM").get(reverse("registry:promotions")).content.decode()
    assert html.index(f'data-request="{second.pk}"') < html.index(f'data-request="{first.pk}"')


def test_the_gate_policy_form_names_bad_fields_and_saves_good_ones(world, family):
    client, url = world.client("Architect"), reverse("registry:gate", kwargs={"name": "bot"})
    bad = client.post(url, {"min_gain": "0.01", "max_latency_p95_ms": "-3", "max_size_bytes": "many"})
    assert bad.status_code == 400
    assert b"must be 0 or more (got -3)" in bad.content and b"Enter a number" in bad.content
    assert GatePolicy.objects.get().items == {"min_gain": 0.02, "no_leakage": True}
    good = client.post(url, {"min_gain": "0.01", "no_leakage": "on", "max_size_bytes": "1000000"})
    assert good.status_code == 302
    assert GatePolicy.objects.get().items == {"min_gain": 0.01, "no_leakage": True, "max_size_bytes": 1000000}
    assert AuditEntry.objects.get(action="gate.updated").snapshot["old"] == {
        "min_gain": 0.02,
        "no_leakage": True,
    }


def test_the_rollback_button_puts_the_previous_version_back_in_production(world, family):
    v1, v2 = family
    architect = world.users["Architect"]
    alias_set(user=architect, version=v2, alias=Alias.PRODUCTION, reason="promotion")
    client, card = world.client("Architect"), reverse("registry:family", kwargs={"name": "bot"})
    assert b"Roll back production to v1" in client.get(card).content
    url = reverse("registry:rollback", kwargs={"name": "bot"})
    assert client.post(url, {}).status_code == 302  # no confirmation: nothing happens
    v2.refresh_from_db()
    assert v2.alias == Alias.PRODUCTION
    response = client.post(url, {"confirm": "yes"}, follow=True)
    assert b"Production of bot is back on v1." in response.content
    v1.refresh_from_db(), v2.refresh_from_db()
    assert (v1.alias, v2.alias) == (Alias.PRODUCTION, Alias.ARCHIVED)
    again = client.post(url, {"confirm": "yes"}, follow=True)
    assert b"bot has no previous production version to roll back to" in again.content
