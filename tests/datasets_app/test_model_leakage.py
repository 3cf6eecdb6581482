"""Leakage into a model's training data as a data scientist meets it: before evaluating a model on a version's test
split, the data card says whether any test row was in the data that model (or a model it was derived from) was
trained on — exactly or nearly — with examples linking to the cases; a base registered from a folder has no
training data on record and says so."""

import json

import pytest
from django.urls import reverse

from datasets_app.services.datasets import dataset_create, version_create
from datasets_app.services.leakage import leakage_against_model, model_training_versions
from registry_app.models import VersionFormat, VersionSource
from registry_app.services import base_model_register, derived_version_register
from tests.datasets_app.test_build import approved_case, build_inline, recipe

pytestmark = pytest.mark.usefixtures("artifacts")


def key(ref: dict) -> str:
    return json.dumps(ref, sort_keys=True)


def built(scientist, dataset, seed: int):
    return build_inline(version_create(user=scientist, dataset=dataset, recipe=recipe(split={"seed": seed})))


@pytest.fixture
def story(scientist, tiny_dir):
    """Two versions of the same 40 cases split with different seeds, a base, a fine-tune of the base on v1 and a
    fine-tune of that fine-tune on nothing new."""
    for i in range(40):
        approved_case(i)
    dataset = dataset_create(user=scientist, name="support", task_type="chat")
    v1, v2 = built(scientist, dataset, 1), built(scientist, dataset, 2)
    base = base_model_register(user=scientist, name="tiny", path=tiny_dir, task="causal_lm")

    def derive(parent, **lineage):
        return derived_version_register(user=scientist, base=parent, path=tiny_dir, source=VersionSource.FINE_TUNE,
                                        fmt=VersionFormat.HF, lineage=lineage)  # fmt: skip

    tuned = derive(base, dataset_version=v1.pk)
    return {"v1": v1, "v2": v2, "base": base, "tuned": tuned, "retuned": derive(tuned)}


def test_a_model_trained_on_another_split_of_the_same_cases_is_reported_leaking(story):
    v1, v2 = story["v1"], story["v2"]
    report = leakage_against_model(version=v2, model_version=story["tuned"])
    v1_train = {key(e.ref) for e in v1.examples.filter(split="train")}
    v2_test = {key(e.ref) for e in v2.examples.filter(split="test")}
    assert report["exact"] == len(v1_train & v2_test) > 0
    assert report["checked_test"] == len(v2_test) and report["checked_train"] == len(v1_train)
    assert report["training_versions"] == [{"id": v1.pk, "label": str(v1)}]
    assert all(pair["kind"] == "exact" and key(pair["train"]) in v1_train for pair in report["examples"])


def test_its_own_training_version_does_not_leak_and_a_derived_model_inherits_its_bases_data(story):
    assert leakage_against_model(version=story["v1"], model_version=story["tuned"])["exact"] == 0
    assert model_training_versions(story["retuned"]) == [story["v1"]]
    assert leakage_against_model(version=story["v2"], model_version=story["retuned"])["exact"] > 0


def test_a_base_from_a_folder_has_no_training_data_on_record(story):
    report = leakage_against_model(version=story["v2"], model_version=story["base"])
    assert report["training_versions"] == [] and report["exact"] == 0 and report["checked_train"] == 0


def test_the_data_card_checks_a_chosen_model_and_links_the_cases(world, story):
    client = world.client("PM")
    v2, tuned = story["v2"], story["tuned"]
    page = client.get(reverse("datasets:version", args=[v2.pk])).content.decode()
    assert 'id="model-leakage"' in page and f'<option value="{tuned.pk}"' in page
    url = reverse("datasets:version-leakage", args=[v2.pk])
    partial = client.get(url, {"model": tuned.pk}, headers={"HX-Request": "true"}).content.decode()
    assert (
        'data-leakage="model-exact"' in partial
        and reverse("datasets:version", args=[story["v1"].pk]) in partial
    )
    assert "/cases/" in partial  # the example pairs link back to the error cases
    without_js = client.get(url, {"model": tuned.pk})
    assert without_js.status_code == 302 and f"?model={tuned.pk}" in without_js["Location"]
    assert 'data-leakage="model-exact"' in client.get(without_js["Location"].split("#")[0]).content.decode()
    refused = client.get(url, {"model": "nope"}, headers={"HX-Request": "true"})
    assert refused.status_code == 400 and "Choose a model version" in refused.content.decode()


def test_the_api_reports_it_and_names_a_bad_model_version(world, story):
    api = world.api("PM")
    url = reverse("api-dataset-version-leakage", args=[story["v2"].pk])
    assert api.get(url, {"model_version": story["tuned"].pk}).json()["exact"] > 0
    bad = api.get(url, {"model_version": 999999})
    assert bad.status_code == 400 and "model_version" in bad.json()["error"]["fields"]
