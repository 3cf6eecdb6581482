"""The client-application pages: an architect creates an application, issues a token (shown once), revokes it;
mistakes are shown by their field and write nothing."""

from django.urls import reverse

from registry_app.models import ClientApp, ClientToken, hash_client_token


def test_an_architect_creates_an_app_issues_a_token_once_and_revokes_it(world):
    client = world.client("Architect")
    created = client.post(
        reverse("registry:clients"), {"name": "support-widget", "rate_limit_per_minute": 120}
    )
    app = ClientApp.objects.get(name="support-widget")
    assert created.status_code == 302 and created["Location"] == reverse("registry:client", args=[app.pk])
    assert app.rate_limit_per_minute == 120 and app.created_by == world.users["Architect"]

    issued = client.post(
        reverse("registry:client-token-new", args=[app.pk]), {"name": "prod", "expires_in_days": 30}
    )
    raw = issued.context["new_token"]
    token = ClientToken.objects.get(app=app)
    assert raw.startswith("llmops_app_") and token.key_hash == hash_client_token(raw) and token.expires_at
    assert (
        raw in issued.content.decode()
        and raw not in client.get(reverse("registry:client", args=[app.pk])).content.decode()
    )
    listing = client.get(reverse("registry:clients")).content.decode()
    assert "support-widget" in listing and "120 / min" in listing

    client.post(reverse("registry:client-token-revoke", args=[app.pk, token.pk]))
    token.refresh_from_db()
    assert token.revoked_at is not None and not token.usable()
    page = client.get(reverse("registry:client", args=[app.pk])).content.decode()
    assert "revoked" in page and token.prefix in page


def test_bad_input_is_shown_by_its_field_and_writes_nothing(world):
    client = world.client("Admin")
    client.post(reverse("registry:clients"), {"name": "widget", "rate_limit_per_minute": 0})
    app = ClientApp.objects.get()
    duplicate = client.post(reverse("registry:clients"), {"name": "WIDGET", "rate_limit_per_minute": -1})
    assert duplicate.status_code == 400
    assert set(duplicate.context["form"].errors) == {"rate_limit_per_minute"}  # types first, then the service
    again = client.post(reverse("registry:clients"), {"name": "WIDGET", "rate_limit_per_minute": 5})
    assert again.status_code == 400 and "already exists" in again.context["form"].errors["name"][0]
    escaped = client.post(reverse("registry:clients"), {"name": "<b>x</b>", "rate_limit_per_minute": ""})
    assert escaped.status_code == 400 and "<b>x</b>" not in escaped.content.decode()
    assert ClientApp.objects.count() == 1

    url = reverse("registry:client-token-new", args=[app.pk])
    bad = client.post(url, {"name": "", "expires_in_days": 0})
    assert bad.status_code == 400 and set(bad.context["form"].errors) == {"name", "expires_in_days"}
    client.post(url, {"name": "prod"})
    twice = client.post(url, {"name": "prod"})
    assert (
        twice.status_code == 400 and "already has an active token" in twice.context["form"].errors["name"][0]
    )
    assert ClientToken.objects.count() == 1
    assert client.post(reverse("registry:client-token-revoke", args=[app.pk, 999999])).status_code == 404


def test_pms_and_data_scientists_cannot_open_the_client_pages(world):
    for role in ("PM", "Data Scientist"):
        assert world.client(role).get(reverse("registry:clients")).status_code == 403
