"""An architect reviews promotions in the browser: opens the list, opens a request whose gate has a failed item,
sees it, rejects it with a comment; approves another whose gate passes, sees production move on the model card,
rolls production back with one click and sees the previous version in production again."""

from playwright.sync_api import expect

from registry_app.models import Alias, ModelVersion, RequestStatus
from registry_app.services.promotion import promotion_request_create
from tests.e2e.conftest import login, screenshot
from tests.registry_app import test_promotion
from tests.registry_app.test_promotion import comparison, new_version

family = test_promotion.family  # bot v1 in production, v2 a fine-tune; gate: gain ≥ 0.02 and no leakage


def test_an_architect_rejects_a_failing_request_approves_a_passing_one_and_rolls_back(
    page, live_server, world, family, tiny_dir
):
    v1, v2 = family
    scientist = world.users["Data Scientist"]
    v3 = new_version(scientist, tiny_dir, base=v1)
    comparison(v1, v2, delta=0.0)  # the gain item fails
    comparison(v1, v3, delta=0.05)  # every item passes
    failing = promotion_request_create(user=scientist, version=v2, target="production", comment="v2 please")
    passing = promotion_request_create(user=scientist, version=v3, target="production", comment="v3 please")

    login(page, live_server, "architect")
    page.goto(f"{live_server.url}/models/promotions/")
    page.locator(f'tr[data-request="{failing.pk}"]').get_by_role("link", name="bot v2").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Promotion #{failing.pk}: bot v2 to production"
    )
    gain = page.locator('#gate-table tr[data-item="min_gain"]')
    expect(gain).to_have_attribute("data-passed", "false")
    expect(gain).to_contain_text("fail")
    expect(page.locator('#gate-table tr[data-item="no_leakage"]')).to_contain_text("pass")
    screenshot(page, "promotion-01-failed-gate.png")
    page.get_by_label("Reason for rejecting").fill("no gain over v1: evaluate on the new suite")
    page.get_by_role("button", name="Reject").click()
    expect(page.locator("#request-status")).to_have_text("rejected")
    expect(page.locator("#decision-comment")).to_contain_text("no gain over v1")

    page.goto(f"{live_server.url}/models/promotions/{passing.pk}/")
    expect(page.locator('#gate-table tr[data-passed="false"]')).to_have_count(0)
    page.get_by_label("Comment").fill("clear gain, no leakage")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#request-status")).to_have_text("approved")

    page.get_by_role("link", name="bot", exact=True).click()
    production = page.locator('#aliases dd[data-alias="production"]')
    expect(production).to_have_text("v3")
    expect(page.locator('#aliases dd[data-alias="archived"]')).to_have_text("v1")
    screenshot(page, "promotion-02-card.png")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Roll back production to v1").click()
    expect(production).to_have_text("v1")
    expect(page.locator('#aliases dd[data-alias="archived"]')).to_have_text("v3")
    expect(page.locator('#history li[data-alias="production"]').first).to_contain_text("rollback")

    failing.refresh_from_db()
    assert failing.status == RequestStatus.REJECTED
    assert ModelVersion.objects.get(pk=v1.pk).alias == Alias.PRODUCTION
