"""The OpenAI-compatible fine-tuning API as a data scientist's script meets it: the official openai client uploads a
chat file, fine-tunes the tiny model on real workers, reads the events, checkpoints and the new model; every mistake
is answered in OpenAI's error shape, naming the parameter or the line."""

import json

import openai
import pytest

from datasets_app.models import Dataset, DatasetVersion, SourceFile
from tests.conftest import wait_until
from tests.training_app.conftest import ready_version
from training_app.models import FineTuneJob, MetricPoint

SMALL = {
    "lora_r": 4,
    "max_seq_len": 128,
}  # engine settings beyond OpenAI's three, through portal_hyperparameters


def chat_lines(n: int) -> list[dict]:
    return [{"messages": [{"role": "system", "content": "You answer shop questions."},
                          {"role": "user", "content": f"Question {i}: how does refund policy {i * 7919} work?"},
                          {"role": "assistant", "content": f"Policy {i * 7919}: see section {i} of the terms."}]}
            for i in range(n)]  # fmt: skip


def jsonl(rows: list) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


@pytest.fixture
def closing_connections(monkeypatch):
    """The live server answers each request on a new thread: close its connection after the request, so the
    test database can be dropped at the end of the session."""
    from django.db import connections

    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"]), body
    return body["error"]


@pytest.mark.worker
def test_the_openai_client_uploads_a_file_fine_tunes_the_tiny_model_and_finds_the_new_model(
    world, base, live_server, closing_connections, start_worker, settings, tmp_path
):
    start_worker(queues="cpu,gpu", ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT))
    client = openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key=world.tokens["Data Scientist"], max_retries=0
    )
    path = tmp_path / "shop.jsonl"
    path.write_bytes(jsonl(chat_lines(16)))

    uploaded = client.files.create(file=path.open("rb"), purpose="fine-tune")
    assert uploaded.id.startswith("file-") and uploaded.filename == "shop.jsonl"
    assert uploaded.bytes == path.stat().st_size and uploaded.status in ("uploaded", "processed")
    wait_until(lambda: client.files.retrieve(uploaded.id).status == "processed", timeout=60, interval=0.2,
               what="the file to be processed")  # fmt: skip
    assert uploaded.id in [f.id for f in client.files.list()]

    job = client.fine_tuning.jobs.create(
        model="tiny", training_file=uploaded.id, seed=7,
        method={"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 2}}},
        extra_body={"portal_hyperparameters": {**SMALL, "checkpoint_every": 1}},
    )  # fmt: skip
    assert job.id.startswith("ftjob-") and job.status == "queued" and job.model == "tiny:v1" and job.seed == 7
    assert job.hyperparameters.learning_rate_multiplier == 2 and job.hyperparameters.n_epochs == 1

    def finished():
        current = client.fine_tuning.jobs.retrieve(job.id)
        return current if current.status in ("succeeded", "failed", "cancelled") else None

    done = wait_until(finished, timeout=240, interval=0.5, what="the fine-tune to finish")
    assert done.status == "succeeded", done.error
    assert (
        done.fine_tuned_model == "tiny:v2" and done.trained_tokens > 0 and done.finished_at >= done.created_at
    )
    assert done.training_file == uploaded.id and done.error is None

    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    steps = [e for e in events if e.type == "metrics"]
    assert [e.data["step"] for e in steps] == [4, 3, 2, 1]  # 16 rows / batch 4, newest first
    assert all(e.data["train_loss"] > 0 and "training loss" in e.message for e in steps)
    assert (
        events[0].message.startswith("The job has successfully completed") and "tiny:v2" in events[0].message
    )
    assert events[-1].message == f"Created fine-tuning job: {job.id}"
    first_two = client.fine_tuning.jobs.list_events(job.id, limit=2)
    rest = client.fine_tuning.jobs.list_events(job.id, limit=100, after=first_two.data[-1].id)
    assert first_two.has_more and [e.id for e in first_two.data + rest.data] == [e.id for e in events]

    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [3, 2]  # every step but the last, the newest 2 kept
    assert checkpoints[0].fine_tuning_job_id == job.id and checkpoints[0].id == f"ftckpt-{job.id[6:]}-3"
    assert checkpoints[0].metrics.train_loss == steps[1].data["train_loss"]

    assert "tiny:v2" in [m.id for m in client.models.list()]
    assert client.models.retrieve("tiny:v2").owned_by == "scientist"
    assert [j.id for j in client.fine_tuning.jobs.list(limit=1)] == [job.id]

    with pytest.raises(openai.BadRequestError) as finished_already:
        client.fine_tuning.jobs.cancel(job.id)
    assert (
        finished_already.value.code == "job_not_cancellable" and "succeeded" in finished_already.value.message
    )
    bad_key = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="llmops_not-a-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        bad_key.models.list()
    assert refused.value.code == "invalid_api_key"


def test_a_missing_or_bad_key_is_a_401_in_openai_shape(world):
    anonymous = world.api(None).get("/v1/fine_tuning/jobs")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("Bearer")
    assert error_of(anonymous)["code"] == "not_authenticated"
    client = world.api(None)
    client.credentials(HTTP_AUTHORIZATION="Bearer llmops_wrong")
    wrong = client.get("/v1/models")
    assert wrong.status_code == 401 and error_of(wrong)["code"] == "invalid_api_key"
    assert error_of(wrong)["type"] == "invalid_request_error"


def test_a_pm_reads_jobs_but_may_neither_upload_nor_fine_tune(world):
    pm = world.api("PM")
    upload = pm.post("/v1/files", {"purpose": "fine-tune", "file": _file(chat_lines(2))}, format="multipart")
    assert upload.status_code == 403 and error_of(upload)["code"] == "permission_denied"
    create = pm.post("/v1/fine_tuning/jobs", {"model": "tiny", "training_file": "file-1"}, format="json")
    assert create.status_code == 403 and "roles" in error_of(create)["message"]
    assert pm.get("/v1/fine_tuning/jobs").status_code == 200
    assert not Dataset.objects.exists() and not FineTuneJob.objects.exists()


def test_bad_lines_are_refused_each_named_by_its_line_and_nothing_is_kept(world):
    rows = [*chat_lines(2), '{"messages": [', {"messages": [{"role": "user", "content": "no answer"}]}]
    response = world.api("Data Scientist").post(
        "/v1/files", {"purpose": "fine-tune", "file": _file(rows)}, format="multipart"
    )
    error = error_of(response)
    assert response.status_code == 400 and error["param"] == "file" and error["code"] == "invalid_file"
    assert "line 3" in error["message"] and "line 4" in error["message"] and "assistant" in error["message"]
    assert [p["message"].split(": ")[1] for p in error["problems"]] == ["line 3", "line 4"]
    assert not Dataset.objects.exists() and not SourceFile.objects.exists()
    wrong_purpose = world.api("Data Scientist").post(
        "/v1/files", {"purpose": "batch", "file": _file(chat_lines(2))}, format="multipart"
    )
    assert wrong_purpose.status_code == 400 and error_of(wrong_purpose)["param"] == "purpose"


def _file(rows: list):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("train.jsonl", jsonl(rows), content_type="application/jsonl")


def test_invalid_hyperparameters_are_all_listed_with_their_parameter(world, scientist, base):
    version = ready_version(scientist)
    body = {"model": "tiny", "training_file": f"file-{version.pk}", "suffix": "x" * 65,
            "hyperparameters": {"n_epochs": 0, "batch_size": "big", "learning_rate_multiplier": -1},
            "portal_hyperparameters": {"lora_r": 0, "output_dir": "/etc"}}  # fmt: skip
    response = world.api("Data Scientist").post("/v1/fine_tuning/jobs", body, format="json")
    error = error_of(response)
    assert response.status_code == 400 and error["type"] == "invalid_request_error"
    params = {p["param"] for p in error["problems"]}
    assert {"hyperparameters.n_epochs", "hyperparameters.batch_size", "hyperparameters.learning_rate_multiplier",
            "portal_hyperparameters.lora_r", "portal_hyperparameters.output_dir", "suffix"} <= params  # fmt: skip
    assert error["param"] == error["problems"][0]["param"] and "n_epochs" in error["message"]
    unknown = world.api("Data Scientist").post(
        "/v1/fine_tuning/jobs",
        {**body, "model": "gpt-4o", "hyperparameters": {}, "suffix": None},
        format="json",
    )
    assert error_of(unknown)["param"] == "model" and "gpt-4o" in error_of(unknown)["message"]
    assert not FineTuneJob.objects.exists()


def test_a_missing_or_unprocessed_file_is_refused_naming_training_file(world, scientist, base):
    api = world.api("Data Scientist")
    missing = api.get("/v1/files/file-999999")
    assert missing.status_code == 404 and error_of(missing)["message"] == "No such file: file-999999"
    version = ready_version(scientist)
    building = DatasetVersion.objects.create(dataset=version.dataset, number=9, recipe={}, status="building")
    assert api.get(f"/v1/files/file-{building.pk}").json()["status"] == "uploaded"
    failed = DatasetVersion.objects.create(dataset=version.dataset, number=10, recipe={}, status="failed",
                                           error="shop.jsonl: the file has no rows")  # fmt: skip
    shown = api.get(f"/v1/files/file-{failed.pk}").json()
    assert shown["status"] == "error" and shown["status_details"] == "shop.jsonl: the file has no rows"
    for file_id, reason in (
        (f"file-{building.pk}", "not processed yet"),
        ("file-999999", "no such file"),
        (f"file-{failed.pk}", "could not be processed: shop.jsonl: the file has no rows"),
    ):
        response = api.post(
            "/v1/fine_tuning/jobs", {"model": "tiny", "training_file": file_id}, format="json"
        )
        assert response.status_code == 400 and error_of(response)["param"] == "training_file"
        assert reason in error_of(response)["message"]
    assert api.get("/v1/fine_tuning/jobs/ftjob-999999").status_code == 404
    assert not FineTuneJob.objects.exists()


def test_a_queued_job_is_cancelled_and_a_finished_one_cannot_be(world, scientist, base):
    version = ready_version(scientist)
    api = world.api("Data Scientist")
    created = api.post("/v1/fine_tuning/jobs", {"model": "tiny:v1", "training_file": f"file-{version.pk}"},
                       format="json").json()  # fmt: skip
    assert created["status"] == "queued" and created["hyperparameters"]["learning_rate_multiplier"] == 1
    cancelled = api.post(f"/v1/fine_tuning/jobs/{created['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = api.post(f"/v1/fine_tuning/jobs/{created['id']}/cancel")
    assert again.status_code == 400 and error_of(again)["code"] == "job_not_cancellable"
    assert again["x-should-retry"] == "false"


def test_events_page_newest_first_with_after_and_has_more(world, scientist, base):
    version = ready_version(scientist, cases=12)
    job = FineTuneJob.objects.create(base=base, dataset_version=version, method="lora", config={"epochs": 1})
    # step 2 logged twice, as by a run resumed from its step-1 checkpoint
    MetricPoint.objects.bulk_create(
        MetricPoint(job=job, step=s, name="train_loss", value=v)
        for s, v in ((1, 1), (2, 0.5), (2, 0.4), (3, 0.25))
    )
    api = world.api("Architect")
    page = api.get(f"/v1/fine_tuning/jobs/ftjob-{job.pk}/events", {"limit": 2}).json()
    assert [e["message"] for e in page["data"]] == [
        "Step 3: training loss=0.2500",
        "Step 2: training loss=0.4000",
    ]
    assert page["has_more"]
    rest = api.get(f"/v1/fine_tuning/jobs/ftjob-{job.pk}/events", {"after": page["last_id"]}).json()
    assert [e["message"] for e in rest["data"]] == [
        "Step 2: training loss=0.5000",
        "Step 1: training loss=1.0000",
        f"Created fine-tuning job: ftjob-{job.pk}",
    ]
    assert not rest["has_more"] and len({e["id"] for e in page["data"] + rest["data"]}) == 5
    bad = api.get(f"/v1/fine_tuning/jobs/ftjob-{job.pk}/events", {"limit": 0})
    assert bad.status_code == 400 and error_of(bad)["param"] == "limit"
    stranger = api.get(f"/v1/fine_tuning/jobs/ftjob-{job.pk}/events", {"after": "ftevent-999-step-1-1"})
    assert stranger.status_code == 400 and error_of(stranger)["param"] == "after"
