"""The fine-tuning pages as people meet them: the list and job page for everyone, the form and cancel for data
scientists, every refused setting shown by its field, the live chart container, and the comparison of configs."""

import json

import pytest
from django.urls import reverse

from datasets_app.models import Dataset, DatasetVersion
from llmops.jobs import JobStatus
from registry_app.models import ModelVersion, RegisteredModel
from training_app.models import FineTuneJob


@pytest.fixture(autouse=True)
def artifacts(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    return settings.ARTIFACT_ROOT


@pytest.fixture
def base(tmp_path) -> ModelVersion:
    folder = tmp_path / "base"
    folder.mkdir()
    config = {"hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 100, "intermediate_size": 128}
    (folder / "config.json").write_text(json.dumps(config))
    model = RegisteredModel.objects.create(name="tiny", task="causal_lm")
    return ModelVersion.objects.create(model=model, number=1, source="base", artifact_uri=str(folder))


@pytest.fixture
def version(tmp_path) -> DatasetVersion:
    export = tmp_path / "export"
    export.mkdir()
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    (export / "train.jsonl").write_text(json.dumps(row) + "\n")
    dataset = Dataset.objects.create(name="support", task_type="chat")
    return DatasetVersion.objects.create(
        dataset=dataset, number=1, recipe={}, status="ready", counts={"train": 10, "validation": 0, "test": 0},
        exports={"jsonl": {"path": str(export)}}, card={"tokens_mean": {"train": 50}},
    )  # fmt: skip


def job_of(base, version, **fields) -> FineTuneJob:
    config = {"method": "lora", "lr": 0.0002, "lora_r": 16, "epochs": 1}
    return FineTuneJob.objects.create(
        base=base,
        dataset_version=version,
        method="lora",
        config={**config, **fields.pop("config", {})},
        **fields,
    )


def form_data(base, version, **overrides) -> dict:
    data = {"base": base.pk, "dataset_version": version.pk, "method": "lora", "lora_r": 8, "lora_alpha": 16,
            "lora_dropout": 0.05, "num_virtual_tokens": 20, "epochs": 1, "batch_size": 2, "grad_accum": 1,
            "lr": 0.0002, "warmup_steps": 0, "scheduler": "cosine", "eval_every": 0, "early_stopping_patience": 0,
            "checkpoint_every": 0, "seed": 1, "max_seq_len": 128, "packing": "on", "gpus": 1, "priority": 0}  # fmt: skip
    data.update(overrides)
    return data


def test_a_pm_sees_the_list_and_the_job_but_not_the_form(world, base, version):
    job = job_of(base, version)
    pm = world.client("PM")
    html = pm.get(reverse("training:list")).content.decode()
    assert f'href="{reverse("training:job", args=[job.pk])}"' in html
    assert "New fine-tune" not in html
    assert pm.get(reverse("training:job", args=[job.pk])).status_code == 200
    assert pm.get(reverse("training:new")).status_code == 403
    assert pm.post(reverse("training:new"), form_data(base, version)).status_code == 403
    assert pm.post(reverse("training:job-cancel", args=[job.pk])).status_code == 403
    assert "New fine-tune" in world.client("Data Scientist").get(reverse("training:list")).content.decode()


def test_the_method_fields_partial_shows_only_that_methods_settings(world):
    client = world.client("Data Scientist")
    html = client.get(
        reverse("training:new-fields"), {"method": "prefix"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert 'name="num_virtual_tokens"' in html and 'name="lora_r"' not in html
    html = client.get(
        reverse("training:new-fields"), {"method": "lora"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert 'name="lora_r"' in html and 'name="num_virtual_tokens"' not in html
    kept = {"method": "qlora", "lora_r": "32"}  # values typed so far survive a change of method
    html = client.get(reverse("training:new-fields"), kept, HTTP_HX_REQUEST="true").content.decode()
    assert 'name="lora_r" value="32"' in html
    page = client.get(reverse("training:new")).content.decode()  # without JS: every method's settings
    assert 'name="lora_r"' in page and 'name="num_virtual_tokens"' in page
    assert 'hx-get="/training/new/fields"' in page


def test_a_preset_prefills_the_form(world):
    html = world.client("Data Scientist").get(reverse("training:new"), {"preset": "full"}).content.decode()
    assert '<option value="full" selected>' in html


def test_an_invalid_submit_shows_every_problem_by_its_field(world, base, version):
    data = form_data(base, version, lr=-1, lora_r=0, batch_size=0, warmup_steps=-3)
    response = world.client("Data Scientist").post(reverse("training:new"), data)
    assert response.status_code == 400
    html = response.content.decode()
    for field in ("lr", "lora_r", "batch_size", "warmup_steps"):
        block = html.split(f'data-field="{field}"', 1)[1].split('<div class="recipe-field"', 1)[0]
        assert 'class="field-error"' in block, field
    assert not FineTuneJob.objects.exists()


def test_a_valid_submit_queues_a_job_and_opens_its_page(world, base, version, broker):
    response = world.client("Data Scientist").post(
        reverse("training:new"), form_data(base, version, priority=2)
    )
    job = FineTuneJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("training:job", args=[job.pk])
    assert job.status == JobStatus.QUEUED and job.config["lora_r"] == 8 and job.config["lr"] == 0.0002
    assert job.priority == 2


def test_the_estimate_is_labelled_as_one(world, base, version):
    html = world.client("Data Scientist").post(reverse("training:new-estimate"), form_data(base, version))
    html = html.content.decode()
    assert "estimate" in html.lower() and 'data-estimate="trainable"' in html
    assert "≈ 4,096" in html or "4096" in html.replace(
        ",", ""
    )  # 2 · r(8) · hidden(64) · 2 modules · 2 layers


def test_the_job_page_shows_charts_config_and_checkpoints(world, base, version, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints" / "step-00000040").mkdir(parents=True)
    (out / "checkpoints" / "step-00000040" / "state.bin").write_bytes(b"x" * 100)
    job = job_of(base, version, status="running", output_dir=str(out), config={"scheduler": "cosine"})
    html = world.client("PM").get(reverse("training:job", args=[job.pk])).content.decode()
    assert 'id="chart-loss"' in html and 'data-names="train_loss,val_loss"' in html
    assert reverse("training:job-metrics", args=[job.pk]) in html and "js/finetune.js" in html
    assert "<th>scheduler</th>" in html
    assert "step-00000040" in html and 'hx-trigger="every 3s"' in html
    assert "Cancel job" not in html  # PM may not cancel


def test_cancel_asks_the_job_to_stop(world, base, version):
    job = job_of(base, version)
    response = world.client("Data Scientist").post(reverse("training:job-cancel", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.cancel_requested or job.status == JobStatus.CANCELLED


def test_compare_highlights_a_differing_lr(world, base, version):
    a = job_of(base, version, config={"lr": 0.0001})
    b = job_of(base, version, config={"lr": 0.0003})
    html = world.client("PM").get(reverse("training:compare"), {"jobs": f"{a.pk},{b.pk}"}).content.decode()
    row = html.split('data-key="lr"', 1)[1].split("</tr>", 1)[0]
    assert 'class="differs"' in row and "<mark>0.0003</mark>" in row
    epochs = html.split('data-key="epochs"', 1)[1].split("</tr>", 1)[0]
    assert "differs" not in epochs and "<mark>" not in epochs


def test_user_text_is_escaped(world, base, version):
    version.dataset.name = "<script>alert(1)</script>"
    version.dataset.save()
    job = job_of(base, version, status="failed", error="<b>boom</b>", config={"note": "<i>x</i>"})
    for url in (reverse("training:list"), reverse("training:job", args=[job.pk])):
        html = world.client("PM").get(url).content.decode()
        assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    html = world.client("PM").get(reverse("training:job", args=[job.pk])).content.decode()
    assert "<b>boom</b>" not in html and "<i>x</i>" not in html


def test_a_running_job_shows_an_eta_and_a_succeeded_one_its_model_version(world, base, version):
    from datetime import timedelta

    from django.utils import timezone

    running = job_of(
        base, version, status="running", progress=0.5, started_at=timezone.now() - timedelta(minutes=10)
    )
    html = world.client("PM").get(reverse("training:job", args=[running.pk])).content.decode()
    assert 'id="eta"' in html and "left" in html
    done = job_of(base, version, status="succeeded", progress=1.0, result_version=base)
    html = world.client("PM").get(reverse("training:job", args=[done.pk])).content.decode()
    assert f'data-result-version="{base.pk}"' in html and 'hx-trigger="every 3s"' not in html


def test_problems_with_no_field_of_their_own_go_to_the_top_list():
    from training_app.forms import FineTuneForm

    form = FineTuneForm(data={})
    form.is_valid()
    other = form.add_service_errors({"lr": ["must be positive"], "colour": ["is not a setting"]})
    assert other == ["colour: is not a setting"] and "must be positive" in form.errors["lr"]
