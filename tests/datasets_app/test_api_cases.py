"""The error notebook API as a client sees it: create one or many cases, retries, edits, workflow, comments, list."""

import pytest
from django.urls import reverse

from datasets_app.api import BULK_MAX
from datasets_app.models import CaseComment, CaseEvent, CaseStatus, ErrorCase, Tag
from datasets_app.services.cases import case_create
from llmops.models import IdempotencyRecord


@pytest.fixture
def tags(db):
    return {
        name: Tag.objects.get_or_create(name=name, defaults={"label": name.title(), "is_active": True})[0]
        for name in ("hallucination", "terminology", "format")
    }


def body(text="How do I reset my password?", bad="Click the red button.", **fields) -> dict:
    return {"messages": [{"role": "user", "content": text}], "bad_output": bad, **fields}


def make_case(text="How do I reset my password?", bad="Click the red button.", expected="", **fields):
    return case_create(
        user=None,
        messages=[{"role": "user", "content": text}],
        bad_output=bad,
        expected_output=expected,
        **fields,
    )


def error_fields(response) -> dict:
    return response.json()["error"].get("fields", {})


# --- one case ---------------------------------------------------------------------------------------------------


def test_creating_one_case_stores_its_fields_scrubbed_with_a_fingerprint(world, tags):
    response = world.api("PM").post(
        reverse("api-cases"),
        {
            "messages": [
                {"role": "system", "content": "You are the shop assistant."},
                {"role": "user", "content": "My mail is li.lei@example.com, where is order 8812?"},
            ],
            "bad_output": "I sent it to 13812345678.",
            "tags": ["Hallucination"],
            "severity": "high",
            "product": "shop",
            "feature": "orders",
            "model_version": "qwen-7b-ft-3",
            "metadata": {"trace": "abc"},
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    case = ErrorCase.objects.get(pk=data["id"])
    assert case.messages[1]["content"] == "My mail is [EMAIL], where is order 8812?"
    assert case.bad_output == "I sent it to [PHONE]."
    assert (case.severity, case.product, case.feature, case.model_version) == (
        "high",
        "shop",
        "orders",
        "qwen-7b-ft-3",
    )
    assert case.metadata == {"trace": "abc"} and case.source == "api"
    assert list(case.tags.values_list("name", flat=True)) == ["hallucination"]
    assert len(case.fingerprint) == 64 and data["fingerprint"] == case.fingerprint
    assert case.status == data["status"] == CaseStatus.NEW
    assert case.created_by == world.users["PM"]
    assert CaseEvent.objects.filter(case=case, kind="created").count() == 1


def test_a_case_created_with_an_expected_answer_starts_as_corrected(world, tags):
    response = world.api("PM").post(
        reverse("api-cases"), body(expected_output="Use the reset link."), format="json"
    )
    assert response.status_code == 201
    assert response.json()["status"] == CaseStatus.CORRECTED
    assert ErrorCase.objects.get().expected_output == "Use the reset link."


def test_an_exact_duplicate_is_refused_with_409_and_the_existing_id(world, tags):
    client = world.api("PM")
    first = client.post(reverse("api-cases"), body(), format="json").json()
    # the same content, only differently spaced and cased: still the same case
    response = client.post(
        reverse("api-cases"), body("how do I  reset my password?", "Click the red button."), format="json"
    )
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "duplicate" and error["existing_id"] == first["id"]
    assert ErrorCase.objects.count() == 1


def test_a_conversation_not_ending_with_a_user_turn_is_400(world, tags):
    response = world.api("PM").post(
        reverse("api-cases"),
        {
            "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
            "bad_output": "Bye",
        },
        format="json",
    )
    assert response.status_code == 400
    assert "must end with the user turn" in str(error_fields(response)["messages"])
    assert not ErrorCase.objects.exists()


def test_an_unknown_tag_is_400_naming_it(world, tags):
    response = world.api("PM").post(reverse("api-cases"), body(tags=["format", "made_up_tag"]), format="json")
    assert response.status_code == 400
    assert "made_up_tag" in str(error_fields(response)["tags"])
    assert not ErrorCase.objects.exists()


def test_an_architect_cannot_create_cases(world, tags):
    response = world.api("Architect").post(reverse("api-cases"), body(), format="json")
    assert response.status_code == 403
    assert not ErrorCase.objects.exists()


# --- Idempotency-Key ----------------------------------------------------------------------------------------------


def test_a_retried_call_with_the_same_idempotency_key_replays_the_first_answer_and_creates_one_case(
    world, tags
):
    client = world.api("PM")
    first = client.post(reverse("api-cases"), body(), format="json", HTTP_IDEMPOTENCY_KEY="retry-1")
    again = client.post(reverse("api-cases"), body(), format="json", HTTP_IDEMPOTENCY_KEY="retry-1")
    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert ErrorCase.objects.count() == 1


def test_reusing_an_idempotency_key_for_a_different_body_is_422(world, tags):
    client = world.api("PM")
    client.post(reverse("api-cases"), body(), format="json", HTTP_IDEMPOTENCY_KEY="k")
    response = client.post(
        reverse("api-cases"), body("Another question"), format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert ErrorCase.objects.count() == 1


def test_an_idempotency_key_is_scoped_to_its_user(world, tags):
    world.api("PM").post(reverse("api-cases"), body(), format="json", HTTP_IDEMPOTENCY_KEY="shared")
    response = world.api("Data Scientist").post(
        reverse("api-cases"), body("Another question"), format="json", HTTP_IDEMPOTENCY_KEY="shared"
    )
    assert response.status_code == 201
    assert ErrorCase.objects.count() == 2


def test_a_rejected_call_stores_no_idempotent_answer_so_a_fixed_retry_goes_through(world, tags):
    client = world.api("PM")
    bad = client.post(reverse("api-cases"), body(tags=["nope"]), format="json", HTTP_IDEMPOTENCY_KEY="fix")
    assert bad.status_code == 400 and not IdempotencyRecord.objects.exists()
    good = client.post(reverse("api-cases"), body(), format="json", HTTP_IDEMPOTENCY_KEY="fix")
    assert good.status_code == 201


# --- bulk --------------------------------------------------------------------------------------------------------


def test_a_bulk_create_of_300_cases_returns_their_ids_in_order(world, tags):
    items = [
        body(f"question number {i}", f"bad answer {i}", tags=["format"] if i % 2 else []) for i in range(300)
    ]
    response = world.api("PM").post(reverse("api-cases-bulk"), {"cases": items}, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert len(data["created"]) == 300 and data["duplicates"] == []
    stored = {c.pk: c for c in ErrorCase.objects.prefetch_related("tags")}
    for i, case_id in enumerate(data["created"]):
        case = stored[case_id]
        assert case.user_input == f"question number {i}" and case.bad_output == f"bad answer {i}"
        assert [t.name for t in case.tags.all()] == (["format"] if i % 2 else [])
        assert (case.source, case.status, case.created_by_id) == ("api", CaseStatus.NEW, world.users["PM"].pk)


def test_a_bulk_create_with_one_invalid_item_writes_nothing_and_names_the_index_and_field(world, tags):
    items = [body(f"question {i}") for i in range(50)]
    items[17] = {"messages": [{"role": "user", "content": "q"}]}  # no bad_output
    items[30]["tags"] = ["unheard_of"]
    response = world.api("PM").post(reverse("api-cases-bulk"), {"cases": items}, format="json")
    assert response.status_code == 400
    problems = error_fields(response)["cases"]
    assert set(problems) == {"17", "30"}
    assert "bad_output" in problems["17"] and "unheard_of" in str(problems["30"]["tags"])
    assert "none was created" in response.json()["error"]["message"]
    assert ErrorCase.objects.count() == 0


def test_a_bulk_create_over_the_limit_is_400(world, tags):
    items = [{"messages": [], "bad_output": ""}] * (BULK_MAX + 1)
    response = world.api("PM").post(reverse("api-cases-bulk"), {"cases": items}, format="json")
    assert response.status_code == 400
    assert str(BULK_MAX) in str(error_fields(response)["cases"])
    assert ErrorCase.objects.count() == 0


def test_bulk_duplicates_within_the_batch_and_of_existing_cases_are_reported_per_index_not_created(
    world, tags
):
    existing = make_case("Already known", "bad")
    items = [
        body("new one", "bad"),
        body("Already known", "bad"),
        body("NEW  one", "bad"),
        body("another", "bad"),
    ]
    response = world.api("PM").post(reverse("api-cases-bulk"), {"cases": items}, format="json")
    assert response.status_code == 201
    data = response.json()
    assert len(data["created"]) == 2
    reasons = {d["index"]: d["reason"] for d in data["duplicates"]}
    assert set(reasons) == {1, 2}
    assert f"#{existing.pk}" in reasons[1]
    assert "0" in reasons[2]  # the same content as item 0
    assert sorted(ErrorCase.objects.values_list("messages__0__content", flat=True)) == [
        "Already known",
        "another",
        "new one",
    ]


def test_a_bulk_create_with_an_idempotency_key_is_replayed_not_repeated(world, tags):
    client = world.api("PM")
    items = {"cases": [body(f"q{i}") for i in range(5)]}
    first = client.post(reverse("api-cases-bulk"), items, format="json", HTTP_IDEMPOTENCY_KEY="bulk-1")
    again = client.post(reverse("api-cases-bulk"), items, format="json", HTTP_IDEMPOTENCY_KEY="bulk-1")
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert ErrorCase.objects.count() == 5


def test_bulk_created_cases_are_scrubbed(world, tags):
    response = world.api("PM").post(
        reverse("api-cases-bulk"), {"cases": [body("call me on +44 20 7946 0958", "ok")]}, format="json"
    )
    assert response.status_code == 201
    assert ErrorCase.objects.get().user_input == "call me on [PHONE]"


# --- edits and workflow --------------------------------------------------------------------------------------------


def test_a_stale_patch_is_409_and_the_first_edit_is_kept(world, tags):
    case = make_case()
    url = reverse("api-case", args=[case.pk])
    first = world.api("PM").patch(url, {"version": 1, "expected_output": "First fix."}, format="json")
    assert first.status_code == 200
    assert first.json()["version"] == 2 and first.json()["status"] == CaseStatus.CORRECTED
    second = world.api("Data Scientist").patch(
        url, {"version": 1, "expected_output": "Second fix."}, format="json"
    )
    assert second.status_code == 409
    assert "pm changed case" in second.json()["error"]["message"]
    case.refresh_from_db()
    assert (case.expected_output, case.version) == ("First fix.", 2)


def test_a_patch_records_what_changed_in_the_history(world, tags):
    case = make_case()
    response = world.api("PM").patch(
        reverse("api-case", args=[case.pk]),
        {"version": 1, "severity": "critical", "tags": ["format"]},
        format="json",
    )
    assert response.status_code == 200 and response.json()["tags"] == ["format"]
    event = CaseEvent.objects.get(case=case, kind="edited")
    assert event.changes == {"severity": ["medium", "critical"], "tags": [[], ["format"]]}
    assert event.actor == world.users["PM"]


def test_approving_without_an_expected_output_is_400_naming_expected_output(world, tags):
    case = make_case()
    client = world.api("PM")
    moved = client.post(reverse("api-case-status", args=[case.pk]), {"status": "corrected"}, format="json")
    assert moved.status_code == 200
    response = client.post(reverse("api-case-approve", args=[case.pk]), {}, format="json")
    assert response.status_code == 400
    assert "expected_output" in error_fields(response)
    case.refresh_from_db()
    assert case.status == CaseStatus.CORRECTED


def test_approving_a_corrected_case_with_its_expected_output_succeeds(world, tags):
    case = make_case(expected="Use the reset link.")
    response = world.api("PM").post(
        reverse("api-case-approve", args=[case.pk]), {"version": 1}, format="json"
    )
    assert response.status_code == 200 and response.json()["status"] == CaseStatus.APPROVED


def test_rejecting_without_a_reason_is_400_and_with_one_it_is_kept(world, tags):
    case = make_case()
    client = world.api("PM")
    response = client.post(reverse("api-case-reject", args=[case.pk]), {"reason": "  "}, format="json")
    assert response.status_code == 400 and "reason" in error_fields(response)
    response = client.post(
        reverse("api-case-reject", args=[case.pk]), {"reason": "test traffic"}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["rejection_reason"]) == ("rejected", "test traffic")


def test_a_data_scientist_cannot_approve_or_reject(world, tags):
    case = make_case(expected="Use the reset link.")
    client = world.api("Data Scientist")
    assert client.post(reverse("api-case-approve", args=[case.pk]), {}, format="json").status_code == 403
    assert (
        client.post(reverse("api-case-reject", args=[case.pk]), {"reason": "x"}, format="json").status_code
        == 403
    )
    case.refresh_from_db()
    assert case.status == CaseStatus.CORRECTED


def test_an_illegal_status_move_is_400(world, tags):
    case = make_case()
    response = world.api("PM").post(reverse("api-case-approve", args=[case.pk]), {}, format="json")
    assert response.status_code == 400 and "cannot go from new to approved" in str(error_fields(response))


def test_anyone_can_comment_and_the_comment_enters_the_history(world, tags):
    case = make_case()
    response = world.api("Architect").post(
        reverse("api-case-comments", args=[case.pk]), {"body": "  Seen this twice.  "}, format="json"
    )
    assert response.status_code == 201 and response.json()["body"] == "Seen this twice."
    comment = CaseComment.objects.get(case=case)
    assert comment.author == world.users["Architect"]
    assert CaseEvent.objects.filter(case=case, kind="comment", note="Seen this twice.").exists()
    empty = world.api("PM").post(reverse("api-case-comments", args=[case.pk]), {"body": ""}, format="json")
    assert empty.status_code == 400


def test_an_unknown_case_is_404(world, tags):
    assert world.api("PM").get(reverse("api-case", args=[999999])).status_code == 404


# --- list ---------------------------------------------------------------------------------------------------------


def test_the_list_filters_and_pages_by_keyset(world, tags):
    cases = [make_case(f"question {i}", tags=["format"] if i % 3 == 0 else []) for i in range(60)]
    high = make_case("urgent one", severity="high")
    client = world.api("Architect")
    first = client.get(reverse("api-cases")).json()
    assert [c["id"] for c in first["results"]][:2] == [high.pk, cases[-1].pk]
    assert len(first["results"]) == 50 and first["next_after"] == first["results"][-1]["id"]
    second = client.get(reverse("api-cases"), {"after": first["next_after"]}).json()
    assert [c["id"] for c in second["results"]] == [c.pk for c in reversed(cases[:11])]
    assert second["next_after"] is None
    tagged = client.get(reverse("api-cases"), {"tag": "format"}).json()["results"]
    assert [c["id"] for c in tagged] == [c.pk for i, c in reversed(list(enumerate(cases))) if i % 3 == 0]
    assert [c["id"] for c in client.get(reverse("api-cases"), {"severity": "high"}).json()["results"]] == [
        high.pk
    ]
    assert [c["id"] for c in client.get(reverse("api-cases"), {"q": "urgent"}).json()["results"]] == [high.pk]


def test_an_anonymous_client_is_refused(db):
    from rest_framework.test import APIClient

    assert APIClient().get(reverse("api-cases")).status_code in (401, 403)
