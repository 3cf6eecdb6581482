"""The dataset API: datasets, uploads, versions (a recipe in, 202 and a queued build out), a version's card, and
its rows as keyset pages or one streamed JSONL."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datasets_app.models import Dataset, DatasetBuild, DatasetVersion, SourceFile
from llmops.jobs import JobStatus
from tests.datasets_app.test_views_datasets import CARD, STEPS, make_dataset, make_version, row

LINES = "".join(json.dumps({"text": f"refund {i}", "label": "refund"}) + "\n" for i in range(10))


@pytest.fixture(autouse=True)
def artifacts(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.ARTIFACT_ROOT.mkdir()


def test_data_scientists_create_datasets_and_everyone_lists_them(world):
    body = {"name": "intents", "task_type": "classification", "product": "shop"}
    refused = world.api("PM").post("/api/v1/datasets", body, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    created = world.api("Data Scientist").post("/api/v1/datasets", body, format="json")
    assert created.status_code == 201 and created.json()["created_by"] == "scientist"
    duplicate = world.api("Admin").post("/api/v1/datasets", {**body, "name": "INTENTS"}, format="json")
    assert duplicate.status_code == 400 and "name" in duplicate.json()["error"]["fields"]
    bad = world.api("Admin").post("/api/v1/datasets", {"name": "x", "task_type": "poetry"}, format="json")
    assert bad.status_code == 400 and "task_type" in bad.json()["error"]["fields"]

    dataset = Dataset.objects.get()
    make_version(dataset, [row("train", "a"), row("test", "b")])
    listed = world.api("Architect").get("/api/v1/datasets").json()["results"]
    assert [d["name"] for d in listed] == ["intents"]
    assert listed[0]["latest_version"]["number"] == 1 and listed[0]["latest_version"]["counts"]["test"] == 1
    detail = world.api("PM").get(f"/api/v1/datasets/{dataset.pk}").json()
    assert [v["number"] for v in detail["versions"]] == [1] and detail["files"] == []


def test_files_are_uploaded_as_multipart_and_a_bad_file_is_named(world):
    dataset = make_dataset()
    url = f"/api/v1/datasets/{dataset.pk}/files"
    upload = SimpleUploadedFile("refunds.jsonl", LINES.encode())
    assert world.api("PM").post(url, {"file": upload}, format="multipart").status_code == 403
    upload.seek(0)
    stored = world.api("Data Scientist").post(url, {"file": upload}, format="multipart")
    assert stored.status_code == 201 and stored.json()["name"] == "refunds.jsonl"
    assert stored.json()["size_bytes"] == len(LINES.encode()) and "path" not in stored.json()
    bad = world.api("Data Scientist").post(
        url, {"file": SimpleUploadedFile("x.jsonl", b'{"text": "no label"}\n')}, format="multipart"
    )
    assert bad.status_code == 400 and "x.jsonl" in bad.json()["error"]["fields"]["file"][0]
    assert SourceFile.objects.count() == 1


def test_posting_a_recipe_queues_a_build_or_names_every_problem(world):
    dataset = make_dataset()
    source = SourceFile.objects.create(dataset=dataset, name="a.jsonl", path="/nowhere", file_format="jsonl",
                                       sha256="0" * 64, size_bytes=1)  # fmt: skip
    url = f"/api/v1/datasets/{dataset.pk}/versions"
    recipe = {
        "sources": {"files": [source.pk]},
        "steps": {"split": {"train": 0.5, "validation": 0.1, "test": 0.1}},
    }
    assert world.api("PM").post(url, recipe, format="json").status_code == 403
    refused = world.api("Data Scientist").post(url, recipe, format="json")
    fields = refused.json()["error"]["fields"]
    assert refused.status_code == 400 and fields["steps.split.train"] == ["ratios must sum to 1 (got 0.7)"]
    unknown = world.api("Data Scientist").post(
        url, {"sources": {"files": [999]}, "colour": "red"}, format="json"
    )
    assert set(unknown.json()["error"]["fields"]) == {"recipe"}  # unknown keys are named before references
    assert not DatasetVersion.objects.exists()

    recipe["steps"]["split"]["train"] = 0.8
    recipe["steps"]["augment"] = {"backtranslation": {"api_key": "sk-secret"}}
    accepted = world.api("Data Scientist").post(url, recipe, format="json")
    body = accepted.json()
    assert accepted.status_code == 202 and body["status"] == "building" and body["number"] == 1
    build = DatasetBuild.objects.get(version_id=body["id"])
    assert body["build"]["id"] == build.pk and build.status == JobStatus.QUEUED
    assert body["recipe"]["steps"]["augment"]["backtranslation"]["api_key"] == "***"
    listed = world.api("PM").get(url).json()["results"]
    assert [v["id"] for v in listed] == [body["id"]]


def test_a_version_shows_its_card_and_exports_without_server_paths(world):
    version = make_version(make_dataset(), [row("train", "a")], steps=STEPS, card=CARD, content_sha256="c" * 64,
                           leakage={"exact": 0, "near": 0, "examples": []},
                           exports={"jsonl": {"path": "/srv/x", "sha256": "d" * 64, "bytes": 3,
                                              "files": {"train.jsonl": {"sha256": "e" * 64, "bytes": 3}}}})  # fmt: skip
    body = world.api("Architect").get(f"/api/v1/dataset-versions/{version.pk}").json()
    assert body["status"] == "ready" and body["content_sha256"] == "c" * 64
    assert body["steps"][1]["dropped"] == {"too_short": 2} and body["leakage"]["exact"] == 0
    assert body["card"]["cases"] == 1 and body["counts"] == {"train": 1, "validation": 0, "test": 0}
    assert body["exports"] == {"jsonl": {"sha256": "d" * 64, "bytes": 3,
                                         "files": {"train.jsonl": {"sha256": "e" * 64, "bytes": 3}}}}  # fmt: skip
    assert world.api("PM").get("/api/v1/dataset-versions/999999").status_code == 404


def test_rows_come_in_keyset_pages_and_as_one_jsonl_stream(world):
    rows = [row("train", f"train {i}", ref={"file": "a.jsonl", "line": i}) for i in range(5)]
    rows += [row("test", "test 0"), row("validation", "validation 0")]
    version = make_version(make_dataset(), rows)
    api = world.api("PM")
    url = f"/api/v1/dataset-versions/{version.pk}/rows"
    first = api.get(url, {"split": "train", "limit": 2}).json()
    assert [r["fields"]["text"] for r in first["results"]] == ["train 0", "train 1"]
    assert first["results"][0]["ref"] == {"file": "a.jsonl", "line": 0}
    seen, after = [], None
    while True:
        page = api.get(
            url, {"split": "train", "limit": 2, **({"after": after} if after is not None else {})}
        ).json()
        seen += [r["fields"]["text"] for r in page["results"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == [f"train {i}" for i in range(5)]
    assert len(api.get(url).json()["results"]) == 7
    mixed = api.get(url, {"limit": 6}).json()  # every split, in position order
    assert [r["position"] for r in mixed["results"]] == list(range(6)) and mixed["next_after"] == 5
    assert [r["split"] for r in api.get(url, {"after": 4}).json()["results"]] == ["test", "validation"]
    bad = api.get(url, {"split": "everything", "limit": 0})
    assert bad.status_code == 400 and {"split", "limit"} <= set(bad.json()["error"]["fields"])

    streamed = api.get(f"{url}.jsonl", {"split": "train"})
    assert streamed.status_code == 200 and streamed.streaming
    assert streamed["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in b"".join(streamed.streaming_content).decode().splitlines()]
    assert [line["fields"]["text"] for line in lines] == [f"train {i}" for i in range(5)]
    everything = b"".join(api.get(f"{url}.jsonl").streaming_content).decode().splitlines()
    assert len(everything) == 7
    assert api.get(f"{url}.jsonl", {"split": "nope"}).status_code == 400
