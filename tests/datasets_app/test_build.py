"""Building dataset versions as a data scientist meets it: approved cases and files in, an immutable version out —
the same recipe twice gives the same hash, nothing leaks between splits, a bad recipe or an empty result fails
with the counts, edits during a build do not tear the snapshot, and the exports open in Hugging Face datasets."""

import json
import random
import threading
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, connections

from datasets_app.dedup import fingerprint
from datasets_app.models import (
    DatasetBuild,
    DatasetExample,
    DatasetVersion,
    ErrorCase,
    Tag,
    VersionStatus,
)
from datasets_app.models.cases import CaseStatus
from datasets_app.services import build as build_service
from datasets_app.services.build import build_run
from datasets_app.services.datasets import dataset_create, source_file_add, version_create
from tests.conftest import wait_until

TOPICS = [
    "退货",
    "refund",
    "shipping",
    "发票",
    "warranty",
    "password",
    "discount",
    "配送",
    "invoice",
    "account",
]


@pytest.fixture(autouse=True)
def artifacts(settings, tmp_path) -> Path:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.JOB_HEARTBEAT_SECONDS = 600
    return settings.ARTIFACT_ROOT


def approved_case(i: int, *, tag: str = "terminology", product: str = "shop", expected: str | None = None):
    topic = TOPICS[i % len(TOPICS)]
    messages = [{"role": "user", "content": f"Question {i} about {topic}: how does policy {i * 7919} work?"}]
    bad = f"Wrong answer {i} about {topic}."
    case = ErrorCase.objects.create(
        messages=messages, bad_output=bad, product=product, status=CaseStatus.APPROVED,
        expected_output=expected if expected is not None else f"Policy {i * 7919} on {topic}: see section {i}.",
        fingerprint=fingerprint(messages, bad),
    )  # fmt: skip
    case.tags.add(Tag.objects.get_or_create(name=tag, defaults={"label": tag})[0])
    return case


def recipe(**steps) -> dict:
    return {"sources": {"cases": {"tags": [], "products": [], "date_from": "", "date_to": ""}, "files": [],
                        "parent_version": None, "replay": None},
            "steps": steps}  # fmt: skip


def build_inline(version: DatasetVersion) -> DatasetVersion:
    job = version.build
    outcome = build_run(job_id=job.pk, task_id=job.celery_task_id, hostname="test")
    version.refresh_from_db()
    assert outcome.status in ("succeeded", "failed"), outcome
    return version


@pytest.fixture
def dataset(world):
    return dataset_create(user=world.users["Data Scientist"], name="support answers", task_type="chat")


def new_version(world, dataset, body: dict) -> DatasetVersion:
    return version_create(user=world.users["Data Scientist"], dataset=dataset, recipe=body)


def test_a_version_built_from_approved_cases_is_ready_with_an_80_10_10_split_and_lineage(world, dataset):
    cases = [approved_case(i) for i in range(60)]
    ErrorCase.objects.filter(pk=cases[0].pk).update(status=CaseStatus.CORRECTED)  # not approved: left out
    version = build_inline(new_version(world, dataset, recipe()))
    assert version.status == VersionStatus.READY, version.error
    counts = version.counts
    assert sum(counts.values()) == 59 and counts["train"] > counts["validation"] > 0 and counts["test"] > 0
    assert counts["train"] == pytest.approx(59 * 0.8, abs=3)
    rows = DatasetExample.objects.filter(version=version)
    assert set(rows.values_list("case_id", flat=True)) == {c.pk for c in cases[1:]}
    first = rows.get(case_id=cases[1].pk)
    assert first.fields["messages"][-1] == {"role": "assistant", "content": cases[1].expected_output}
    assert first.ref == {"case": cases[1].pk} and first.tokens > 0
    assert len(version.content_sha256) == 64
    assert version.leakage["exact"] == 0 and version.leakage["near"] == 0
    assert [s["name"] for s in version.steps][:2] == ["normalise", "filter"]
    assert version.build.status == "succeeded" and version.build.log


def test_the_same_recipe_over_the_same_cases_gives_the_same_content_hash(world, dataset):
    for i in range(40):
        approved_case(i)
    first = build_inline(new_version(world, dataset, recipe()))
    second = build_inline(new_version(world, dataset, recipe()))
    assert (first.number, second.number) == (1, 2)
    assert first.content_sha256 == second.content_sha256
    assert first.exports["jsonl"]["sha256"] == second.exports["jsonl"]["sha256"]
    other_seed = build_inline(new_version(world, dataset, recipe(split={"seed": 7})))
    assert other_seed.content_sha256 != first.content_sha256


def test_a_recipe_that_leaves_no_rows_fails_the_build_with_the_counts_of_each_step(world, dataset):
    for i in range(5):
        approved_case(i)
    version = build_inline(
        new_version(world, dataset, recipe(filter={"min_tokens": 100000, "max_tokens": 200000}))
    )
    assert version.status == VersionStatus.FAILED
    assert "no rows left" in version.error and "filter" in version.error
    assert not DatasetExample.objects.filter(version=version).exists()
    assert version.build.status == "failed"
    assert any(line["step"] == "failed" for line in version.build.log)


def test_split_ratios_that_do_not_sum_to_one_are_refused_naming_the_field(world, dataset):
    with pytest.raises(ValidationError) as refused:
        new_version(world, dataset, recipe(split={"train": 0.8, "validation": 0.1, "test": 0.05}))
    assert any(key.startswith("steps.split") for key in refused.value.message_dict)
    assert not DatasetVersion.objects.exists()


def test_a_split_too_small_for_the_cases_is_refused_before_building(world, dataset):
    for i in range(4):
        approved_case(i)
    with pytest.raises(ValidationError) as refused:
        new_version(world, dataset, recipe())  # 10% of 4 rows is under half a row
    message = " ".join(refused.value.message_dict["steps.split"])
    assert "4 source rows are too few" in message and "validation" in message and "test" in message
    with pytest.raises(ValidationError) as refused:
        new_version(
            world, dataset, {**recipe(), "sources": {**recipe()["sources"], "cases": {"tags": ["none"]}}}
        )
    assert "no approved case" in " ".join(refused.value.message_dict["steps.split"])
    assert not DatasetVersion.objects.exists()


def test_a_tokenizer_outside_the_model_folders_or_an_empty_pinned_test_is_refused(world, dataset, tmp_path):
    for i in range(20):
        approved_case(i)
    with pytest.raises(ValidationError) as refused:
        new_version(world, dataset, recipe(filter={"tokenizer": "/etc"}))
    assert "must lie under" in refused.value.message_dict["steps.filter.tokenizer"][0]
    no_test = build_inline(
        new_version(world, dataset, recipe(split={"train": 0.9, "validation": 0.1, "test": 0}))
    )
    assert no_test.status == VersionStatus.READY, no_test.error
    with pytest.raises(ValidationError) as refused:
        new_version(world, dataset, recipe(split={"pinned_test_version": no_test.pk}))
    assert "no test rows" in refused.value.message_dict["steps.split.pinned_test_version"][0]


def test_general_data_is_replayed_at_the_chosen_ratio_into_train_only(world, dataset):
    general = dataset_create(
        user=world.users["Data Scientist"], name="general chat", task_type="chat", is_general=True
    )
    rng = random.Random(9)
    syllables = [a + b for a in "bcdfghjklmnp" for b in "aeiou"]
    lines = [{"messages": [{"role": "user", "content": " ".join(rng.sample(syllables, 14)) + "?"},
                           {"role": "assistant", "content": " ".join(rng.sample(syllables, 12)) + "."}]}
             for _ in range(40)]  # fmt: skip
    source = source_file_add(user=world.users["Data Scientist"], dataset=general, upload=SimpleUploadedFile(
        "general.jsonl", "\n".join(json.dumps(line) for line in lines).encode()))  # fmt: skip
    general_body = recipe()
    general_body["sources"] = {**general_body["sources"], "cases": None, "files": [source.pk]}
    general_v1 = build_inline(new_version(world, general, general_body))
    assert general_v1.status == VersionStatus.READY, general_v1.error
    for i in range(40):
        approved_case(i)
    body = recipe()
    body["sources"]["replay"] = {"version": general_v1.pk, "ratio": 0.25}
    version = build_inline(new_version(world, dataset, body))
    assert version.status == VersionStatus.READY, version.error
    replayed = DatasetExample.objects.filter(version=version, origin="replay")
    assert replayed.count() == 10  # a quarter of the 40 task rows
    assert set(replayed.values_list("split", flat=True)) == {"train"}
    assert version.card["origins"] == {"case": 40, "replay": 10}


def test_a_recipe_naming_a_version_that_is_not_ready_is_refused(world, dataset):
    for i in range(20):
        approved_case(i)
    building = new_version(world, dataset, recipe())
    body = recipe()
    body["sources"]["parent_version"] = building.pk
    with pytest.raises(ValidationError) as refused:
        new_version(world, dataset, body)
    assert "not ready" in " ".join(refused.value.message_dict["sources.parent_version"])


def test_a_version_extends_its_parent_and_pins_its_test_split(world, dataset):
    for i in range(40):
        approved_case(i)
    v1 = build_inline(new_version(world, dataset, recipe()))
    for i in range(40, 60):
        approved_case(i, tag="format")
    body = recipe(split={"pinned_test_version": v1.pk})
    body["sources"]["cases"]["tags"] = ["format"]
    body["sources"]["parent_version"] = v1.pk
    v2 = build_inline(new_version(world, dataset, body))
    assert v2.status == VersionStatus.READY, v2.error
    assert v2.parent == v1

    def pinned_keys(version):
        return set(DatasetExample.objects.filter(version=version, split="test").values_list("key", flat=True))

    assert pinned_keys(v2) == pinned_keys(v1)
    assert sum(v2.counts.values()) == 60
    train_keys = set(
        DatasetExample.objects.filter(version=v2).exclude(split="test").values_list("key", flat=True)
    )
    assert not train_keys & pinned_keys(v1)


def test_a_file_source_is_combined_with_the_cases_and_keeps_its_file_and_line(world, dataset):
    for i in range(20):
        approved_case(i)
    rng = random.Random(5)
    vocabulary = [
        f"{a}{b}"
        for a in ("ka", "lo", "mi", "nu", "pe", "ro", "su", "ti")
        for b in ("ba", "de", "fo", "gu", "ha")
    ]
    lines = [{"messages": [{"role": "user", "content": " ".join(rng.sample(vocabulary, 12)) + "?"},
                           {"role": "assistant", "content": " ".join(rng.sample(vocabulary, 10)) + "."}]}
             for _ in range(30)]  # fmt: skip
    body = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode()
    source = source_file_add(user=world.users["Data Scientist"], dataset=dataset,
                             upload=SimpleUploadedFile("extra.jsonl", body))  # fmt: skip
    recipe_body = recipe()
    recipe_body["sources"]["files"] = [source.pk]
    version = build_inline(new_version(world, dataset, recipe_body))
    assert sum(version.counts.values()) == 50, version.steps
    row = DatasetExample.objects.get(version=version, ref__line=3)
    assert row.ref == {"file": "extra.jsonl", "line": 3} and row.origin == "file"
    assert version.card["files"] == {"extra.jsonl": 30}


def test_a_file_in_an_unknown_format_is_refused_naming_it(world, dataset):
    with pytest.raises(ValidationError) as refused:
        source_file_add(user=world.users["Data Scientist"], dataset=dataset,
                        upload=SimpleUploadedFile("cases.xlsx", b"PK\x03\x04"))  # fmt: skip
    assert "cases.xlsx" in refused.value.message_dict["file"][0]


def test_the_exports_open_with_hugging_face_datasets_and_match_their_hashes(world, dataset):
    import hashlib

    from datasets import load_from_disk

    for i in range(30):
        approved_case(i)
    version = build_inline(new_version(world, dataset, recipe()))
    loaded = load_from_disk(version.exports["hf"]["path"])
    assert {split: len(loaded[split]) for split in loaded} == {k: v for k, v in version.counts.items() if v}
    jsonl = version.exports["jsonl"]
    first = json.loads((Path(jsonl["path"]) / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"messages"}
    for info in version.exports.values():
        assert len(info["sha256"]) == 64 and info["bytes"] > 0
        for relpath, file in info["files"].items():
            assert hashlib.sha256((Path(info["path"]) / relpath).read_bytes()).hexdigest() == file["sha256"]


def test_a_ready_version_cannot_be_built_again(world, dataset):
    from datasets_app.models.datasets import VersionImmutable

    approved_case(1)
    approved_case(2)
    approved_case(3)
    version = build_inline(
        new_version(world, dataset, recipe(split={"train": 0.34, "validation": 0.33, "test": 0.33}))
    )
    assert version.status == VersionStatus.READY, version.error
    with pytest.raises(VersionImmutable):
        version.mark_failed("again")


@pytest.mark.django_db(transaction=True)
def test_a_case_edited_while_the_build_reads_does_not_tear_the_snapshot(world, dataset, monkeypatch):
    """The build reads cases in chunks; an edit committed between two chunks must not show up in the version."""
    if connection.vendor != "postgresql":
        pytest.skip("repeatable read is a PostgreSQL guarantee")
    cases = [approved_case(i) for i in range(12)]
    monkeypatch.setattr(build_service, "CASE_CHUNK", 4)
    original = build_service._tags_of
    edited = threading.Event()

    def edit_between_chunks(case_ids):
        tags = original(case_ids)
        if not edited.is_set():
            edited.set()

            def edit():
                ErrorCase.objects.filter(pk=cases[-1].pk).update(expected_output="EDITED DURING THE BUILD")
                ErrorCase.objects.filter(pk=cases[-2].pk).update(status=CaseStatus.CORRECTED)
                connections.close_all()

            worker = threading.Thread(target=edit)  # its own connection: a committed concurrent edit
            worker.start()
            worker.join()
        return tags

    monkeypatch.setattr(build_service, "_tags_of", edit_between_chunks)
    version = build_inline(new_version(world, dataset, recipe()))
    assert edited.is_set() and version.status == VersionStatus.READY, version.error
    texts = [
        r["messages"][-1]["content"]
        for r in DatasetExample.objects.filter(version=version).values_list("fields", flat=True)
    ]
    assert "EDITED DURING THE BUILD" not in texts and len(texts) == 12


@pytest.mark.worker
def test_a_build_runs_on_a_real_worker_with_progress_and_a_log(world, dataset, start_worker, settings):
    for i in range(50):
        approved_case(i)
    start_worker(queues="cpu", ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT))
    version = new_version(world, dataset, recipe())
    job = DatasetBuild.objects.get(version=version)

    def finished():
        job.refresh_from_db()
        return job.is_terminal

    wait_until(finished, timeout=120, what="the build to finish on the worker")
    version.refresh_from_db()
    assert job.status == "succeeded" and version.status == VersionStatus.READY, (job.error, version.error)
    assert job.progress == 1.0 and job.worker_hostname.startswith("test-")
    assert [line["step"] for line in job.log][-1] == "ready"
    assert DatasetExample.objects.filter(version=version).count() == 50


def test_texts_with_backslashes_tabs_and_line_breaks_are_stored_and_read_back_unchanged(world, dataset):
    """The COPY writer encodes rows itself: what a user typed must come back byte for byte."""
    from datasets_app.services.version_rows import version_examples

    tricky = 'C:\\temp\\new\tcol\n"quoted" \\N \\\\ \r\n end \u00e9\u4e2d'
    rng = random.Random(3)
    words = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ro") for b in ("ba", "de", "fo", "gu", "ha")]
    lines = [{"messages": [{"role": "user", "content": " ".join(rng.sample(words, 12)) + f" {tricky}?"},
                           {"role": "assistant", "content": f"answer {i}: {tricky}"}],
              "category": f"cat\\{i % 2}\tx"}
             for i in range(30)]  # fmt: skip
    body = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode()
    source = source_file_add(user=world.users["Data Scientist"], dataset=dataset,
                             upload=SimpleUploadedFile("tricky.jsonl", body))  # fmt: skip
    recipe_body = recipe(normalise={"collapse_whitespace": False})
    recipe_body["sources"].update(cases=None, files=[source.pk])
    version = build_inline(new_version(world, dataset, recipe_body))
    assert version.status == VersionStatus.READY, version.error
    rows = {e.ref["line"]: e for e in version_examples(version.pk)}
    assert len(rows) == 30
    for line, example in rows.items():
        assert example.fields["messages"][1]["content"].endswith(f"answer {line - 1}: {tricky}")
        assert example.category == f"cat\\{(line - 1) % 2}\tx"


def test_an_export_that_fails_in_its_process_fails_the_build_and_stores_nothing(world, dataset, monkeypatch):
    from datasets_app.pipeline import exports

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(exports, "export_all", broken)
    for i in range(20):
        approved_case(i)
    version = build_inline(new_version(world, dataset, recipe()))
    assert version.status == VersionStatus.FAILED and "disk full" in version.error
    assert not DatasetExample.objects.filter(version=version).exists()


def test_deleting_a_version_deletes_its_rows_without_a_database_foreign_key(world, dataset):
    for i in range(20):
        approved_case(i)
    version = build_inline(new_version(world, dataset, recipe()))
    other = build_inline(new_version(world, dataset, recipe()))
    assert DatasetExample.objects.filter(version=version).count() == 20
    version.delete()  # on_delete=CASCADE runs in Django: the rows go with their version
    assert not DatasetExample.objects.filter(version_id=version.pk).exists()
    assert DatasetExample.objects.filter(version=other).count() == 20


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY path's indexes are PostgreSQL's")
def test_the_example_table_carries_only_the_indexes_its_reads_need(db):
    """Every index and foreign key costs each COPYed row (bench/RESULTS.md): the version's own index and a
    second index on case were duplicates of these, and the foreign key's check was a query per row."""
    table = DatasetExample._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [table])
        columns = sorted(d.split("USING btree ")[1] for (d,) in cursor.fetchall())
        cursor.execute("SELECT contype FROM pg_constraint WHERE conrelid = %s::regclass", [table])
        kinds = sorted(kind for (kind,) in cursor.fetchall())
    assert columns == ["(case_id)", "(id)", "(version_id, key)", '(version_id, split, "position")']
    assert kinds == ["c", "c", "p"]  # position ≥ 0, tokens ≥ 0, the primary key: no foreign key
