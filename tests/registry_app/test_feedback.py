"""End-user feedback through POST /v1/feedback: a thumbs down becomes an error case with the conversation, the
answer, the version that produced it and source "user feedback"; unknown ids are 404; bad bodies 400."""

import pytest

from datasets_app.models import ErrorCase
from registry_app.gateway.ratelimit import redis_client
from registry_app.models import Feedback, ServedResponse
from registry_app.services.clients import client_app_create, client_token_issue
from tests.registry_app.test_gateway import app_token, chat, error_of, gateway, production  # noqa: F401

ASKED = [{"role": "system", "content": "You answer shop questions."},
         {"role": "user", "content": "Where is my parcel? Mail me at ann@example.org"}]  # fmt: skip


@pytest.fixture
def answered(production, app_token):  # noqa: F811
    """One chat answer from the production version: (client, response id, answer)."""
    client = gateway(app_token[1])
    body = chat(client, messages=ASKED, temperature=0, user="u1").json()
    return client, body["id"], body["choices"][0]["message"]["content"]


def feedback(client, **body):
    return client.post("/v1/feedback", body, format="json")


def test_a_thumbs_down_becomes_an_error_case_with_the_conversation_answer_and_version(answered):
    client, response_id, answer = answered
    given = feedback(client, response_id=response_id, rating="thumbs_down", correction="It ships Monday.",
                     comment="wrong parcel")  # fmt: skip
    assert given.status_code == 200, given.json()
    body = given.json()
    assert body["object"] == "feedback" and body["case"] == "created" and body["rating"] == "down"
    case = ErrorCase.objects.get(pk=body["case_id"])
    assert case.source == "user_feedback" and case.get_source_display() == "user feedback"
    assert case.model_version == "tiny:v1" and case.expected_output == "It ships Monday."
    assert [m["role"] for m in case.messages] == ["system", "user"]
    assert "ann@example.org" not in case.messages[1]["content"] and "parcel" in case.messages[1]["content"]
    assert case.metadata["response_id"] == response_id and case.metadata["comment"] == "wrong parcel"
    assert case.metadata["variant"] == "production"
    assert Feedback.objects.get().case_id == case.pk

    again = feedback(client, response_id=response_id, rating=-1, correction="It ships Monday.")
    assert again.json()["case_id"] == case.pk and again.json()["case"].startswith("linked")
    up = feedback(client, response_id=response_id, rating="up").json()
    assert up["case_id"] is None and ErrorCase.objects.count() == 1


def test_an_unsampled_answer_can_be_rated_within_the_window_and_not_after(production, app_token, settings):  # noqa: F811
    settings.GATEWAY_LOG_SAMPLE_RATE = 0.0
    client = gateway(app_token[1])
    first, second = (
        chat(client, messages=ASKED, user=f"u{i}", max_tokens=3 + i).json()["id"] for i in range(2)
    )
    assert not ServedResponse.objects.get(pk=first).messages  # nothing kept on the row
    kept = feedback(client, response_id=first, rating="down").json()
    assert (
        kept["case"] == "created"
        and ErrorCase.objects.get(pk=kept["case_id"]).messages[0]["role"] == "system"
    )
    redis_client().delete(f"gateway:conversation:{second}")  # its feedback window has passed
    late = feedback(client, response_id=second, rating="down").json()
    assert late["case_id"] is None and "no longer kept" in late["case"]
    assert Feedback.objects.filter(response_id=second).exists()


def test_feedback_for_an_unknown_or_another_apps_response_is_a_404(answered, monkeypatch):
    from registry_app.gateway import feedback as module

    monkeypatch.setattr(module, "ROW_WAIT_S", 0.05)  # no row is coming: do not wait the full 2 s for it
    client, response_id, _ = answered
    missing = feedback(client, response_id="chatcmpl-nope", rating="down")
    assert missing.status_code == 404 and error_of(missing)["param"] == "response_id"
    other = client_app_create(user=None, name="other")
    stranger = feedback(
        gateway(client_token_issue(app=other, name="t")[1]), response_id=response_id, rating="up"
    )
    assert stranger.status_code == 404 and not Feedback.objects.exists()


def test_a_malformed_feedback_is_a_400_naming_every_field(answered):
    client, _, _ = answered
    bad = feedback(client, rating="meh", comment=5)
    assert bad.status_code == 400
    assert [p["param"] for p in error_of(bad)["problems"]] == ["response_id", "rating", "comment"]
    assert not Feedback.objects.exists()


@pytest.mark.usefixtures("transactional_db", "production")
def test_feedback_that_arrives_before_its_response_row_waits_for_it(app_token, monkeypatch):  # noqa: F811
    import threading

    from django.db import connection

    from registry_app.gateway import feedback as feedback_module
    from registry_app.gateway import views

    client = gateway(app_token[1])
    rows_written = []
    monkeypatch.setattr(
        views, "after_sent", lambda response, write: (rows_written.append(write), response)[1]
    )
    body = chat(client, messages=ASKED, temperature=0, user="u1").json()
    assert not ServedResponse.objects.filter(pk=body["id"]).exists()  # its row is still to be written

    def write_late() -> None:  # the thread that sent the answer, writing its row a moment later
        threading.Event().wait(0.3)
        rows_written[0]()
        connection.close()

    writer = threading.Thread(target=write_late)
    writer.start()
    given = feedback(client, response_id=body["id"], rating="down", correction="It ships Monday.")
    writer.join()
    monkeypatch.setattr(feedback_module, "ROW_WAIT_S", 0.05)  # no row is coming for the next one
    assert given.status_code == 200 and given.json()["case"] == "created", given.json()
    never = feedback(client, response_id="chatcmpl-" + "0" * 24, rating="down")
    assert never.status_code == 404 and error_of(never)["param"] == "response_id"
