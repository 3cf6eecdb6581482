"""Exporting a version as a data scientist meets it: refused kinds named on the form and in the API, a merged
folder / Triton repository written by the job (run in-process here) with its sha256 and size, the exports page
polling while a job runs, and a PM who may look but not export."""

import pytest
import torch
from django.core.exceptions import ValidationError
from django.urls import reverse

from datasets_app.pipeline.exports import folder_sha256
from llmops.jobs import JobStatus
from registry_app.models import ExportJob, ModelVersion
from registry_app.services import base_model_register
from registry_app.services.exports import export_run, export_submit
from tests.conftest import TINY_BERT_LABELS


@pytest.fixture(autouse=True)
def export_root(settings, artifacts):
    settings.EXPORT_ROOT = artifacts / "exports"
    return settings.EXPORT_ROOT


@pytest.fixture
def intents(scientist, tiny_bert_dir):
    return base_model_register(
        user=scientist, name="support/intents", path=tiny_bert_dir, task="classification"
    )


@pytest.fixture
def quantised(base, tiny_dir):
    return ModelVersion.objects.create(model=base.model, number=2, source="compression", format="quantized",
                                       artifact_uri=str(tiny_dir), base=base)  # fmt: skip


def run(job: ExportJob) -> ExportJob:
    export_run(job_id=job.pk, task_id=job.celery_task_id, hostname="test")
    job.refresh_from_db()
    return job


def problems(version, kind) -> dict:
    with pytest.raises(ValidationError) as caught:
        export_submit(user=None, version=version, kind=kind)
    return caught.value.message_dict


def test_it_refuses_onnx_for_a_causal_model_a_quantised_version_and_an_unknown_kind(base, quantised):
    assert (
        "ONNX export is for classifiers only; tiny v1 is a causal language model"
        in problems(base, "onnx")["kind"][0]
    )
    for kind in ("merged_hf", "triton", "onnx"):
        assert "tiny v2 is quantised" in problems(quantised, kind)["kind"][0]
    assert problems(base, "tflite") == {"kind": ["must be one of merged_hf, onnx, triton (got 'tflite')"]}
    assert not ExportJob.objects.exists()


def test_a_merged_export_of_an_adapter_version_is_written_hashed_and_recorded(
    scientist, base, tiny_dir, tmp_path
):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    adapter = tmp_path / "adapter"
    lora = LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_dir), lora).save_pretrained(adapter)
    version = ModelVersion.objects.create(model=base.model, number=2, source="fine_tune", format="peft_adapter",
                                          artifact_uri=str(adapter), base=base)  # fmt: skip

    job = export_submit(user=scientist, version=version, kind="merged_hf")
    assert job.status == JobStatus.QUEUED and job.celery_task_id
    job = run(job)
    assert job.status == JobStatus.SUCCEEDED, job.error
    folder = tmp_path / "artifacts" / "exports" / "tiny" / "v2" / f"merged_hf-{job.pk}"
    assert job.result_uri == str(folder)
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    digest = folder_sha256(folder)
    assert (job.result_sha256, job.result_bytes) == (digest["sha256"], digest["bytes"])


def test_a_triton_export_of_a_classifier_lays_out_the_repository(scientist, intents, export_root):
    job = run(export_submit(user=scientist, version=intents, kind="triton"))
    assert job.status == JobStatus.SUCCEEDED, job.error
    repo = export_root / "support_intents" / "v1" / f"triton-{job.pk}"
    config = (repo / "support_intents-v1" / "config.pbtxt").read_text()
    assert 'backend: "python"' in config and f"dims: [ {len(TINY_BERT_LABELS)} ]" in config
    assert (repo / "support_intents-v1" / "1" / "model.py").is_file()
    assert (repo / "support_intents-v1" / "1" / "model" / "model.safetensors").is_file()


def test_an_export_the_engine_refuses_fails_with_its_reason_and_leaves_no_folder(
    scientist, base, tmp_path, export_root
):
    broken = tmp_path / "broken"
    broken.mkdir()
    version = ModelVersion.objects.create(model=base.model, number=2, source="base", artifact_uri=str(broken))
    job = run(export_submit(user=scientist, version=version, kind="merged_hf"))
    assert job.status == JobStatus.FAILED
    assert "is not a Hugging Face folder (config.json and .safetensors weights)" in job.error
    assert list(export_root.rglob(f"merged_hf-{job.pk}*")) == []


def test_the_exports_page_lists_jobs_polls_while_one_runs_and_starts_one(world, base):
    url = reverse("registry:exports", kwargs={"name": "tiny", "number": 1})
    client = world.client("Data Scientist")
    page = client.get(url).content.decode()
    assert (
        'id="export-form"' in page and "No exports of this version yet." in page and "hx-trigger" not in page
    )

    response = client.post(
        reverse("registry:export-new", kwargs={"name": "tiny", "number": 1}), {"kind": "triton"}
    )
    assert response.status_code == 302 and response.url == url
    job = ExportJob.objects.get()
    page = client.get(url).content.decode()
    assert f'data-export="{job.pk}" data-status="queued"' in page and 'hx-trigger="every 3s"' in page
    partial = client.get(url, headers={"HX-Request": "true", "HX-Target": "exports"}).content.decode()
    assert partial.lstrip().startswith('<section class="card" id="exports"') and "<html" not in partial


def test_the_form_shows_why_a_kind_is_refused(world, base):
    response = world.client("Data Scientist").post(
        reverse("registry:export-new", kwargs={"name": "tiny", "number": 1}), {"kind": "onnx"}
    )
    assert response.status_code == 400
    assert "ONNX export is for classifiers only" in response.content.decode()
    assert not ExportJob.objects.exists()


def test_a_pm_sees_the_exports_but_cannot_start_one(world, base):
    client = world.client("PM")
    assert (
        'id="export-form"' not in client.get(reverse("registry:exports", args=["tiny", 1])).content.decode()
    )
    assert (
        client.post(reverse("registry:export-new", args=["tiny", 1]), {"kind": "merged_hf"}).status_code
        == 403
    )
    assert (
        world.api("PM")
        .post(reverse("api-version-exports", args=[base.pk]), {"kind": "merged_hf"})
        .status_code
        == 403
    )


def test_the_api_starts_an_export_and_reports_it(world, intents):
    api = world.api("Data Scientist")
    response = api.post(reverse("api-version-exports", args=[intents.pk]), {"kind": "onnx"}, format="json")
    assert response.status_code == 202
    assert response.json()["kind"] == "onnx" and response.json()["status"] == "queued"
    detail = world.api("PM").get(reverse("api-export", args=[response.json()["id"]]))
    assert detail.status_code == 200 and detail.json()["version"] == intents.pk


def test_the_api_names_the_field_of_a_refused_export(world, base):
    api = world.api("Data Scientist")
    response = api.post(reverse("api-version-exports", args=[base.pk]), {"kind": "onnx"}, format="json")
    assert response.status_code == 400
    assert "ONNX export is for classifiers only" in response.json()["error"]["fields"]["kind"][0]
    response = api.post(reverse("api-version-exports", args=[base.pk]), {"kind": "pickle"}, format="json")
    assert response.status_code == 400 and "kind" in response.json()["error"]["fields"]
    assert (
        api.post(reverse("api-version-exports", args=[999999]), {"kind": "onnx"}, format="json").status_code
        == 404
    )
