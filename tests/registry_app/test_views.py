"""The registry pages: every model and version in a list, and a version page with its lineage linked to the
dataset version, the fine-tune job and the base it came from; user-written text is escaped."""

import pytest
from django.urls import reverse

from datasets_app.models import Dataset, DatasetVersion
from registry_app.models import ModelVersion, RegisteredModel
from training_app.models import FineTuneJob

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def lineage(world):
    model = RegisteredModel.objects.create(name="tiny", task="causal_lm", description=f"demo {SCRIPT}")
    base = ModelVersion.objects.create(
        model=model, number=1, source="base", artifact_uri="/models/tiny", sha256="a" * 64, size_bytes=2048,
        lineage={"path": "/models/tiny"},
    )  # fmt: skip
    dataset = Dataset.objects.create(name="intents", task_type="classification")
    version = DatasetVersion.objects.create(dataset=dataset, number=3, recipe={}, status="ready")
    job = FineTuneJob.objects.create(
        base=base, dataset_version=version, method="lora", config={"lora_r": 8}, status="succeeded"
    )
    derived = ModelVersion.objects.create(
        model=model, number=2, source="fine_tune", format="peft_adapter", base=base, artifact_uri="/runs/ft-1/adapter",
        sha256="b" * 64, size_bytes=4096, created_by=world.users["Data Scientist"],
        lineage={"base_version": base.pk, "dataset_version": version.pk, "job": job.pk,
                 "config": {"lora_r": 8, "note": SCRIPT}, "merged_model": None},
    )  # fmt: skip
    FineTuneJob.objects.filter(pk=job.pk).update(result_version=derived)
    return {"base": base, "derived": derived, "dataset_version": version, "job": job}


def page(world, url: str, role: str = "PM") -> str:
    response = world.client(role).get(url)
    assert response.status_code == 200
    return response.content.decode()


def version_url(version: ModelVersion) -> str:
    return reverse("registry:version", kwargs={"name": version.model.name, "number": version.number})


def test_the_model_list_shows_base_and_derived_versions_with_links(world, lineage):
    html = page(world, reverse("registry:list"))
    assert (
        f'href="{version_url(lineage["base"])}"' in html
        and f'href="{version_url(lineage["derived"])}"' in html
    )
    assert "tiny v2" in html and "PEFT adapter" in html and "Fine Tune" in html
    assert 'href="/models/"' in html  # the Models entry in the navigation


def test_a_fine_tuned_version_links_its_base_dataset_version_and_job(world, lineage):
    html = page(world, version_url(lineage["derived"]))
    assert f'href="{version_url(lineage["base"])}"' in html
    assert f'href="{reverse("datasets:version", args=[lineage["dataset_version"].pk])}"' in html
    assert "intents v3" in html
    assert f'href="{reverse("training:job", args=[lineage["job"].pk])}"' in html
    assert "b" * 64 in html and "4.0\xa0KB" in html and "/runs/ft-1/adapter" in html
    assert "lora_r" in html and "scientist" in html


def test_a_base_version_lists_what_was_derived_from_it(world, lineage):
    html = page(world, version_url(lineage["base"]))
    assert "a base model" in html and "/models/tiny" in html
    assert f'href="{version_url(lineage["derived"])}"' in html


def test_user_written_text_is_escaped(world, lineage):
    for url in (reverse("registry:list"), version_url(lineage["derived"])):
        html = page(world, url)
        assert SCRIPT not in html and "&lt;script&gt;" in html


def test_the_fine_tune_job_page_links_its_result_to_the_version_page(world, lineage):
    html = page(world, reverse("training:job", args=[lineage["job"].pk]))
    assert f'href="{version_url(lineage["derived"])}"' in html


def test_an_unknown_version_is_a_404_and_a_logged_out_user_goes_to_the_login_page(world, lineage):
    assert world.client("PM").get("/models/tiny/v9/").status_code == 404
    for url in (reverse("registry:list"), version_url(lineage["base"])):
        response = world.client(None).get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
