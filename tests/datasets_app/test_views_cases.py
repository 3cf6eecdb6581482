"""The error notebook in the browser's terms: list, case page, inline edit, triage, bulk actions, merge, dashboard."""

import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from datasets_app.models import CaseEvent, CaseStatus, ErrorCase, Tag
from datasets_app.selectors import PAGE_SIZE
from datasets_app.services.cases import case_create, case_update

XSS = "<script>alert('x')</script>"
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def tags(db):
    return {
        name: Tag.objects.get_or_create(name=name, defaults={"label": name.title(), "is_active": True})[0]
        for name in ("hallucination", "terminology", "format")
    }


def make_case(
    text="How do I reset my password?", bad="Click the red button.", expected="", **fields
) -> ErrorCase:
    return case_create(
        user=None,
        messages=[{"role": "user", "content": text}],
        bad_output=bad,
        expected_output=expected,
        **fields,
    )


def listed(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr data-case="(\d+)"', html)]


def page(client, url, data=None, **extra):
    response = client.get(url, data or {}, **extra)
    return response, response.content.decode()


# --- the list ------------------------------------------------------------------------------------------------


def test_the_list_filters_by_status_tag_severity_source_and_assignee(world, tags):
    pm = world.users["PM"]
    a = make_case("refund policy", tags=["hallucination"], severity="high")
    b = make_case("shipping time", expected="Two days.", tags=["terminology"], source="monitoring")
    c = make_case("opening hours", assignee=pm)
    client = world.client("PM")
    url = reverse("cases:list")
    assert listed(page(client, url)[1]) == [c.pk, b.pk, a.pk]
    assert listed(page(client, url, {"status": "corrected"})[1]) == [b.pk]
    assert listed(page(client, url, {"tag": "hallucination"})[1]) == [a.pk]
    assert listed(page(client, url, {"severity": "high"})[1]) == [a.pk]
    assert listed(page(client, url, {"source": "monitoring"})[1]) == [b.pk]
    assert listed(page(client, url, {"assignee": pm.pk})[1]) == [c.pk]
    assert listed(page(client, url, {"assignee": "none"})[1]) == [b.pk, a.pk]
    today = timezone.localdate().isoformat()
    assert listed(page(client, url, {"date_from": today, "date_to": today})[1]) == [c.pk, b.pk, a.pk]
    assert listed(page(client, url, {"date_to": "2000-01-01"})[1]) == []


def test_search_finds_english_and_chinese_text(world):
    english = make_case("Where is my parcel?", bad="It was delivered yesterday.")
    chinese = make_case("我的包裹在哪里？", bad="包裹已经送达了。")
    client = world.client("PM")
    url = reverse("cases:list")
    assert listed(page(client, url, {"q": "parcel"})[1]) == [english.pk]
    assert listed(page(client, url, {"q": "deliv"})[1]) == [english.pk]
    assert listed(page(client, url, {"q": "包裹"})[1]) == [chinese.pk]
    assert listed(page(client, url, {"q": "送达"})[1]) == [chinese.pk]
    assert listed(page(client, url, {"q": "不存在"})[1]) == []


def test_a_bad_filter_value_is_ignored_with_a_message_naming_the_field(world):
    case = make_case()
    response, html = page(
        world.client("PM"), reverse("cases:list"), {"date_from": "31/02/2024", "status": "nope"}
    )
    assert response.status_code == 200
    assert "date_from: “31/02/2024” is not a date" in html
    assert "status: “nope” is not one of" in html
    assert listed(html) == [case.pk]


def test_a_filter_change_from_htmx_swaps_only_the_table(world):
    make_case()
    response, html = page(world.client("PM"), reverse("cases:list"), {"severity": "low"}, **HX)
    assert html.lstrip().startswith('<section id="case-table"')
    assert "No cases match these filters." in html
    assert 'id="status-chips"' in html and 'hx-swap-oob="true"' in html


def test_load_more_appends_the_next_page_by_keyset(world):
    now = timezone.now()
    ErrorCase.objects.bulk_create(
        ErrorCase(
            messages=[{"role": "user", "content": f"q{i}"}],
            bad_output=f"a{i}",
            fingerprint=f"{i:064}",
            created_at=now,
        )
        for i in range(PAGE_SIZE + 5)
    )
    ids = list(ErrorCase.objects.order_by("-pk").values_list("pk", flat=True))
    client = world.client("PM")
    first = page(client, reverse("cases:list"), {"severity": "medium"})[1]
    assert listed(first) == ids[:PAGE_SIZE]
    after = ids[PAGE_SIZE - 1]
    assert f'href="?severity=medium&amp;after={after}"' in first  # works without JS
    assert f'hx-get="/cases/?severity=medium&amp;after={after}"' in first
    response, more = page(client, reverse("cases:list"), {"severity": "medium", "after": after}, **HX)
    assert listed(more) == ids[PAGE_SIZE:]
    assert "<table" not in more and "Load more" not in more


def test_the_status_counts_are_shown_as_chips(world):
    make_case()
    make_case("another question", expected="A fix.")
    make_case("third question", expected="Another fix.")
    html = page(world.client("Architect"), reverse("cases:list"))[1]
    assert re.search(r'data-status-count="new">1<', html)
    assert re.search(r'data-status-count="corrected">2<', html)
    assert re.search(r'data-status-count="approved">0<', html)


# --- the case page -------------------------------------------------------------------------------------------


def test_the_case_page_escapes_script_in_every_text(world, tags):
    Tag.objects.filter(name="format").update(label=f"Format {XSS}")
    case = case_create(
        user=world.users["PM"],
        messages=[{"role": "system", "content": f"sys {XSS}"}, {"role": "user", "content": f"user {XSS}"}],
        bad_output=f"bad {XSS}",
        expected_output=f"good {XSS}",
        tags=["format"],
        product=f"prod {XSS}",
        feature=XSS,
        model_version=XSS,
        metadata={"note": XSS},
    )
    ErrorCase.objects.filter(pk=case.pk).update(flags=[XSS])
    world.client("PM").post(reverse("cases:comment", args=[case.pk]), {"body": f"comment {XSS}"})
    for role in ("PM", "Architect"):
        for url in (reverse("cases:detail", args=[case.pk]), reverse("cases:list"), reverse("cases:triage")):
            html = page(world.client(role), url)[1]
            assert XSS not in html, url
            assert "&lt;script&gt;" in html, url
    html = page(world.client("PM"), reverse("cases:detail", args=[case.pk]))[1]
    assert "user &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "comment &lt;script&gt;" in html


def test_the_case_page_shows_the_diff_the_conversation_and_the_history(world):
    case = make_case("What is the fee?", bad="The fee is 5 euros.", expected="The fee is 7 euros.")
    html = page(world.client("PM"), reverse("cases:detail", args=[case.pk]))[1]
    assert "The fee is <del>5</del> euros." in html and "The fee is <ins>7</ins> euros." in html
    assert "What is the fee?" in html
    assert 'class="kind">created<' in html


def test_an_inline_edit_saves_and_records_the_change_in_the_history(world):
    case = make_case(bad="Wrong answer.")
    response = world.client("PM").post(
        reverse("cases:edit", args=[case.pk]),
        {
            "version": case.version,
            "expected_output": "Right answer.",
            "severity": "high",
            "task_type": "chat",
            "product": "shop",
            "feature": "",
            "model_version": "",
            "assignee": "",
        },
        **HX,
    )
    html = response.content.decode()
    assert response.status_code == 200
    case.refresh_from_db()
    assert (case.expected_output, case.severity, case.product, case.status) == (
        "Right answer.",
        "high",
        "shop",
        "corrected",
    )
    assert case.version == 2
    assert "<del>Wrong</del>" in html and "<ins>Right</ins>" in html
    assert (
        '<code>expected_output</code>: <span class="old">—</span> → <span class="new">Right answer.</span>'
        in html
    )
    assert f"Case #{case.pk} saved." in html  # the toast
    event = CaseEvent.objects.get(case=case, kind="edited")
    assert event.actor == world.users["PM"] and event.changes["severity"] == ["medium", "high"]


def test_a_stale_edit_gets_409_naming_who_changed_it_and_keeps_both_texts(world):
    case = make_case()
    first, second = world.client("PM"), world.client("Data Scientist")
    url = reverse("cases:edit", args=[case.pk])
    assert (
        first.post(url, {"version": case.version, "expected_output": "First fix."}, **HX).status_code == 200
    )
    response = second.post(url, {"version": case.version, "expected_output": "Second fix."}, **HX)
    html = response.content.decode()
    assert response.status_code == 409
    assert f"pm changed case #{case.pk}" in html and "your edit was not saved" in html
    assert re.search(r"<textarea[^>]*>\s*Second fix.</textarea>", html)  # the scientist's text is kept
    assert "<ins>First</ins>" in html  # the diff shows what is saved
    case.refresh_from_db()
    assert case.expected_output == "First fix."


def test_approving_a_case_without_expected_output_is_400_naming_the_field(world):
    case = make_case()
    ErrorCase.objects.filter(pk=case.pk).update(status=CaseStatus.CORRECTED)
    response = world.client("PM").post(reverse("cases:approve", args=[case.pk]), **HX)
    assert response.status_code == 400
    assert (
        f"expected_output: case #{case.pk} has no expected output; correct it first"
        in response.content.decode()
    )
    case.refresh_from_db()
    assert case.status == CaseStatus.CORRECTED


def test_rejecting_needs_a_reason(world):
    case = make_case()
    client = world.client("PM")
    response = client.post(reverse("cases:reject", args=[case.pk]), {"reason": "  "})
    assert response.status_code == 400 and "reason: a rejection needs a reason" in response.content.decode()
    response = client.post(reverse("cases:reject", args=[case.pk]), {"reason": "not a real user"})
    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.status, case.rejection_reason) == ("rejected", "not a real user")


def test_approve_and_reject_are_hidden_from_a_data_scientist_and_refused_with_403(world):
    case = make_case(expected="A fix.")
    scientist = page(world.client("Data Scientist"), reverse("cases:detail", args=[case.pk]))[1]
    assert 'id="approve-button"' not in scientist and 'id="reject-button"' not in scientist
    assert 'id="edit-form"' in scientist  # scientists still correct cases
    pm = page(world.client("PM"), reverse("cases:detail", args=[case.pk]))[1]
    assert 'id="approve-button"' in pm and 'id="reject-button"' in pm
    client = world.client("Data Scientist")
    assert client.post(reverse("cases:approve", args=[case.pk])).status_code == 403
    assert client.post(reverse("cases:reject", args=[case.pk]), {"reason": "x"}).status_code == 403
    case.refresh_from_db()
    assert case.status == CaseStatus.CORRECTED


def test_the_list_links_to_new_case_import_export_and_triage_by_role(world):
    pm = page(world.client("PM"), reverse("cases:list"), {"severity": "high"})[1]
    for name in ("cases:create", "cases:import"):
        assert f'href="{reverse(name)}"' in pm
    assert f'href="{reverse("cases:export")}?format=jsonl&amp;severity=high"' in pm
    assert f'href="{reverse("cases:export")}?format=csv&amp;severity=high"' in pm
    assert f'action="{reverse("cases:find-duplicates")}"' in pm
    assert f'href="{reverse("cases:triage")}?severity=high"' in pm
    assert 'id="bulk-form"' in pm
    architect = page(world.client("Architect"), reverse("cases:list"))[1]
    assert f'href="{reverse("cases:create")}"' not in architect and 'id="bulk-form"' not in architect
    assert f'action="{reverse("cases:find-duplicates")}"' not in architect


def test_an_architect_reads_and_comments_but_cannot_edit(world):
    case = make_case()
    client = world.client("Architect")
    html = page(client, reverse("cases:detail", args=[case.pk]))[1]
    assert 'id="edit-form"' not in html and 'id="tag-form"' not in html
    assert (
        client.post(reverse("cases:edit", args=[case.pk]), {"version": 1, "expected_output": "x"}).status_code
        == 403
    )
    response = client.post(
        reverse("cases:comment", args=[case.pk]), {"body": "Looks like a tone issue."}, **HX
    )
    assert response.status_code == 200 and "Looks like a tone issue." in response.content.decode()


def test_the_tag_picker_saves_the_checked_tags(world, tags):
    case = make_case(tags=["format"])
    response = world.client("PM").post(
        reverse("cases:tags", args=[case.pk]),
        {"version": case.version, "tags": ["hallucination", "terminology"]},
    )
    assert response.status_code == 302
    assert sorted(case.tags.values_list("name", flat=True)) == ["hallucination", "terminology"]
    assert CaseEvent.objects.get(case=case, kind="edited").changes["tags"] == [
        ["format"],
        ["hallucination", "terminology"],
    ]


def test_status_buttons_move_a_case_and_refuse_an_unknown_status(world):
    case = make_case()
    client = world.client("Data Scientist")
    url = reverse("cases:status", args=[case.pk])
    assert client.post(url, {"status": "triaged", "version": case.version}).status_code == 302
    case.refresh_from_db()
    assert case.status == CaseStatus.TRIAGED
    assert client.post(url, {"status": "approved"}).status_code == 400


# --- triage --------------------------------------------------------------------------------------------------


def test_triage_shows_the_first_case_of_the_filtered_list_with_its_neighbours(world):
    old, middle, new = (make_case(f"question {i}", expected=f"fix {i}") for i in range(3))
    make_case("an uncorrected one")
    client = world.client("PM")
    html = page(client, reverse("cases:triage"), {"status": "corrected"})[1]
    assert f'id="triage-panel" class="triage" data-case="{new.pk}"' in html
    assert f'href="/cases/{middle.pk}/triage?status=corrected"' in html
    html = page(client, reverse("cases:triage-case", args=[middle.pk]), {"status": "corrected"})[1]
    assert (
        f"/cases/{new.pk}/triage?status=corrected" in html
        and f"/cases/{old.pk}/triage?status=corrected" in html
    )
    assert "<kbd>a</kbd>" in html and "triage.js" in html


def test_approving_in_triage_advances_to_the_next_case(world):
    older, newer = make_case("first", expected="fix 1"), make_case("second", expected="fix 2")
    client = world.client("PM")
    url = reverse("cases:approve", args=[newer.pk]) + "?status=corrected"
    response = client.post(url, {"triage": "1", "version": newer.version}, **HX)
    html = response.content.decode()
    assert response.status_code == 200
    assert f'data-case="{older.pk}"' in html and f"Case #{newer.pk} is now approved." in html
    assert response["HX-Push-Url"] == f"/cases/{older.pk}/triage?status=corrected"
    newer.refresh_from_db()
    assert newer.status == CaseStatus.APPROVED
    # without JS: a redirect to the next case, and after the last one to the end of the list
    response = client.post(
        reverse("cases:reject", args=[older.pk]) + "?status=corrected", {"triage": "1", "reason": "dup"}
    )
    assert response.status_code == 302 and response["Location"] == "/cases/triage/?status=corrected&done=1"
    assert "Nothing more to triage" in page(client, response["Location"])[1]


def test_an_edit_in_triage_stays_on_the_case(world):
    case = make_case()
    response = world.client("PM").post(
        reverse("cases:edit", args=[case.pk]),
        {"triage": "1", "version": 1, "expected_output": "Fixed."},
        **HX,
    )
    html = response.content.decode()
    assert response.status_code == 200 and f'data-case="{case.pk}"' in html and "<ins>Fixed</ins>" in html
    case.refresh_from_db()
    assert (
        case.severity == "medium"
    )  # the triage editor posts only the expected output; the rest is untouched


# --- bulk actions and merge ----------------------------------------------------------------------------------


def bulk(client, data, query=""):
    return client.post(reverse("cases:bulk") + query, data, **HX)


def test_bulk_tag_assign_and_status_report_done_and_skipped(world, tags):
    a, b = make_case("one"), make_case("two", expected="fixed")
    ids = [a.pk, b.pk]
    client = world.client("PM")
    response = bulk(client, {"ids": ids, "action": "tag", "tag": "hallucination"})
    assert response.status_code == 200 and "2 done, 0 skipped" in response.content.decode()
    assert set(Tag.objects.get(name="hallucination").cases.values_list("pk", flat=True)) == set(ids)
    scientist = world.users["Data Scientist"]
    bulk(client, {"ids": ids, "action": "assign", "assignee": scientist.pk})
    assert set(ErrorCase.objects.values_list("assignee", flat=True)) == {scientist.pk}
    response = bulk(client, {"ids": ids, "action": "status", "status": "approved"})
    html = response.content.decode()
    assert (
        "1 done, 1 skipped" in html
        and f"#{a.pk}: status: case #{a.pk} cannot go from new to approved" in html
    )
    assert ErrorCase.objects.get(pk=b.pk).status == CaseStatus.APPROVED
    response = bulk(client, {"ids": [a.pk], "action": "status", "status": "rejected", "reason": "spam"})
    assert ErrorCase.objects.get(pk=a.pk).rejection_reason == "spam"
    assert listed(response.content.decode()) == [b.pk, a.pk]  # the table is refreshed


def test_bulk_status_rejected_needs_a_reason_and_approve_needs_the_permission(world):
    case = make_case(expected="fix")
    response = bulk(world.client("PM"), {"ids": [case.pk], "action": "status", "status": "rejected"})
    assert response.status_code == 400 and "reason: a rejection needs a reason" in response.content.decode()
    scientist = world.client("Data Scientist")
    assert bulk(scientist, {"ids": [case.pk], "action": "status", "status": "approved"}).status_code == 403
    assert bulk(scientist, {"ids": [case.pk], "action": "status", "status": "triaged"}).status_code == 200
    assert bulk(world.client("Architect"), {"ids": [case.pk], "action": "tag", "tag": "x"}).status_code == 403
    assert ErrorCase.objects.get(pk=case.pk).status == CaseStatus.TRIAGED


def test_bulk_delete_needs_an_explicit_confirmation_and_the_permission(world):
    a, b = make_case("one"), make_case("two")
    client = world.client("PM")
    response = bulk(client, {"ids": [a.pk, b.pk], "action": "delete"})
    assert (
        response.status_code == 400
        and "confirm: deleting cases needs an explicit confirmation" in response.content.decode()
    )
    assert ErrorCase.objects.count() == 2
    assert (
        bulk(
            world.client("Data Scientist"), {"ids": [a.pk], "action": "delete", "confirm": "yes"}
        ).status_code
        == 403
    )
    response = bulk(client, {"ids": [a.pk, b.pk], "action": "delete", "confirm": "yes"})
    assert response.status_code == 200 and "2 done, 0 skipped" in response.content.decode()
    assert ErrorCase.objects.count() == 0


def test_bulk_without_js_redirects_back_to_the_filtered_list(world):
    case = make_case()
    response = world.client("PM").post(
        reverse("cases:bulk") + "?severity=medium",
        {"ids": [case.pk], "action": "status", "status": "triaged"},
    )
    assert response.status_code == 302 and response["Location"] == "/cases/?severity=medium"


def test_merging_hides_the_merged_cases_from_the_list_and_keeps_their_history(world, tags):
    a = make_case("refund 1", tags=["format"])
    b = make_case("refund 2", tags=["hallucination"])
    c = make_case("refund 3")
    client = world.client("PM")
    response = client.post(reverse("cases:merge"), {"ids": [c.pk, a.pk, b.pk]}, **HX)
    assert response.status_code == 200
    assert f"Merged #{b.pk}, #{c.pk} into case #{a.pk}" in response.content.decode()
    assert listed(page(client, reverse("cases:list"))[1]) == [a.pk]
    assert sorted(a.tags.values_list("name", flat=True)) == ["format", "hallucination"]
    html = page(client, reverse("cases:detail", args=[b.pk]))[1]
    assert f"merged into case #{a.pk}" in html and 'class="kind">created<' in html
    assert 'id="edit-form"' not in html
    assert client.post(reverse("cases:merge"), {"ids": [a.pk]}, **HX).status_code == 400


# --- new case and dashboard ----------------------------------------------------------------------------------


def test_a_new_case_is_created_from_the_form_and_a_duplicate_links_the_existing_one(world, tags):
    data = {
        "system_prompt": "You are a shop assistant.",
        "user_input": "Can I return shoes?",
        "bad_output": "No.",
        "expected_output": "Yes, within 30 days.",
        "tags": ["format"],
        "severity": "high",
        "task_type": "chat",
        "product": "shop",
        "feature": "returns",
        "model_version": "v1",
    }
    client = world.client("PM")
    response = client.post(reverse("cases:create"), data)
    case = ErrorCase.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/cases/{case.pk}/"
    assert (
        case.source == "manual"
        and case.status == CaseStatus.CORRECTED
        and case.messages[0]["role"] == "system"
    )
    assert list(case.tags.values_list("name", flat=True)) == ["format"]
    response = client.post(reverse("cases:create"), data)
    html = response.content.decode()
    assert response.status_code == 400
    assert f"An identical case already exists: #{case.pk}." in html and f'href="/cases/{case.pk}/"' in html
    response = client.post(reverse("cases:create"), {**data, "user_input": "  ", "severity": "huge"})
    html = response.content.decode()
    assert (
        response.status_code == 400
        and "user_input: this field cannot be blank" in html
        and "severity:" in html
    )


def test_the_dashboard_shows_the_funnel_and_the_chart_data(world, tags):
    make_case("a", tags=["format"])
    make_case("b", expected="fix", tags=["format", "hallucination"])
    approved = make_case("c", expected="fix 2")
    ErrorCase.objects.filter(pk=approved.pk).update(status=CaseStatus.APPROVED)
    case_update(
        case_id=approved.pk, user=world.users["PM"], version=1, changes={"assignee": world.users["PM"]}
    )
    html = page(world.client("Architect"), reverse("cases:dashboard"))[1]
    funnel = dict(re.findall(r'data-funnel="(\w+)">(\d+)<', html))
    assert funnel == {"new": "3", "triaged": "2", "corrected": "2", "approved": "1"}
    data = json.loads(
        re.search(r'<script id="cases-per-tag" type="application/json">(.*?)</script>', html).group(1)
    )
    assert len(data["dates"]) == 30 and data["dates"][-1] == timezone.localdate().isoformat()
    assert data["series"]["format"][-1] == 2 and data["series"]["hallucination"][-1] == 1
    assert "uPlot.iife.min.js" in html and "/static/vendor/uplot/" in html
