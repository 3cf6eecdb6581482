"""File imports as a PM meets them: JSONL and CSV in the encodings people have, atomic or skip-invalid, dry runs,
every kind of bad input reported by line and field, crashes that leave nothing behind, and big files on a worker."""

import csv
import io
import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from datasets_app.models import CaseStatus, ErrorCase, ImportJob, Tag
from datasets_app.services.imports import import_job_create
from datasets_app.services.writer import CaseWriter
from tests.conftest import wait_until

TAGS = ("hallucination", "terminology", "format")


@pytest.fixture
def tags(db):
    return {
        name: Tag.objects.get_or_create(name=name, defaults={"label": name.title(), "is_active": True})[0]
        for name in TAGS
    }


@pytest.fixture(autouse=True)
def artifacts(settings, tmp_path) -> Path:
    """Uploads, problem reports and rejected lines go to a folder of this test's own."""
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.JOB_HEARTBEAT_SECONDS = (
        600  # inline jobs run inside the test's transaction, unseen by a heartbeat
    )
    return settings.ARTIFACT_ROOT / "imports"


def jsonl(*objects) -> bytes:
    return "".join(
        (o if isinstance(o, str) else json.dumps(o, ensure_ascii=False)) + "\n" for o in objects
    ).encode()


def flat(i: int | str, **fields) -> dict:
    return {"input": f"question {i}", "output": f"bad answer {i}", **fields}


def upload(content: bytes | str, name: str = "cases.jsonl") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content.encode() if isinstance(content, str) else content)


def run_import(world, content: bytes | str, name: str = "cases.jsonl", **options) -> ImportJob:
    return import_job_create(user=world.users["PM"], upload=upload(content, name), **options)


def problems_of(job: ImportJob) -> list[tuple[int, str]]:
    return [(p["line"], p["field"]) for p in job.problems]


def stored_uploads(folder: Path) -> list[str]:
    """What is left in the imports folder besides each job's problem report and rejected lines."""
    return (
        sorted(p.name for p in folder.iterdir() if not p.name.startswith("job-")) if folder.exists() else []
    )


def download(response) -> bytes:
    assert response.status_code == 200, response
    return b"".join(response.streaming_content)


# --- formats and encodings ------------------------------------------------------------------------------------------


def test_a_chat_jsonl_file_is_imported_with_the_last_assistant_turn_as_the_bad_answer(world, tags, artifacts):
    lines = jsonl(
        {
            "messages": [
                {"role": "system", "content": "你是客服助手"},
                {"role": "user", "content": "订单什么时候发货？"},
                {"role": "assistant", "content": "已经发货了"},
            ],
            "expected": "订单尚未发货，预计明天发出。",
            "tags": ["Hallucination"],
            "severity": "High",
            "product": "shop",
            "metadata": {"trace": "t-1"},
        },
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Bye"}]},
    )
    job = run_import(world, lines)
    assert job.status == "succeeded", job.error
    assert (job.file_format, job.encoding, job.lines_read, job.imported) == ("jsonl", "utf-8", 2, 2)
    first, second = ErrorCase.objects.order_by("pk")
    assert first.messages == [
        {"role": "system", "content": "你是客服助手"},
        {"role": "user", "content": "订单什么时候发货？"},
    ]
    assert (first.bad_output, first.expected_output) == ("已经发货了", "订单尚未发货，预计明天发出。")
    assert (first.status, first.severity, first.product, first.metadata) == (
        "corrected",
        "high",
        "shop",
        {"trace": "t-1"},
    )
    assert list(first.tags.values_list("name", flat=True)) == ["hallucination"]
    assert (first.source, first.import_job_id, first.created_by) == ("import", job.pk, world.users["PM"])
    assert len(first.fingerprint) == 64
    assert (second.user_input, second.bad_output, second.status) == ("Hi", "Bye", CaseStatus.NEW)
    assert stored_uploads(artifacts) == []  # the upload is deleted once imported


def test_a_flat_jsonl_file_is_imported(world, tags):
    job = run_import(
        world, jsonl(flat(1, system="Be brief.", expected="good answer 1", tags=["format"]), flat(2))
    )
    assert job.status == "succeeded" and job.imported == 2
    case = ErrorCase.objects.get(bad_output="bad answer 1")
    assert case.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "question 1"},
    ]
    assert case.expected_output == "good answer 1" and case.status == CaseStatus.CORRECTED


CSV_TEXT = "input,output,expected,tags,severity\r\n退款多久到账？,马上到账,3-5个工作日到账,hallucination、format,High\r\n"


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (CSV_TEXT.encode("utf-8"), "utf-8"),
        (b"\xef\xbb\xbf" + CSV_TEXT.encode("utf-8"), "utf-8-sig"),
        (CSV_TEXT.encode("gb18030"), "gb18030"),
    ],
    ids=["utf-8", "utf-8-bom", "gb18030"],
)
def test_a_csv_file_is_imported_in_its_detected_encoding_with_chinese_text_intact(
    world, tags, encoded, encoding
):
    job = run_import(world, encoded, "cases.csv")
    assert job.status == "succeeded", job.error
    assert (job.file_format, job.encoding, job.imported) == ("csv", encoding, 1)
    case = ErrorCase.objects.get()
    assert (case.user_input, case.bad_output, case.expected_output) == (
        "退款多久到账？",
        "马上到账",
        "3-5个工作日到账",
    )
    assert sorted(case.tags.values_list("name", flat=True)) == ["format", "hallucination"]
    assert case.severity == "high"
    page = world.client("PM").get(reverse("cases:import-detail", args=[job.pk])).content.decode()
    assert f"csv ({encoding})" in page


# --- atomic by default -----------------------------------------------------------------------------------------------


def test_an_atomic_import_with_invalid_lines_writes_nothing_and_lists_every_invalid_line(
    world, tags, artifacts
):
    rows = [json.dumps(flat(i)) for i in range(1, 1001)]
    rows[249] = '{"input": "question 250", "output": }'  # invalid JSON
    rows[499] = json.dumps(flat(500, severity=5))  # a wrong type
    rows[749] = json.dumps({"input": "question 750"})  # a missing required field
    job = run_import(world, jsonl(*rows))
    assert job.status == "failed"
    assert job.error.startswith("nothing imported: 3 invalid lines")
    assert ErrorCase.objects.count() == 0
    assert (job.lines_read, job.imported, job.invalid_lines) == (1000, 0, 3)
    assert problems_of(job) == [(250, "(line)"), (500, "severity"), (750, "output")]
    page = world.client("PM").get(reverse("cases:import-detail", args=[job.pk])).content.decode()
    assert 'data-status="failed"' in page and "nothing imported" in page
    for line, field in problems_of(job):
        assert f"<td>{line}</td><td><code>{field}</code></td>" in page
    assert stored_uploads(artifacts) == []


def test_the_problems_csv_can_be_downloaded(world, tags):
    job = run_import(world, jsonl(flat(1), flat(2, severity="urgent"), flat(3, tags=["nope"])))
    body = download(world.client("PM").get(reverse("cases:import-problems", args=[job.pk])))
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
    assert rows[0] == ["line", "field", "reason"]
    assert [(r[0], r[1]) for r in rows[1:]] == [("2", "severity"), ("3", "tags")]
    assert "unknown severity 'urgent'" in rows[1][2] and "unknown tag 'nope'" in rows[2][2]


# --- skip invalid lines and re-import the fixed rejects ------------------------------------------------------------


def test_skip_invalid_imports_the_valid_lines_and_the_fixed_rejects_import_again(world, tags):
    content = jsonl(flat(1), flat(2, tags=["halucination"]), flat(3), flat(4, tags=["halucination"]))
    job = run_import(world, content, skip_invalid=True)
    assert job.status == "succeeded"
    assert (job.imported, job.invalid_lines) == (2, 2)
    assert job.progress_message == "2 imported, 2 invalid lines skipped, 0 duplicates skipped"
    assert sorted(ErrorCase.objects.values_list("bad_output", flat=True)) == ["bad answer 1", "bad answer 3"]
    client = world.client("PM")
    response = client.get(reverse("cases:import-rejected", args=[job.pk]))
    assert f"import-{job.pk}-rejected.jsonl" in response["Content-Disposition"]
    rejected = download(response).decode()
    assert [json.loads(line)["input"] for line in rejected.splitlines()] == ["question 2", "question 4"]
    again = run_import(world, rejected.replace("halucination", "hallucination"), "fixed.jsonl")
    assert again.status == "succeeded" and again.imported == 2
    assert ErrorCase.objects.filter(tags__name="hallucination").count() == 2


def test_the_rejected_lines_of_a_csv_keep_the_header_so_they_import_again(world, tags):
    client = world.client("PM")
    content = "input,output,tags\nq1,b1,format\nq2,b2,formatt\nq3,b3\n"
    response = client.post(
        reverse("cases:import"), {"file": upload(content, "cases.csv"), "skip_invalid": "on"}
    )
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert (job.imported, job.invalid_lines, job.skip_invalid, job.dry_run) == (1, 2, True, False)
    assert problems_of(job) == [(3, "tags"), (4, "(line)")]  # an unknown tag; a ragged row
    page = client.get(response["Location"]).content.decode()
    assert '<dd id="imported">1</dd>' in page and '<dd id="invalid-lines">2</dd>' in page
    assert reverse("cases:import-problems", args=[job.pk]) in page
    assert reverse("cases:import-rejected", args=[job.pk]) in page
    response = client.get(reverse("cases:import-rejected", args=[job.pk]))
    assert f"import-{job.pk}-rejected.csv" in response["Content-Disposition"]
    rejected = download(response).decode()
    assert rejected.splitlines() == ["input,output,tags", "q2,b2,formatt", "q3,b3"]
    fixed = rejected.replace("formatt", "format").replace("q3,b3", "q3,b3,")
    again = run_import(world, fixed, "fixed.csv")
    assert again.status == "succeeded" and again.imported == 2
    assert ErrorCase.objects.count() == 3


def test_an_import_without_rejected_lines_offers_no_rejected_file(world, tags):
    job = run_import(world, jsonl(flat(1)))
    assert world.client("PM").get(reverse("cases:import-rejected", args=[job.pk])).status_code == 404


def test_duplicates_in_the_file_and_of_existing_cases_are_skipped_and_counted(world, tags):
    run_import(world, jsonl(flat(1)))
    job = run_import(world, jsonl(flat(1), flat(2), flat(2), flat(3)))
    assert job.status == "succeeded"
    assert (job.imported, job.duplicates) == (2, 2)
    assert ErrorCase.objects.count() == 3


# --- dry run --------------------------------------------------------------------------------------------------------


def test_a_dry_run_shows_the_scrubbed_preview_and_writes_nothing(world, tags, artifacts):
    client = world.client("PM")
    content = jsonl(flat("mail li.lei@example.com", expected="fixed"), flat(2, severity="critical"))
    response = client.post(
        reverse("cases:import"), {"file": upload(content), "dry_run": "on", "scrub_pii": "on"}
    )
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert response["Location"] == reverse("cases:import-detail", args=[job.pk])
    assert job.dry_run and job.status == "succeeded"
    assert job.progress_message.startswith("dry run: 2 would be imported")
    assert ErrorCase.objects.count() == 0 and job.imported == 0
    assert [row["messages"][-1]["content"] for row in job.preview] == ["question mail [EMAIL]", "question 2"]
    page = client.get(response["Location"]).content.decode()
    assert "dry run</strong> — nothing was written" in page
    assert "question mail [EMAIL]" in page and "li.lei@example.com" not in page
    assert "The first rows as they will be stored" in page
    assert stored_uploads(artifacts) == []


# --- each kind of bad input ------------------------------------------------------------------------------------------

BAD_INPUTS = {
    "invalid JSON": ('{"input": "q", "output": }', "cases.jsonl", "(line)", "invalid JSON"),
    "a wrong type": (json.dumps(flat("x", input=["a list"])), "cases.jsonl", "input", "must be a string, got a list"),
    "a missing required field": (json.dumps({"input": "q"}), "cases.jsonl", "output", "output (the bad answer) is missing"),
    "an unknown tag": (json.dumps(flat("x", tags=["weird"])), "cases.jsonl", "tags", "unknown tag 'weird'"),
    "invalid UTF-8": ('{"input": "caf\udce9", "output": "x"}', "cases.jsonl", "(line)", "invalid UTF-8 at byte 15"),
    "a ragged CSV row": ("q,b,extra cell", "cases.csv", "(line)", "row has 3 cells; the header has 2"),
}  # fmt: skip


@pytest.mark.parametrize(("bad", "name", "field", "reason"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_a_bad_line_is_reported_by_line_field_and_reason_and_the_others_import(
    world, tags, bad, name, field, reason
):
    if name.endswith(".csv"):
        content = f"input,output\nfirst,one\n{bad}\nlast,two\n"
    else:
        content = f'{{"input": "first", "output": "one"}}\n{bad}\n{{"input": "last", "output": "two"}}\n'
    job = run_import(world, content.encode("utf-8", "surrogateescape"), name, skip_invalid=True)
    assert job.status == "succeeded", job.error
    line = 3 if name.endswith(".csv") else 2
    assert problems_of(job) == [(line, field)]
    assert reason in job.problems[0]["reason"]
    assert sorted(ErrorCase.objects.values_list("bad_output", flat=True)) == ["one", "two"]


def test_an_empty_file_is_refused_with_a_clear_message_and_nothing_is_written(world, tags, artifacts):
    with pytest.raises(ValidationError, match="the file is empty"):
        run_import(world, b"")
    page = world.client("PM").post(reverse("cases:import"), {"file": upload(b"")})
    assert page.status_code == 400 and "The submitted file is empty." in page.content.decode()
    api = world.api("PM").post(reverse("api-case-imports"), {"file": upload(b"")}, format="multipart")
    assert api.status_code == 400 and "empty" in str(api.json()["error"]["fields"]["file"])
    assert not ImportJob.objects.exists() and not ErrorCase.objects.exists()
    assert stored_uploads(artifacts) == []


def test_a_file_with_only_blank_lines_fails_saying_so(world, tags):
    job = run_import(world, "\n\n  \n")
    assert job.status == "failed" and job.problems == [
        {"line": 0, "field": "(file)", "reason": "the file has no cases, only blank lines"}
    ]


def test_a_file_over_the_size_limit_is_refused_naming_the_size_and_the_limit(
    world, tags, settings, artifacts
):
    settings.UPLOAD_MAX_BYTES = 1000
    content = jsonl(*(flat(i) for i in range(100)))
    assert len(content) > 1000
    with pytest.raises(ValidationError, match=r"the file is 5(\.\d)? KB; the limit is 1000 bytes"):
        run_import(world, content)
    page = world.client("PM").post(reverse("cases:import"), {"file": upload(content)})
    assert page.status_code == 400 and "the limit is 1000 bytes" in page.content.decode()
    api = world.api("PM").post(reverse("api-case-imports"), {"file": upload(content)}, format="multipart")
    assert api.status_code == 400 and "the limit is 1000 bytes" in str(api.json()["error"]["fields"]["file"])
    assert not ImportJob.objects.exists() and not ErrorCase.objects.exists()
    assert stored_uploads(artifacts) == []


def test_an_upload_whose_content_length_exceeds_the_limit_is_413(world, tags, settings, artifacts):
    settings.UPLOAD_MAX_BYTES = 1000
    content = jsonl(*(flat(i) for i in range(3000)))
    assert len(content) > 1000 + 64 * 1024
    page = world.client("PM").post(reverse("cases:import"), {"file": upload(content)})
    assert page.status_code == 413
    assert "the limit is 1000 bytes" in page.content.decode()
    api = world.api("PM").post(reverse("api-case-imports"), {"file": upload(content)}, format="multipart")
    assert api.status_code == 413
    error = api.json()["error"]
    assert error["code"] == "too_large" and "the limit is 1000" in error["message"]
    assert not ImportJob.objects.exists() and not ErrorCase.objects.exists()
    assert stored_uploads(artifacts) == []


def test_a_line_over_the_maximum_line_size_is_reported_and_the_others_import(world, tags, settings):
    settings.IMPORT_MAX_LINE_BYTES = 300
    content = jsonl(flat(1), flat("x" * 1000), flat(3))
    job = run_import(world, content, skip_invalid=True)
    assert job.status == "succeeded"
    assert problems_of(job) == [(2, "(line)")]
    assert "the limit is 300 bytes" in job.problems[0]["reason"]
    assert sorted(ErrorCase.objects.values_list("bad_output", flat=True)) == ["bad answer 1", "bad answer 3"]


def test_a_crash_in_the_middle_of_an_import_leaves_no_rows(world, tags, monkeypatch, artifacts):
    written = []
    original = CaseWriter._copy

    def copy_then_crash(self, rows):
        original(self, rows)  # the rows reach the table inside the import's transaction ...
        written.append(len(rows))
        raise OSError("disk gone")  # ... and then the import dies

    monkeypatch.setattr(CaseWriter, "_copy", copy_then_crash)
    job = run_import(world, jsonl(*(flat(i) for i in range(1000))))
    assert written == [1000]
    assert job.status == "failed" and "OSError: disk gone" in job.error
    assert ErrorCase.objects.count() == 0
    assert stored_uploads(artifacts) == []


# --- the API and big files -------------------------------------------------------------------------------------------


def test_the_api_imports_a_small_file_inline_with_201(world, tags):
    response = world.api("Data Scientist").post(
        reverse("api-case-imports"),
        {"file": upload(jsonl(flat(1), flat(2))), "skip_invalid": "true"},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    assert (data["status"], data["imported"], data["skip_invalid"], data["scrub_pii"]) == (
        "succeeded",
        2,
        True,
        True,
    )
    assert world.api("PM").get(reverse("api-case-import", args=[data["id"]])).json()["imported"] == 2
    assert ErrorCase.objects.count() == 2


def test_an_architect_cannot_import(world, tags):
    response = world.api("Architect").post(reverse("api-case-imports"), {"file": upload(jsonl(flat(1)))})
    assert response.status_code == 403
    assert world.client("Architect").get(reverse("cases:import")).status_code == 403


def test_a_large_import_is_queued_for_a_cpu_worker(world, tags, settings):
    settings.IMPORT_INLINE_MAX_BYTES = 10
    response = world.api("PM").post(reverse("api-case-imports"), {"file": upload(jsonl(flat(1), flat(2)))})
    assert response.status_code == 202
    job = ImportJob.objects.get(pk=response.json()["id"])
    assert job.status == "queued" and job.celery_task_id and Path(job.path).is_file()
    assert ErrorCase.objects.count() == 0
    page = world.client("PM").get(reverse("cases:import-detail", args=[job.pk])).content.decode()
    assert "waiting for a worker" in page and 'hx-trigger="every 1s"' in page


@pytest.mark.worker
def test_a_queued_import_runs_to_success_on_a_real_worker(world, tags, settings, start_worker, artifacts):
    settings.IMPORT_INLINE_MAX_BYTES = 10
    start_worker(queues="cpu", ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT))
    job = run_import(world, jsonl(*(flat(i, tags=["format"]) for i in range(500))))
    assert job.status == "queued"

    def finished():
        job.refresh_from_db()
        return job.is_terminal

    wait_until(finished, timeout=60, what="the import to finish on the worker")
    assert job.status == "succeeded", job.error
    assert (job.progress, job.imported, job.lines_read) == (1.0, 500, 500)
    assert job.worker_hostname.startswith("test-")
    assert ErrorCase.objects.filter(import_job=job, tags__name="format").count() == 500
    assert stored_uploads(artifacts) == []


def test_every_imported_case_starts_its_history_with_the_line_and_import_it_came_from(world, tags):
    job = run_import(world, jsonl(flat(1), flat(2)))
    events = {
        case.user_input: list(case.events.values_list("kind", "actor__username", "note"))
        for case in ErrorCase.objects.filter(import_job=job)
    }
    assert len(events) == 2
    assert sorted(e[0] for e in events.values()) == [
        ("created", "pm", f"source: import, line 1 of import #{job.pk}"),
        ("created", "pm", f"source: import, line 2 of import #{job.pk}"),
    ]


def test_a_long_rejected_line_is_offered_whole_so_it_can_be_fixed_and_imported_again(world, tags):
    long_input = "x" * 5000
    job = run_import(world, jsonl(flat(1), flat(2, input=long_input, severity="urgent")), skip_invalid=True)
    rejected = download(world.client("PM").get(reverse("cases:import-rejected", args=[job.pk]))).decode()
    assert json.loads(rejected)["input"] == long_input
