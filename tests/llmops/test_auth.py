"""Logging in through the page, and API tokens: created once, stored hashed, revocable."""

import pytest
from django.urls import reverse

from llmops.models import ApiToken, hash_token
from tests.conftest import PASSWORD


def test_a_wrong_password_is_a_form_error_not_a_server_error(world):
    response = world.client(None).post(reverse("login"), {"username": "pm", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_the_right_password_logs_in_and_lands_on_home(world):
    client = world.client(None)
    response = client.post(reverse("login"), {"username": "pm", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("home")
    assert "Welcome, pm" in response.content.decode()


def test_logging_out_needs_a_post_and_ends_the_session(world):
    client = world.client("PM")
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("home")).status_code == 302


def test_a_new_token_is_shown_once_and_only_its_hash_is_stored(world):
    client = world.client("Data Scientist")
    response = client.post(reverse("tokens"), {"name": "ci-pipeline"})
    raw = response.context["new_token"]
    assert raw.startswith("llmops_") and raw in response.content.decode()
    token = ApiToken.objects.get(name="ci-pipeline")
    assert token.key_hash == hash_token(raw) and raw not in (token.key_hash, token.prefix)
    assert raw not in client.get(reverse("tokens")).content.decode()


def test_a_token_authenticates_api_calls_and_records_its_last_use(world):
    response = world.api("PM").get(reverse("api-me"))
    assert response.status_code == 200
    from llmops.roles import MATRIX

    body = response.json()
    assert (body["username"], body["roles"]) == ("pm", ["PM"])
    assert body["permissions"] == sorted(p for p, roles in MATRIX.items() if "PM" in roles)
    assert "cases.approve" in body["permissions"] and "diagnostics.run" not in body["permissions"]
    assert ApiToken.objects.get(user=world.users["PM"]).last_used_at is not None


def test_a_revoked_token_gets_401(world):
    token = ApiToken.objects.get(user=world.users["PM"])
    world.client("PM").post(reverse("token-revoke", args=[token.pk]))
    response = world.api("PM").get(reverse("api-me"))
    assert response.status_code == 401
    assert response.json()["error"] == {
        "status": 401,
        "code": "authentication_failed",
        "message": "Invalid or revoked API token.",
    }


@pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Bearer not-a-token", "Token llmops_nope"])
def test_malformed_or_unknown_tokens_get_401(world, header):
    client = world.api(None)
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get(reverse("api-me")).status_code == 401


def test_a_user_cannot_revoke_someone_elses_token(world):
    others = ApiToken.objects.get(user=world.users["Architect"])
    assert world.client("PM").post(reverse("token-revoke", args=[others.pk])).status_code == 404
    others.refresh_from_db()
    assert others.is_active


def test_two_active_tokens_cannot_share_a_name(world):
    response = world.client("PM").post(reverse("tokens"), {"name": "tests"})
    assert response.status_code == 400
    assert "already have an active token named" in response.content.decode()
    assert ApiToken.objects.filter(user=world.users["PM"]).count() == 1


def test_revoking_over_htmx_returns_the_panel_with_a_toast(world):
    token = ApiToken.objects.get(user=world.users["PM"])
    response = world.client("PM").post(reverse("token-revoke", args=[token.pk]), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and 'id="token-panel"' in html and "<html" not in html
    assert "revoked; clients using it now get 401" in html and 'hx-swap-oob="beforeend:#toasts"' in html
