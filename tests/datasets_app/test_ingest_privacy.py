"""Personal data in imported cases never reaches the database, the logs or the downloadable reports when scrubbing is
on; it is kept when an admin turned scrubbing off; the admins' sensitive words are masked or flagged."""

import json
import logging
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from datasets_app.models import CaseEvent, ErrorCase, ImportJob, SensitiveWord, Tag
from datasets_app.services.imports import import_job_create

PII = {
    "EMAIL": "li.lei@example.com",
    "PHONE (CN mobile)": "13812345678",
    "PHONE (international)": "+44 20 7946 0958",
    "ID_CN": "11010519491231002X",
    "BANK_CARD": "4111 1111 1111 1111",
    "IP (v4)": "192.168.23.45",
    "IP (v6)": "2001:db8:85a3::8a2e:370:7334",
}
SCANNED = (ErrorCase, CaseEvent, ImportJob)


@pytest.fixture
def tags(db):
    return {
        name: Tag.objects.get_or_create(name=name, defaults={"label": name.title(), "is_active": True})[0]
        for name in ("hallucination", "format")
    }


@pytest.fixture(autouse=True)
def artifacts(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.JOB_HEARTBEAT_SECONDS = (
        600  # inline jobs run inside the test's transaction, unseen by a heartbeat
    )


def jsonl(*objects) -> bytes:
    return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects).encode()


def run_import(world, content: bytes, name: str = "cases.jsonl", **options) -> ImportJob:
    return import_job_create(user=world.users["PM"], upload=SimpleUploadedFile(name, content), **options)


def rows_holding(text: str) -> dict[str, int]:
    """How many rows of each scanned table hold `text` anywhere (every column, JSON and text alike)."""
    found = {}
    with connection.cursor() as cursor:
        for model in SCANNED:
            table = model._meta.db_table
            cursor.execute(f"SELECT count(*) FROM {table} t WHERE strpos(t::text, %s) > 0", [text])  # noqa: S608
            found[table] = cursor.fetchone()[0]
    return {table: n for table, n in found.items() if n}


def download(client, name: str, job: ImportJob) -> str:
    response = client.get(reverse(name, args=[job.pk]))
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode("utf-8")


def cases_with(value: str) -> list[dict]:
    """A valid chat line holding `value` in every text and in its metadata, and an invalid flat line holding it in its
    input and in the reason it is rejected (an unknown severity)."""
    return [
        {
            "messages": [
                {"role": "system", "content": f"The agent's contact: {value}"},
                {"role": "user", "content": f"请联系我 {value} 谢谢"},
                {"role": "assistant", "content": f"I saved {value}."},
            ],
            "expected": f"I cannot store {value}.",
            "metadata": {"contact": value, "history": [{"from": value}]},
            "customer_contact": value,  # an unknown field: kept in metadata
        },
        {"input": f"mine is {value}", "output": "noted", "severity": value},
    ]


@pytest.mark.parametrize("value", PII.values(), ids=PII.keys())
def test_scrubbed_personal_data_appears_nowhere_in_the_database_logs_or_reports(world, tags, caplog, value):
    caplog.set_level(logging.DEBUG)
    job = run_import(world, jsonl(*cases_with(value)), skip_invalid=True, scrub_pii=True)
    assert job.status == "succeeded", job.error
    assert (job.imported, job.invalid_lines) == (1, 1)
    kind = next(k for k, v in PII.items() if v == value).split()[0]
    assert job.pii_found[kind] >= 4
    case = ErrorCase.objects.get()
    assert case.user_input == f"请联系我 [{kind}] 谢谢" and case.bad_output == f"I saved [{kind}]."
    assert case.metadata == {
        "contact": f"[{kind}]",
        "history": [{"from": f"[{kind}]"}],
        "customer_contact": f"[{kind}]",
    }
    assert job.preview and job.problems  # both were written, scrubbed
    assert rows_holding(value) == {}
    assert value not in caplog.text
    assert all(value not in str(r.args) for r in caplog.records)
    client = world.client("PM")
    problems = download(client, "cases:import-problems", job)
    rejected = download(client, "cases:import-rejected", job)
    assert f"unknown severity '[{kind}]'" in problems and value not in problems
    assert f"mine is [{kind}]" in rejected and value not in rejected


def test_a_csv_import_scrubs_every_kind_of_personal_data(world, tags):
    values = list(PII.values())
    lines = ["input,output,expected,customer"]
    lines += [f'"ask #{i}: {v}","sent to {v}","never {v}","{v}"' for i, v in enumerate(values)]
    job = run_import(world, ("\n".join(lines) + "\n").encode("gb18030"), "cases.csv")
    assert job.status == "succeeded" and job.imported == len(values)
    for value in values:
        assert rows_holding(value) == {}, value
    assert sum(job.pii_found.values()) == 4 * len(values)
    assert ErrorCase.objects.filter(metadata__customer="[EMAIL]").count() == 1


def test_with_scrubbing_off_the_original_personal_data_is_kept(world, tags):
    value = PII["EMAIL"]
    job = run_import(world, jsonl(*cases_with(value)), skip_invalid=True, scrub_pii=False)
    assert job.status == "succeeded" and job.pii_found == {}
    case = ErrorCase.objects.get()
    assert case.user_input == f"请联系我 {value} 谢谢" and case.expected_output == f"I cannot store {value}."
    problems = download(world.client("PM"), "cases:import-problems", job)
    assert f"unknown severity '{value}'" in problems
    page = world.client("PM").get(reverse("cases:import-detail", args=[job.pk])).content.decode()
    assert "scrubbing was off" in page


def test_scrubbing_is_on_by_default_on_the_import_page_and_the_api(world, tags):
    client = world.client("PM")
    form = client.get(reverse("cases:import")).content.decode()
    checkbox = re.search(r'<input[^>]*name="scrub_pii"[^>]*>', form)
    assert checkbox and "checked" in checkbox.group()
    content = jsonl({"input": f"call {PII['PHONE (CN mobile)']}", "output": "ok"})
    response = world.api("PM").post(
        reverse("api-case-imports"), {"file": SimpleUploadedFile("a.jsonl", content)}, format="multipart"
    )
    assert response.status_code == 201 and response.json()["scrub_pii"] is True
    assert ErrorCase.objects.get().user_input == "call [PHONE]"


def test_sensitive_words_are_masked_or_flagged_at_import(world, tags):
    SensitiveWord.objects.create(word="内部价", action="mask")
    SensitiveWord.objects.create(word="Acme", action="flag")
    content = jsonl(
        {"input": "内部价是多少？", "output": "ACME sells it cheaper", "expected": "无法提供内部价"}
    )
    job = run_import(world, content)
    assert job.status == "succeeded"
    case = ErrorCase.objects.get()
    assert case.user_input == "***是多少？" and case.expected_output == "无法提供***"
    assert case.bad_output == "ACME sells it cheaper" and case.flags == ["sensitive:Acme"]
    assert rows_holding("内部价") == {}


def test_sensitive_words_apply_to_cases_created_through_the_api(world, tags):
    SensitiveWord.objects.create(word="secret", action="mask")
    SensitiveWord.objects.create(word="lawsuit", action="flag")
    response = world.api("PM").post(
        reverse("api-cases"),
        {"messages": [{"role": "user", "content": "the secret code, or a lawsuit"}], "bad_output": "ok"},
        format="json",
    )
    assert response.status_code == 201
    data = response.json()
    assert data["messages"][0]["content"] == "the ****** code, or a lawsuit"
    assert data["flags"] == ["sensitive:lawsuit"]
