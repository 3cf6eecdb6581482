"""Rules declared once on a dataset apply to every evaluation of its versions, before the run's own."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from evaluation_app.services.dataset_rules import dataset_rules_set
from evaluation_app.services.submit import eval_run_submit
from tests.training_app.conftest import ready_version


@pytest.fixture(autouse=True)
def _artifacts(artifacts):
    return artifacts


def test_a_dataset_s_rules_come_first_in_every_run_of_its_versions(scientist, base):
    version = ready_version(scientist)
    dataset_rules_set(user=scientist, dataset=version.dataset, rules=[{"kind": "length", "max_chars": 500}])
    run = eval_run_submit(user=scientist, model_version=base, dataset_version=version,
                          rules=[{"kind": "json_valid"}])  # fmt: skip
    assert [r["kind"] for r in run.rules] == ["length", "json_valid"]
    assert "rules" in run.suites  # declared rules are applied without ticking the box


def test_an_invalid_rule_is_refused_naming_it_and_nothing_is_saved(scientist):
    version = ready_version(scientist)
    with pytest.raises(ValidationError) as e:
        dataset_rules_set(user=scientist, dataset=version.dataset,
                          rules=[{"kind": "length", "max_chars": 9}, {"kind": "regex_must", "pattern": "(oops"}])  # fmt: skip
    assert "rule 2" in e.value.message_dict["rules"][0]
    version.dataset.refresh_from_db()
    assert version.dataset.eval_rules == []


def test_the_rules_page_saves_rows_and_shows_a_bad_regex_next_to_the_form(world, scientist):
    version = ready_version(scientist)
    client = world.client("Data Scientist")
    url = reverse("evaluation:dataset-rules", kwargs={"pk": version.dataset.pk})
    form = {"rules-TOTAL_FORMS": "2", "rules-INITIAL_FORMS": "0", "rules-0-kind": "keywords_forbidden",
            "rules-0-keywords": "guarantee, promise", "rules-1-kind": "regex_must", "rules-1-pattern": "[unclosed"}  # fmt: skip
    response = client.post(url, form)
    assert response.status_code == 400 and "rule 2" in response.content.decode()
    form["rules-1-pattern"] = r"^\w"
    assert client.post(url, form).status_code == 302
    version.dataset.refresh_from_db()
    assert version.dataset.eval_rules[0]["keywords"] == ["guarantee", "promise"]
    page = client.get(url).content.decode()
    assert "guarantee, promise" in page and "^\\w" in page
    detail = client.get(reverse("datasets:detail", kwargs={"pk": version.dataset.pk})).content.decode()
    assert "Evaluation rules (2)" in detail
    assert world.client("PM").get(url).status_code == 403
