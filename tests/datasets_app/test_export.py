"""Export of the approved cases as a data scientist downloads them: JSONL in chat form, CSV safe for spreadsheets."""

import csv
import io
import json

import pytest
from django.urls import reverse

from datasets_app.models import CaseStatus, Tag
from datasets_app.services.cases import case_create, case_set_status, cases_merge


@pytest.fixture
def tags(db):
    return {
        name: Tag.objects.get_or_create(name=name, defaults={"label": name.title(), "is_active": True})[0]
        for name in ("hallucination", "format")
    }


def make_case(
    world, text: str, bad: str = "a bad answer", expected: str = "", approve: bool = True, **fields
):
    case = case_create(
        user=world.users["PM"],
        messages=fields.pop("messages", None) or [{"role": "user", "content": text}],
        bad_output=bad,
        expected_output=expected,
        **fields,
    )
    if approve:
        case = case_set_status(case_id=case.pk, user=world.users["PM"], status=CaseStatus.APPROVED)
    return case


def body(response) -> str:
    assert response.status_code == 200, response
    return b"".join(response.streaming_content).decode("utf-8")


def csv_rows(text: str) -> list[dict]:
    assert text.startswith("\ufeff")  # spreadsheets need the BOM to read Chinese text as UTF-8
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


@pytest.fixture
def notebook(world, tags):
    """Approved cases, plus the ones an export must leave out: not approved, and merged into another."""
    chinese = make_case(
        world,
        "",
        messages=[{"role": "system", "content": "你是客服"}, {"role": "user", "content": "退款多久到账？"}],
        bad="马上到账",
        expected="3-5个工作日到账",
        tags=["hallucination"],
        product="shop",
    )
    english = make_case(world, "Where is my parcel?", expected="It ships tomorrow.", tags=["format"])
    merged = make_case(world, "Where is my parcel??", bad="another bad answer", expected="It ships tomorrow.")
    cases_merge(primary_id=english.pk, other_ids=[merged.pk], user=world.users["PM"])
    corrected = make_case(world, "Only corrected", expected="not approved yet", approve=False)
    new = make_case(world, "Brand new", approve=False)
    return {"chinese": chinese, "english": english, "merged": merged, "corrected": corrected, "new": new}


def test_jsonl_export_holds_only_approved_unmerged_cases_in_chat_form(world, notebook):
    text = body(world.client("Data Scientist").get(reverse("cases:export"), {"format": "jsonl"}))
    records = [json.loads(line) for line in text.splitlines()]
    chinese, english = notebook["chinese"], notebook["english"]
    assert [r["id"] for r in records] == [chinese.pk, english.pk]
    assert records[0]["messages"] == [
        {"role": "system", "content": "你是客服"},
        {"role": "user", "content": "退款多久到账？"},
        {"role": "assistant", "content": "3-5个工作日到账"},
    ]
    assert records[0]["rejected_output"] == "马上到账"
    assert (records[0]["tags"], records[0]["product"], records[0]["severity"]) == (
        ["hallucination"],
        "shop",
        "medium",
    )
    assert records[1]["messages"][-1] == {"role": "assistant", "content": "It ships tomorrow."}
    assert "退款多久到账？" in text  # written as UTF-8, not \\u escapes


def test_csv_export_keeps_chinese_text_intact(world, notebook):
    response = world.client("PM").get(reverse("cases:export"), {"format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="approved-cases.csv"' in response["Content-Disposition"]
    rows = csv_rows(body(response))
    assert [int(r["id"]) for r in rows] == [notebook["chinese"].pk, notebook["english"].pk]
    first = rows[0]
    assert (first["system"], first["input"], first["expected"], first["bad_output"]) == (
        "你是客服",
        "退款多久到账？",
        "3-5个工作日到账",
        "马上到账",
    )
    assert first["tags"] == "hallucination"


@pytest.mark.parametrize("start", ["=", "+", "-", "@"])
def test_csv_cells_that_a_spreadsheet_would_run_as_a_formula_are_neutralised(world, tags, start):
    formula = f'{start}HYPERLINK("http://evil.example","x")'
    make_case(world, formula, bad=f"{start}1+1", expected=f"{start}cmd|' /C calc'!A0", product=f"{start}shop")
    row = csv_rows(body(world.client("PM").get(reverse("cases:export"), {"format": "csv"})))[0]
    assert row["input"] == "'" + formula
    assert row["bad_output"] == f"'{start}1+1"
    assert row["expected"] == f"'{start}cmd|' /C calc'!A0"
    assert row["product"] == f"'{start}shop"


def test_a_cell_with_a_formula_character_inside_is_left_alone(world, tags):
    make_case(world, "what is 1+1=?", bad="a-b", expected="2 (see @docs)")
    row = csv_rows(body(world.client("PM").get(reverse("cases:export"), {"format": "csv"})))[0]
    assert (row["input"], row["bad_output"], row["expected"]) == ("what is 1+1=?", "a-b", "2 (see @docs)")


def test_the_export_follows_the_list_filters(world, notebook):
    text = body(world.client("PM").get(reverse("cases:export"), {"format": "jsonl", "tag": "format"}))
    assert [json.loads(line)["id"] for line in text.splitlines()] == [notebook["english"].pk]


def test_the_api_exports_jsonl_and_csv(world, notebook):
    client = world.api("Architect")
    jsonl = client.get(reverse("api-cases-export"))
    assert jsonl["Content-Type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in body(jsonl).splitlines()]
    assert [r["id"] for r in records] == [notebook["chinese"].pk, notebook["english"].pk]
    rows = csv_rows(body(client.get(reverse("api-cases-export"), {"format": "csv", "product": "shop"})))
    assert [(int(r["id"]), r["input"]) for r in rows] == [(notebook["chinese"].pk, "退款多久到账？")]


def test_a_bad_export_format_is_400(world, tags):
    page = world.client("PM").get(reverse("cases:export"), {"format": "xlsx"})
    assert page.status_code == 400 and "format: choose one of jsonl, csv" in page.content.decode()
    api = world.api("PM").get(reverse("api-cases-export"), {"format": "xlsx"})
    assert api.status_code == 400 and "choose jsonl or csv" in api.json()["error"]["message"]


def test_an_empty_export_is_a_header_only_csv_and_an_empty_jsonl(world, tags):
    rows = body(world.client("PM").get(reverse("cases:export"), {"format": "csv"}))
    assert rows.splitlines() == [
        "\ufeffid,system,input,expected,bad_output,tags,severity,task_type,product,feature,model_version"
    ]
    assert body(world.client("PM").get(reverse("cases:export"), {"format": "jsonl"})) == ""


def test_exporting_needs_a_login(db):
    from django.test import Client

    response = Client().get(reverse("cases:export"), {"format": "csv"})
    assert response.status_code in (302, 403)
