"""Datasets in the browser's terms: the list and its create form, uploads, the recipe form, the version page with
its data card (funnel, leakage, samples, lineage, diff), the live build status and the downloads.

Versions are made directly with the ORM (the build itself is tested with the pipeline)."""

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from datasets_app.models import Dataset, DatasetBuild, DatasetExample, DatasetVersion, SourceFile
from datasets_app.services.cases import case_create
from llmops.jobs import JobStatus

XSS = "<script>alert('x')</script>"
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def artifacts(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.ARTIFACT_ROOT.mkdir()
    return settings.ARTIFACT_ROOT


def make_dataset(name="intents", task_type="classification", **fields) -> Dataset:
    return Dataset.objects.create(name=name, task_type=task_type, **fields)


def make_case(text="Where is my parcel?"):
    return case_create(user=None, messages=[{"role": "user", "content": text}], bad_output="No idea.")


def row(split, text, label="shipping", ref=None, key=None, **extra) -> dict:
    return {"split": split, "fields": {"text": text, "label": label}, "ref": ref or {},
            "key": key or hashlib.sha256(text.encode()).hexdigest(), **extra}  # fmt: skip


def make_version(dataset, rows=(), number=1, parent=None, status="ready", **fields) -> DatasetVersion:
    counts = {s: sum(1 for r in rows if r["split"] == s) for s in ("train", "validation", "test")}
    version = DatasetVersion.objects.create(dataset=dataset, number=number, parent=parent, status=status,
                                            recipe=fields.pop("recipe", {}), counts=counts, **fields)  # fmt: skip
    DatasetExample.objects.bulk_create(
        DatasetExample(
            version=version,
            position=i,
            tokens=len(r["fields"]["text"].split()),
            origin="case" if "case" in r["ref"] else "file",
            case_id=r["ref"].get("case"),
            category=r["fields"]["label"],
            **r,
        )  # fmt: skip
        for i, r in enumerate(rows)
    )
    return version


STEPS = [
    {"name": "normalise", "rows_in": 12, "rows_out": 12, "dropped": {}, "examples": {}, "notes": ["3 texts changed"]},
    {"name": "filter", "rows_in": 12, "rows_out": 10, "dropped": {"too_short": 2},
     "examples": {"too_short": [{"ref": {"file": "a.jsonl", "line": 4}, "fields": {"text": "hi", "label": "x"}}]}},
    {"name": "dedup", "rows_in": 10, "rows_out": 9, "dropped": {"exact_duplicate": 1}, "examples": {}},
]  # fmt: skip
CARD = {
    "categories": {"names": ["shipping", "refund"], "by_split": {"train": [5, 2], "validation": [1, 0], "test": [1, 0]}},
    "token_bins": ["≤16", "≤32", ">32"], "token_hist": {"train": [6, 1, 0], "validation": [1, 0, 0], "test": [1, 0, 0]},
    "tokens_mean": {"train": 5.5, "validation": 4.0, "test": 4.0}, "origins": {"case": 1, "file": 8},
    "augmented": {}, "files": {"a.jsonl": 8}, "cases": 1,
}  # fmt: skip


def page(client, url, data=None, **extra):
    response = client.get(url, data or {}, **extra)
    return response, response.content.decode()


# --- the list and who may create ------------------------------------------------------------------------------


def test_only_data_scientists_and_admins_create_datasets(world):
    url = reverse("datasets:list")
    response, html = page(world.client("PM"), url)
    assert response.status_code == 200 and 'id="create-dataset"' not in html
    refused = world.client("PM").post(url, {"name": "intents", "task_type": "classification"})
    assert refused.status_code == 403 and not Dataset.objects.exists()

    response, html = page(world.client("Data Scientist"), url)
    assert 'id="create-dataset"' in html
    created = world.client("Data Scientist").post(url, {"name": "intents", "task_type": "classification",
                                                        "product": "support-bot"})  # fmt: skip
    dataset = Dataset.objects.get()
    assert created.status_code == 302 and created["Location"] == reverse("datasets:detail", args=[dataset.pk])
    assert dataset.created_by == world.users["Data Scientist"] and dataset.product == "support-bot"
    again = world.client("Admin").post(url, {"name": "Intents", "task_type": "chat"})
    assert again.status_code == 400 and "exists already" in again.content.decode()


def test_the_list_shows_each_datasets_latest_version_and_its_rows(world):
    dataset = make_dataset()
    make_version(dataset, [row("train", "a"), row("train", "b"), row("test", "c")])
    make_version(dataset, number=2, status="building")
    make_dataset("empty", task_type="chat")
    response, html = page(world.client("Architect"), reverse("datasets:list"))
    listed = re.search(rf'<tr data-dataset="{dataset.pk}">(.*?)</tr>', html, re.S).group(1)
    assert "v2" in listed and "building" in listed
    assert "none yet" in html


def test_everyone_reads_a_dataset_but_only_builders_see_the_upload_and_new_version(world):
    dataset = make_dataset()
    url = reverse("datasets:detail", args=[dataset.pk])
    for role in ("PM", "Architect"):
        response, html = page(world.client(role), url)
        assert response.status_code == 200
        assert "Upload a file" not in html and reverse("datasets:version-new", args=[dataset.pk]) not in html
    assert world.client("PM").get(reverse("datasets:version-new", args=[dataset.pk])).status_code == 403
    upload = SimpleUploadedFile("a.jsonl", b'{"text": "hi", "label": "x"}\n')
    refused = world.client("PM").post(reverse("datasets:file-upload", args=[dataset.pk]), {"file": upload})
    assert refused.status_code == 403 and not SourceFile.objects.exists()
    _, html = page(world.client("Data Scientist"), url)
    assert "Upload a file" in html and reverse("datasets:version-new", args=[dataset.pk]) in html


# --- create, upload, recipe: the round trip --------------------------------------------------------------------

LINES = "".join(json.dumps({"text": f"where is parcel {i}", "label": "shipping"}) + "\n" for i in range(20))


def test_create_upload_and_build_a_version_through_the_forms(world):
    client = world.client("Data Scientist")
    client.post(reverse("datasets:list"), {"name": "intents", "task_type": "classification"})
    dataset = Dataset.objects.get()

    bad = client.post(reverse("datasets:file-upload", args=[dataset.pk]),
                      {"file": SimpleUploadedFile("notes.txt", b"hello")})  # fmt: skip
    assert bad.status_code == 400 and "file: notes.txt: unknown format" in bad.content.decode()
    good = client.post(reverse("datasets:file-upload", args=[dataset.pk]),
                       {"file": SimpleUploadedFile("parcels.jsonl", LINES.encode())})  # fmt: skip
    assert good.status_code == 302
    source = SourceFile.objects.get()
    assert source.name == "parcels.jsonl"
    assert "parcels.jsonl" in page(client, reverse("datasets:detail", args=[dataset.pk]))[1]

    url = reverse("datasets:version-new", args=[dataset.pk])
    form, html = page(client, url)
    assert form.status_code == 200 and f'value="{source.pk}"' in html
    data = {**form_data(form.context["form"]), "use_cases": "", "files": [source.pk],
            "split_train": "0.5", "split_validation": "0.2", "split_test": "0.2"}  # fmt: skip
    refused = client.post(url, data)
    html = refused.content.decode()
    assert refused.status_code == 400 and not DatasetVersion.objects.exists()
    split_fields = re.search(r'<fieldset[^>]*id="split-fields".*?</fieldset>', html, re.S).group(0)
    assert "ratios must sum to 1 (got 0.9)" in split_fields

    built = client.post(url, {**data, "split_train": "0.6"})
    version = DatasetVersion.objects.get()
    assert built.status_code == 302 and built["Location"] == reverse("datasets:version", args=[version.pk])
    assert version.status == "building" and version.number == 1
    assert version.recipe["sources"]["files"] == [source.pk] and version.recipe["sources"]["cases"] is None
    assert version.recipe["steps"]["split"]["train"] == 0.6
    assert DatasetBuild.objects.get(version=version).status == JobStatus.QUEUED


def form_data(form) -> dict:
    """What a browser posts for the form as it was rendered (initial values)."""
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None or value is False:
            continue
        data[name] = "on" if value is True else value
    return data


def test_every_recipe_problem_is_shown_next_to_its_field(world):
    dataset = make_dataset()
    url = reverse("datasets:version-new", args=[dataset.pk])
    client = world.client("Admin")
    base = form_data(client.get(url).context["form"])
    response = client.post(url, {**base, "min_tokens": "50", "max_tokens": "10", "dedup_threshold": "1.5",
                                 "synonyms_ratio": "0.2", "synonyms_table": "no colon here"})  # fmt: skip
    form = response.context["form"]
    assert response.status_code == 400
    assert form.errors["min_tokens"] == ["must not exceed max_tokens (10)"]
    assert "must be above 0 and at most 1" in form.errors["dedup_threshold"][0]
    assert form.errors["synonyms_table"] == ["line 1: write it as “word: synonym, synonym”"]
    nothing = client.post(url, {**base, "use_cases": ""})
    assert "sources: pick at least one source" in nothing.content.decode()


def test_a_new_version_can_start_from_another_ones_recipe(world):
    dataset = make_dataset()
    recipe = {"sources": {"cases": {"tags": [], "products": ["shop"], "date_from": "", "date_to": ""}},
              "steps": {"split": {"train": 0.7, "validation": 0.1, "test": 0.2, "seed": 7},
                        "augment": {"backtranslation": {"api_key": "sk-secret"}}}}  # fmt: skip
    v1 = make_version(dataset, [row("train", f"a {i}") for i in range(20)], recipe=recipe)
    client = world.client("Data Scientist")
    response, html = page(client, reverse("datasets:version-new", args=[dataset.pk]), {"from": v1.pk})
    form = response.context["form"]
    assert form.initial["parent_version"] == v1.pk and form.initial["split_seed"] == 7
    assert form.initial["case_products"] == "shop" and form.initial["split_test"] == 0.2
    assert "sk-secret" not in html and "A key is kept" in html
    posted = client.post(reverse("datasets:version-new", args=[dataset.pk]), form_data(form))
    v2 = DatasetVersion.objects.get(number=2)
    assert posted.status_code == 302 and v2.parent == v1
    assert v2.recipe["steps"]["augment"]["backtranslation"]["api_key"] == "sk-secret"
    assert "sk-secret" not in page(client, reverse("datasets:version", args=[v2.pk]))[1]


# --- the version page -----------------------------------------------------------------------------------------


def test_the_data_card_shows_the_funnel_leakage_samples_and_lineage(world):
    dataset = make_dataset()
    case = make_case()
    rows = [row("train", "where is my parcel", ref={"case": case.pk})]
    rows += [row("train", f"parcel {i}", ref={"file": "a.jsonl", "line": i}) for i in range(12)]
    rows += [row("test", "refund please", label="refund", ref={"file": "a.jsonl", "line": 99})]
    leakage = {"exact": 0, "near": 0, "examples": [], "checked_test": 1, "checked_train": 13}
    version = make_version(dataset, rows, steps=STEPS, card=CARD, leakage=leakage, content_sha256="ab" * 32)
    response, html = page(world.client("PM"), reverse("datasets:version", args=[version.pk]))
    assert response.status_code == 200
    funnel = re.search(r'id="funnel".*?</section>', html, re.S).group(0)
    assert re.search(r"data-rows-in>12</span> → <span data-rows-out>10<", funnel)
    assert (
        "2 dropped: too short" in funnel and "a.jsonl:4" in funnel and "1 dropped: exact duplicate" in funnel
    )
    assert re.search(r'data-leakage="exact">0 — none by construction', html)
    assert re.search(r'data-leakage="near">0 — none by construction', html)
    samples = re.search(r'id="samples".*?</table>', html, re.S).group(0)
    assert samples.count("<tr data-position") == 10  # the first 10 train rows
    assert f'href="{reverse("cases:detail", args=[case.pk])}"' in samples
    assert "refund please" not in samples
    assert 'data-lineage="cases">1' in html and 'data-file="a.jsonl"' in html
    assert 'data-category="shipping"' in html and "token-hist" in html
    assert "New version from this" not in html  # a PM does not build


def test_sample_tabs_show_each_split_and_page_on(world):
    dataset = make_dataset()
    rows = [row("train", f"train row {i}") for i in range(15)] + [row("test", "only test row")]
    version = make_version(dataset, rows)
    client = world.client("Architect")
    url = reverse("datasets:version-rows", args=[version.pk])
    response, html = page(client, url, {"split": "test"}, **HX)
    assert "<html" not in html and "only test row" in html and "train row" not in html
    first, html = page(client, url, {"split": "train"}, **HX)
    assert html.count("<tr data-position") == 10
    after = re.search(r'hx-get="[^"]*split=train&amp;after=(\d+)"', html).group(1)
    rest, html = page(client, url, {"split": "train", "after": after})
    assert "<html" in html and html.count("<tr data-position") == 5 and "train row 14" in html


def test_the_diff_partial_counts_added_removed_and_changed_rows(world):
    dataset = make_dataset()
    parent = make_version(dataset, [row("train", "kept", ref={"file": "a.jsonl", "line": 1}),
                                    row("train", "old text", ref={"file": "a.jsonl", "line": 2}),
                                    row("train", "dropped", ref={"file": "a.jsonl", "line": 3})])  # fmt: skip
    child = make_version(dataset, [row("train", "kept", ref={"file": "a.jsonl", "line": 1}),
                                   row("train", "new text", ref={"file": "a.jsonl", "line": 2}),
                                   row("train", "brand new", ref={"file": "b.jsonl", "line": 1}),
                                   row("test", "also new", ref={"file": "b.jsonl", "line": 2})],
                         number=2, parent=parent)  # fmt: skip
    client = world.client("PM")
    page_html = page(client, reverse("datasets:version", args=[child.pk]))[1]
    diff_url = reverse("datasets:version-diff", args=[child.pk])
    assert f'href="{diff_url}" hx-get="{diff_url}"' in page_html
    response, html = page(client, diff_url, **HX)
    assert "<html" not in html
    assert re.search(r'data-diff="added">2<', html) and re.search(r'data-diff="removed">1<', html)
    assert re.search(r'data-diff="changed">1<', html)
    changed = re.search(r'data-part="changed".*?</details>', html, re.S).group(0)
    assert "old text" in changed and "new text" in changed
    assert "has no parent" in page(client, reverse("datasets:version-diff", args=[parent.pk]))[1]


def test_a_building_version_polls_its_status_and_a_builder_can_cancel_it(world):
    dataset = make_dataset()
    version = make_version(dataset, status="building")
    DatasetBuild.objects.create(version=version, progress=0.3, progress_message="filter: 12 in, 10 out")
    url = reverse("datasets:version", args=[version.pk])
    _, html = page(world.client("Data Scientist"), url)
    assert 'hx-trigger="every 2s"' in html and "Cancel build" in html
    response, html = page(world.client("PM"), url, HTTP_HX_TARGET="build-status", **HX)
    assert "<html" not in html and "filter: 12 in, 10 out" in html and "Cancel build" not in html
    cancel = reverse("datasets:version-cancel", args=[version.pk])
    assert world.client("PM").post(cancel).status_code == 403
    response = world.client("Data Scientist").post(cancel, HTTP_HX_TARGET="build-status", **HX)
    version.refresh_from_db()
    assert version.status == "failed" and response["HX-Refresh"] == "true"
    _, html = page(world.client("PM"), url)
    assert "The build failed" in html and "the build was cancelled" in html and "every 2s" not in html


# --- downloads ------------------------------------------------------------------------------------------------


def exported_version(artifacts: Path, dataset) -> DatasetVersion:
    out = artifacts / "datasets" / str(dataset.pk) / "v1"
    exports = {}
    for fmt in ("jsonl", "parquet"):
        (out / fmt).mkdir(parents=True)
        files = {}
        for split in ("train", "validation", "test"):
            path = out / fmt / f"{split}.{fmt}"
            path.write_bytes(f"{fmt} {split}\n".encode())
            files[path.name] = {
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "bytes": path.stat().st_size,
            }
        exports[fmt] = {"path": str(out / fmt), "sha256": "f" * 64, "bytes": 30, "files": files}
    (out / "hf" / "train").mkdir(parents=True)
    (out / "hf" / "dataset_dict.json").write_text('{"splits": ["train"]}')
    (out / "hf" / "train" / "data-00000-of-00001.arrow").write_bytes(b"\x00arrow" * 1000)
    (out / "hf" / "secret.txt").write_text("not listed")
    exports["hf"] = {"path": str(out / "hf"), "sha256": "e" * 64, "bytes": 6020,
                     "files": {"dataset_dict.json": {}, "train/data-00000-of-00001.arrow": {}}}  # fmt: skip
    return make_version(dataset, [row("train", "a")], exports=exports)


def test_downloads_serve_the_stored_export_files(world, artifacts):
    version = exported_version(artifacts, make_dataset("support intents"))
    client = world.client("PM")
    response = client.get(reverse("datasets:download", args=[version.pk, "jsonl", "train"]))
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"jsonl train\n"
    assert 'filename="support-intents-v1-train.jsonl"' in response["Content-Disposition"]
    parquet = client.get(reverse("datasets:download", args=[version.pk, "parquet", "test"]))
    assert b"".join(parquet.streaming_content) == b"parquet test\n"
    html = page(client, reverse("datasets:version", args=[version.pk]))[1]
    assert reverse("datasets:download", args=[version.pk, "parquet", "validation"]) in html
    assert "f" * 64 in html

    zipped = client.get(reverse("datasets:download-hf", args=[version.pk]))
    assert zipped.status_code == 200 and "support-intents-v1-hf.zip" in zipped["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(zipped.streaming_content)))
    assert sorted(archive.namelist()) == ["support-intents-v1/dataset_dict.json",
                                          "support-intents-v1/train/data-00000-of-00001.arrow"]  # fmt: skip
    assert archive.read("support-intents-v1/train/data-00000-of-00001.arrow") == b"\x00arrow" * 1000


def test_downloads_refuse_formats_splits_and_paths_not_in_the_stored_exports(world, artifacts, tmp_path):
    version = exported_version(artifacts, make_dataset())
    client = world.client("PM")
    for fmt, split in (("csv", "train"), ("hf", "train"), ("jsonl", "everything"), ("jsonl", "..")):
        assert client.get(f"/datasets/versions/{version.pk}/download/{fmt}/{split}").status_code == 404
    outside = tmp_path / "outside.jsonl"
    outside.write_text("secret")
    version.exports["jsonl"]["files"]["train"] = str(outside)  # a stored path outside ARTIFACT_ROOT
    version.exports["hf"]["files"]["../../../outside.jsonl"] = {}
    version.save()
    assert client.get(reverse("datasets:download", args=[version.pk, "jsonl", "train"])).status_code == 404
    assert client.get(reverse("datasets:download-hf", args=[version.pk])).status_code == 404
    bare = make_version(make_dataset("bare"), [row("train", "a")])
    assert client.get(reverse("datasets:download", args=[bare.pk, "jsonl", "train"])).status_code == 404
    assert client.get(reverse("datasets:download-hf", args=[bare.pk])).status_code == 404


# --- escaping -------------------------------------------------------------------------------------------------


def test_user_written_text_is_escaped_everywhere_it_is_shown(world):
    dataset = make_dataset(XSS, description=XSS, product=XSS)
    steps = [{"name": "filter", "rows_in": 2, "rows_out": 1, "dropped": {"too_long": 1},
              "examples": {"too_long": [{"ref": {"file": XSS, "line": 1}, "fields": {"text": XSS}}]}}]  # fmt: skip
    card = {**CARD, "files": {XSS: 1}, "categories": {"names": [XSS], "by_split": {"train": [1]}}}
    v1 = make_version(dataset, [row("train", "old", ref={"file": "a", "line": 1})])
    version = make_version(dataset, [row("train", XSS, label=XSS, ref={"file": "a", "line": 1})], number=2,
                           parent=v1, steps=steps, card=card, recipe={"note": XSS})  # fmt: skip
    client = world.client("Data Scientist")
    urls = [reverse("datasets:list"), reverse("datasets:detail", args=[dataset.pk]),
            reverse("datasets:version", args=[version.pk]), reverse("datasets:version-diff", args=[version.pk]),
            reverse("datasets:version-rows", args=[version.pk]),
            reverse("datasets:version-new", args=[dataset.pk]) + f"?from={version.pk}"]  # fmt: skip
    for url in urls:
        response, html = page(client, url)
        assert response.status_code == 200, url
        assert XSS not in html, url
    assert "&lt;script&gt;" in page(client, reverse("datasets:version", args=[version.pk]))[1]


# --- with a real build ----------------------------------------------------------------------------------------


def test_a_version_built_for_real_shows_its_card_and_serves_its_exports(world, settings, tmp_path):
    from datasets_app.services.build import build_run

    settings.JOB_HEARTBEAT_SECONDS = 600
    client = world.client("Data Scientist")
    client.post(reverse("datasets:list"), {"name": "parcels", "task_type": "classification"})
    dataset = Dataset.objects.get()
    words = ["parcel", "refund", "invoice", "warranty", "account", "delivery", "password", "discount"]
    lines = "".join(json.dumps({"text": f"{words[i % 8]} question {i} about order {i * 7919} {words[(i * 3) % 8]}",
                                "label": ["shipping", "billing"][i % 2]}) + "\n" for i in range(40))  # fmt: skip
    lines += (
        json.dumps({"text": "parcel question 0 about order 0 parcel", "label": "shipping"}) + "\n"
    )  # a duplicate
    client.post(
        reverse("datasets:file-upload", args=[dataset.pk]),
        {"file": SimpleUploadedFile("p.jsonl", lines.encode())},
    )
    url = reverse("datasets:version-new", args=[dataset.pk])
    data = {
        **form_data(client.get(url).context["form"]),
        "use_cases": "",
        "files": [SourceFile.objects.get().pk],
    }
    assert client.post(url, data).status_code == 302
    version = DatasetVersion.objects.get()
    build_run(job_id=version.build.pk, task_id=version.build.celery_task_id, hostname="test")
    version.refresh_from_db()
    assert version.status == "ready", version.error

    response, html = page(world.client("PM"), reverse("datasets:version", args=[version.pk]))
    assert response.status_code == 200
    for step in version.steps:
        assert f'data-step="{step["name"]}"' in html
    dedup = re.search(r'data-step="dedup".*?</ul>', html, re.S).group(0)
    assert (
        "data-rows-in>41<" in dedup and "data-rows-out>40<" in dedup and "1 dropped: exact duplicate" in dedup
    )
    assert "p.jsonl:41" in dedup
    assert re.search(r'data-leakage="exact">0 — none by construction', html)
    assert html.count("<tr data-position") == min(10, version.counts["train"])
    assert 'data-file="p.jsonl"' in html and 'data-category="shipping"' in html

    train = client.get(reverse("datasets:download", args=[version.pk, "jsonl", "train"]))
    body = b"".join(train.streaming_content)
    assert hashlib.sha256(body).hexdigest() == version.exports["jsonl"]["files"]["train.jsonl"]["sha256"]
    assert len(body.splitlines()) == version.counts["train"]
    zipped = client.get(reverse("datasets:download-hf", args=[version.pk]))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(zipped.streaming_content)))
    assert sorted(archive.namelist()) == sorted(f"parcels-v1/{n}" for n in version.exports["hf"]["files"])
    archive.extractall(tmp_path / "unzipped")
    from datasets import load_from_disk

    loaded = load_from_disk(str(tmp_path / "unzipped" / "parcels-v1"))
    assert len(loaded["train"]) == version.counts["train"]
