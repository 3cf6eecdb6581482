"""The serving gateway as a client application meets it: the official openai client chats with the production
version (whole and streamed), every refusal is in OpenAI's error shape (401, 429, 404, 400 naming the params),
deterministic answers come from the cache, every request leaves a scrubbed log row and Prometheus counts."""

import hashlib
from datetime import timedelta

import openai
import pytest
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from registry_app.gateway import views
from registry_app.gateway.metrics import METRIC_NAMES
from registry_app.gateway.requestlog import scrubbed
from registry_app.models import Deployment, DeploymentVariant, ModelVersion, ServedResponse
from registry_app.services import base_model_register
from registry_app.services.clients import client_app_create, client_token_issue
from tests.conftest import wait_until

HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def production(db, tiny_dir):
    """The tiny model registered as "tiny" v1 and made its family's production version."""
    version = base_model_register(user=None, name="tiny", path=tiny_dir, task="causal_lm")
    ModelVersion.objects.filter(pk=version.pk).update(alias="production")
    version.refresh_from_db()
    return version


@pytest.fixture
def app_token(db, broker):
    """A client application (rate limit 600/min) and its raw token; Redis flushed (limits, cache)."""
    app = client_app_create(user=None, name="widget")
    return app, client_token_issue(app=app, name="prod")[1]


def gateway(raw: str | None) -> APIClient:
    client = APIClient()
    if raw:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def chat(client: APIClient, **body):
    return client.post("/v1/chat/completions", {"model": "tiny", "messages": HELLO, "max_tokens": 4, **body},
                       format="json")  # fmt: skip


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"]), body
    return body["error"]


def sample(name: str, labels: dict) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def closing_connections(monkeypatch):
    """The live server answers each request on a new thread: close its connection after the request."""
    from django.db import connections

    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)


def test_the_openai_client_chats_with_the_production_version_whole_and_streamed(
    transactional_db, production, app_token, live_server, closing_connections, settings
):
    settings.GATEWAY_RESPONSE_CACHE_TTL = 0  # both answers come from the model
    client = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=app_token[1], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="tiny", messages=HELLO, max_tokens=6, temperature=0, user="alice"
    )
    assert raw.headers["X-Model-Version"] == "tiny:v1" and raw.headers["X-Variant"] == "production"
    whole = raw.parse()
    assert whole.id.startswith("chatcmpl-") and whole.object == "chat.completion" and whole.model == "tiny"
    choice = whole.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    assert whole.usage.completion_tokens >= 1
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens

    chunks = list(
        client.chat.completions.create(
            model="tiny", messages=HELLO, max_tokens=6, temperature=0, stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    assert {c.object for c in chunks} == {"chat.completion.chunk"} and len({c.id for c in chunks}) == 1
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == choice.message.content  # greedy: the same answer, token by token
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == choice.finish_reason
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens

    completion = client.completions.create(model="tiny:v1", prompt="Once upon", max_tokens=3, temperature=0)
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    assert isinstance(completion.choices[0].text, str) and completion.model == "tiny:v1"
    wait_until(
        lambda: ServedResponse.objects.count() == 3, what="the rows written after each answer was sent"
    )
    rows = ServedResponse.objects.order_by("created_at")
    assert [(r.endpoint, r.streamed, r.status_code, r.version_id) for r in rows] == [
        ("chat", False, 200, production.pk), ("chat", True, 200, production.pk),
        ("completion", False, 200, production.pk),
    ]  # fmt: skip
    assert [m.id for m in client.models.list()][:1] == ["tiny"]


def test_missing_unknown_revoked_or_expired_tokens_get_401_in_openai_shape(production, app_token):
    app, raw = app_token
    missing = chat(gateway(None))
    assert missing.status_code == 401 and error_of(missing)["code"] == "not_authenticated"
    assert missing["WWW-Authenticate"].startswith("Bearer")
    unknown = chat(gateway("llmops_app_nothing"))
    assert unknown.status_code == 401 and error_of(unknown)["code"] == "invalid_api_key"
    expired, expired_raw = client_token_issue(app=app, name="old", expires_in_days=1)
    type(expired).objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert "expired" in error_of(chat(gateway(expired_raw)))["message"]
    app.tokens.filter(name="prod").update(revoked_at=timezone.now())
    revoked = chat(gateway(raw))
    assert revoked.status_code == 401 and "revoked" in error_of(revoked)["message"]
    assert not ServedResponse.objects.exists()


def test_a_token_revoked_elsewhere_is_refused_once_the_token_cache_expires_and_here_at_once(
    production, app_token, monkeypatch
):
    from registry_app.gateway import auth
    from registry_app.services.clients import client_token_revoke

    app, raw = app_token
    client = gateway(raw)
    assert chat(client, max_tokens=0).status_code == 400  # authenticated (then refused for max_tokens)
    app.tokens.filter(name="prod").update(revoked_at=timezone.now())  # as the portal's process would
    assert chat(client, max_tokens=0).status_code == 400  # this process still holds the token row
    monkeypatch.setattr(auth, "TOKEN_TTL_S", 0.0)
    assert chat(client, max_tokens=0).status_code == 401
    monkeypatch.undo()

    token, second = client_token_issue(app=app, name="second")
    assert chat(gateway(second), max_tokens=0).status_code == 400
    client_token_revoke(token=token)  # a save in this process: the cache is cleared at once
    refused = chat(gateway(second), max_tokens=0)
    assert refused.status_code == 401 and "revoked" in error_of(refused)["message"]
    app.is_active = False
    app.save()
    app.tokens.filter(pk=token.pk).update(revoked_at=None)
    assert "inactive" in error_of(chat(gateway(second), max_tokens=0))["message"]


def test_a_portal_user_token_cannot_call_the_generation_endpoints(production, world):
    refused = chat(world.api("Admin"))
    assert refused.status_code == 401 and "client application token" in error_of(refused)["message"]


def test_over_the_rate_limit_is_a_429_with_retry_after(production, app_token):
    app, raw = app_token
    app.rate_limit_per_minute = 2
    app.save()
    client = gateway(raw)
    assert [chat(client, max_tokens=0).status_code for _ in range(2)] == [400, 400]  # counted, though refused
    limited = chat(client)
    assert limited.status_code == 429 and error_of(limited)["code"] == "rate_limit_exceeded"
    assert 1 <= int(limited["Retry-After"]) <= 60 and limited["x-should-retry"] == "false"


def test_an_unknown_model_or_a_family_without_production_is_a_404_model_not_found(production, app_token):
    client = gateway(app_token[1])
    for model in ("nope", "tiny:v9", "tiny:vx"):
        response = chat(client, model=model)
        assert response.status_code == 404 and error_of(response)["code"] == "model_not_found", model
        assert error_of(response)["param"] == "model"
    production.alias = ""
    production.save()  # as the promotion service does: the gateway forgets its routes at once
    response = chat(client)
    assert response.status_code == 404 and "no production version" in error_of(response)["message"]


def test_malformed_requests_are_a_400_naming_every_bad_param(production, app_token):
    client = gateway(app_token[1])
    response = chat(client, messages=[{"role": "robot", "content": 1}, "hi"], n=2, temperature=5, stop=[""])
    error = error_of(response)
    assert response.status_code == 400 and error["param"] == "messages[0].role"
    assert [p["param"] for p in error["problems"]] == [
        "messages[0].role", "messages[0].content", "messages[1]", "temperature", "stop", "n",
    ]  # fmt: skip
    empty = chat(client, messages=[], max_tokens=10**6)
    assert [p["param"] for p in error_of(empty)["problems"]] == ["messages", "max_tokens"]
    nul = chat(client, model="ti\x00ny", messages=[{"role": "user", "content": "a\x00b"}])
    assert nul.status_code == 400 and error_of(nul)["param"] == "model"
    assert (
        chat(client, messages=[{"role": "user", "content": "a\x00b"}]).status_code == 200
    )  # stored as a\ufffdb
    not_json = client.post("/v1/chat/completions", "{", content_type="application/json")
    assert not_json.status_code == 400 and "JSON" in error_of(not_json)["message"]
    assert ServedResponse.objects.filter(status_code=400).count() == 3
    assert ServedResponse.objects.get(status_code=200).messages == [{"role": "user", "content": "a\ufffdb"}]


def test_a_repeated_temperature_0_request_is_answered_from_the_cache(production, app_token):
    client = gateway(app_token[1])
    hits = sample("llmops_gateway_cache_total", {"version": "tiny:v1", "result": "hit"})
    first, second = chat(client, temperature=0), chat(client, temperature=0)
    assert (first["X-Response-Cache"], second["X-Response-Cache"]) == ("miss", "hit")
    assert first.json()["choices"] == second.json()["choices"] and first.json()["id"] != second.json()["id"]
    assert sample("llmops_gateway_cache_total", {"version": "tiny:v1", "result": "hit"}) == hits + 1
    rows = {r.id: r.cached for r in ServedResponse.objects.all()}
    assert rows == {first.json()["id"]: False, second.json()["id"]: True}
    sampled = chat(client, temperature=0.7, seed=1)
    assert sampled["X-Response-Cache"] == "miss"


def test_every_request_leaves_a_scrubbed_log_row_and_prometheus_counts(production, app_token):
    client = gateway(app_token[1])
    before = sample("llmops_gateway_requests_total",
                    {"deployment": "", "variant": "production", "version": "tiny:v1", "endpoint": "chat",
                     "status": "200"})  # fmt: skip
    said = [{"role": "user", "content": "Write to jane.doe@example.com about my order"}]
    response = chat(client, messages=said, user="customer-42")
    row = ServedResponse.objects.get(pk=response.json()["id"])
    assert row.app == app_token[0] and row.version == production and row.variant == "production"
    assert row.user_hash == hashlib.sha256(b"customer-42").hexdigest()[:16] and row.sampled
    assert "jane.doe@example.com" not in row.messages[0]["content"] and "order" in row.messages[0]["content"]
    answer = response.json()["choices"][0]["message"]["content"]
    assert row.answer == scrubbed(said, answer)[1]
    assert row.completion_tokens == response.json()["usage"]["completion_tokens"] and row.latency_ms > 0
    after = sample("llmops_gateway_requests_total",
                   {"deployment": "", "variant": "production", "version": "tiny:v1", "endpoint": "chat",
                    "status": "200"})  # fmt: skip
    assert after == before + 1
    exposed = APIClient().get("/metrics").content.decode()
    assert all(name.removesuffix("_total") in exposed for name in METRIC_NAMES)


def test_the_log_row_is_written_once_however_often_the_response_is_closed(
    db,
):  # close() ends the request: Django then checks its connections
    written = []
    response = views.after_sent(HttpResponse("ok"), lambda: written.append("row"))

    response.close()
    response.close()  # Django's test client, and some WSGI wrappers, close a response twice

    assert written == ["row"]


def test_a_deployment_splits_by_weight_sticks_per_user_and_serves_production_once_stopped(
    production, app_token, tiny_dir
):
    candidate = base_model_register(user=None, name="tiny", path=tiny_dir, task="causal_lm")
    deployment = Deployment.objects.create(name="support-bot", model=production.model)
    DeploymentVariant.objects.create(deployment=deployment, label="production", version=None, weight=50)
    DeploymentVariant.objects.create(deployment=deployment, label="candidate", version=candidate, weight=50)
    client = gateway(app_token[1])
    seen = {}
    for user in (f"user-{i}" for i in range(12)):
        answer = chat(client, model="support-bot", user=user, temperature=0, max_tokens=1)
        seen[user] = (answer["X-Variant"], answer["X-Model-Version"])
        assert (
            chat(client, model="support-bot", user=user, max_tokens=1)["X-Variant"] == seen[user][0]
        )  # sticky
    assert set(seen.values()) == {("production", "tiny:v1"), ("candidate", "tiny:v2")}
    assert chat(client, model="support-bot", user="x")["X-Model-Version"] in ("tiny:v1", "tiny:v2")
    deployment.status = "stopped"
    deployment.save()
    assert {chat(client, model="support-bot", user=u)["X-Model-Version"] for u in seen} == {"tiny:v1"}
    row = ServedResponse.objects.filter(deployment=deployment).first()
    assert row.variant == "production" and row.version == production


def test_the_model_list_names_deployments_families_and_versions_for_clients_and_users(
    production, app_token, world
):
    Deployment.objects.create(name="support-bot", model=production.model)
    listed = [m["id"] for m in gateway(app_token[1]).get("/v1/models").json()["data"]]
    assert listed == ["support-bot", "tiny", "tiny:v1"]
    assert gateway(app_token[1]).get("/v1/models/support-bot").json()["owned_by"] == "portal"
    assert world.api("PM").get("/v1/models/tiny:v1").json()["id"] == "tiny:v1"
    missing = world.api("PM").get("/v1/models/nope")
    assert missing.status_code == 404 and error_of(missing)["code"] == "model_not_found"
