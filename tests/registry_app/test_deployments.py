"""Deployments: creating and changing an A/B split (every bad input named, nothing written), stopping the
experiment and promoting its winner through the gate, and the pages that do it."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from registry_app.models import (
    AuditEntry,
    Deployment,
    DeploymentStatus,
    DeploymentVariant,
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
)
from registry_app.services.deployments import (
    deployment_create,
    deployment_stop,
    deployment_update,
    experiment_promote_winner,
)


@pytest.fixture
def family(db):
    model = RegisteredModel.objects.create(name="support-bot", task="causal_lm")
    for number, alias in ((1, "archived"), (2, "production"), (3, "candidate"), (4, "")):
        ModelVersion.objects.create(model=model, number=number, source="base", alias=alias)
    return model


def version(model, number):
    return ModelVersion.objects.get(model=model, number=number)


def split(model, candidate=3, weights=(90, 10)):
    return [
        {"label": "production", "version": None, "weight": weights[0]},
        {"label": "candidate-1", "version": version(model, candidate), "weight": weights[1]},
    ]


def problems_of(call) -> dict:
    with pytest.raises(ValidationError) as exc:
        call()
    return exc.value.message_dict


def test_it_creates_a_running_deployment_with_its_split_and_audits_it(world, family):
    deployment = deployment_create(
        user=world.users["Architect"], model=family, name="support", variants=split(family)
    )
    assert deployment.status == DeploymentStatus.RUNNING
    assert [(v.label, v.version_id, v.weight) for v in deployment.variants.all()] == [
        ("production", None, 90), ("candidate-1", version(family, 3).pk, 10)
    ]  # fmt: skip
    entry = AuditEntry.objects.get(action="deployment.created")
    assert entry.model == family and entry.actor == world.users["Architect"]


BAD_CREATES = [
    ("an empty name", {"name": ""}, "name"),
    ("a name that is not a slug", {"name": "support bot!"}, "name"),
    ("another family's name", {"name": "other-family"}, "name"),
    ("no variant", {"variants": []}, "variants"),
    ("two production arms", {"variants": [{"label": "a", "version": None, "weight": 1},
                                          {"label": "b", "version": "v2", "weight": 1}]}, "variants"),
    ("no production arm", {"variants": [{"label": "a", "version": "v3", "weight": 1}]}, "variants"),
    ("a zero weight", {"variants": [{"label": "p", "version": None, "weight": 0}]}, "variants.0.weight"),
    ("a fractional weight", {"variants": [{"label": "p", "version": None, "weight": 1.5}]}, "variants.0.weight"),
    ("a missing label", {"variants": [{"label": " ", "version": None, "weight": 1}]}, "variants.0.label"),
    ("a duplicate label", {"variants": [{"label": "p", "version": None, "weight": 1},
                                        {"label": "p", "version": "v3", "weight": 1}]}, "variants.1.label"),
    ("a version of another family", {"variants": [{"label": "p", "version": None, "weight": 1},
                                                  {"label": "c", "version": "other", "weight": 1}]},
     "variants.1.version"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "change", "field"), BAD_CREATES, ids=[c[0] for c in BAD_CREATES])
def test_it_refuses_bad_input_naming_the_field_and_writes_nothing(world, family, case, change, field):
    other = RegisteredModel.objects.create(name="other-family", task="causal_lm")
    other_version = ModelVersion.objects.create(model=other, number=1, source="base")
    named = {"v2": version(family, 2), "v3": version(family, 3), "other": other_version}
    arguments = {"name": "support", "variants": split(family), **change}
    arguments["variants"] = [
        {**v, "version": named.get(v["version"], v["version"])} for v in arguments["variants"]
    ]
    problems = problems_of(
        lambda: deployment_create(user=world.users["Architect"], model=family, **arguments)
    )
    assert field in problems, problems
    assert not Deployment.objects.exists() and not DeploymentVariant.objects.exists()
    assert not AuditEntry.objects.exists()


def test_it_gathers_every_problem_at_once_and_refuses_a_taken_name(world, family):
    deployment_create(user=world.users["Architect"], model=family, name="support", variants=split(family))
    problems = problems_of(lambda: deployment_create(
        user=world.users["Architect"], model=family, name="support",
        variants=[{"label": "", "version": None, "weight": -1}],
    ))  # fmt: skip
    assert {"name", "variants.0.label", "variants.0.weight"} <= set(problems)


def test_pinning_the_production_version_counts_as_the_production_arm(world, family):
    variants = [{"label": "prod", "version": version(family, 2), "weight": 1}, *split(family)[1:]]
    deployment = deployment_create(user=world.users["Admin"], model=family, name="pinned", variants=variants)
    assert deployment.variants.count() == 2


def test_only_architects_and_admins_manage_deployments(world, family):
    with pytest.raises(PermissionDenied):
        deployment_create(user=world.users["PM"], model=family, name="support", variants=split(family))


def test_updating_replaces_the_split_and_restarts_a_stopped_experiment(world, family):
    architect = world.users["Architect"]
    deployment = deployment_create(user=architect, model=family, name="support", variants=split(family))
    deployment_stop(user=architect, deployment=deployment)
    deployment_update(
        user=architect, deployment=deployment, variants=split(family, candidate=4, weights=(50, 50))
    )
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.RUNNING and deployment.stopped_at is None
    assert [(v.version_id, v.weight) for v in deployment.variants.all()] == [
        (None, 50),
        (version(family, 4).pk, 50),
    ]
    entry = AuditEntry.objects.get(action="deployment.updated")
    assert entry.snapshot["before"][1]["weight"] == 10 and entry.snapshot["after"][1]["weight"] == 50


def test_a_bad_update_keeps_the_old_split(world, family):
    deployment = deployment_create(
        user=world.users["Architect"], model=family, name="support", variants=split(family)
    )
    problems = problems_of(lambda: deployment_update(user=world.users["Architect"], deployment=deployment,
                                                     variants=split(family, weights=(90, 0))))  # fmt: skip
    assert "variants.1.weight" in problems
    assert [v.weight for v in deployment.variants.all()] == [90, 10]


def test_stopping_sends_all_traffic_to_production_and_is_audited(world, family):
    deployment = deployment_create(
        user=world.users["Architect"], model=family, name="support", variants=split(family)
    )
    deployment_stop(user=world.users["Admin"], deployment=deployment, comment="candidate answers rudely")
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.STOPPED and deployment.stopped_at is not None
    entry = AuditEntry.objects.get(action="experiment.stopped")
    assert entry.comment == "candidate answers rudely" and entry.actor == world.users["Admin"]
    assert "status" in problems_of(lambda: deployment_stop(user=world.users["Admin"], deployment=deployment))


def test_promoting_the_winner_files_a_production_request_through_the_gate(world, family):
    deployment = deployment_create(
        user=world.users["Architect"], model=family, name="support", variants=split(family)
    )
    request = experiment_promote_winner(
        user=world.users["Architect"], deployment=deployment, label="candidate-1"
    )
    assert PromotionRequest.objects.get() == request
    assert request.version == version(family, 3) and request.target == "production" and request.is_open
    assert "support" in request.comment
    assert "label" in problems_of(lambda: experiment_promote_winner(
        user=world.users["Architect"], deployment=deployment, label="production"))  # fmt: skip
    assert "label" in problems_of(lambda: experiment_promote_winner(
        user=world.users["Architect"], deployment=deployment, label="nope"))  # fmt: skip


# --- pages ----------------------------------------------------------------------------------------------


def form_data(model, rows, name="support"):
    data = {"model": model.pk, "name": name, "variants-TOTAL_FORMS": len(rows), "variants-INITIAL_FORMS": 0}
    for i, (label, version_pk, weight) in enumerate(rows):
        data.update({f"variants-{i}-label": label, f"variants-{i}-version": version_pk or "",
                     f"variants-{i}-weight": weight})  # fmt: skip
    return data


def test_the_form_asks_for_the_family_first_then_lists_only_its_versions(world, family):
    RegisteredModel.objects.create(name="elsewhere", task="causal_lm").versions.create(
        number=7, source="base"
    )
    client = world.client("Architect")
    assert 'id="family-form"' in client.get(reverse("registry:deployment-new")).content.decode()
    page = client.get(reverse("registry:deployment-new"), {"model": family.pk}).content.decode()
    assert "support-bot v3 (candidate)" in page and "follow production" in page and "elsewhere" not in page


def test_creating_through_the_form_redirects_to_the_dashboard(world, family):
    rows = [("production", None, 95), ("candidate-1", version(family, 3).pk, 5), ("", None, "")]
    response = world.client("Architect").post(reverse("registry:deployment-new"), form_data(family, rows))
    assert response.status_code == 302 and response["Location"] == reverse(
        "registry:deployment", args=["support"]
    )
    assert [v.weight for v in Deployment.objects.get(name="support").variants.all()] == [95, 5]


def test_the_form_shows_the_services_problems_beside_the_rows(world, family):
    rows = [("production", None, 90), ("production", version(family, 2).pk, 10)]
    response = world.client("Architect").post(
        reverse("registry:deployment-new"), form_data(family, rows, name="<b>bad name</b>")
    )
    page = response.content.decode()
    assert response.status_code == 400 and not Deployment.objects.exists()
    assert 'id="name-errors"' in page and "&lt;b&gt;bad name&lt;/b&gt;" in page and "<b>bad" not in page
    assert "used twice" in page and "Exactly one variant must serve production" in page


def test_the_edit_form_changes_the_split(world, family):
    deployment = deployment_create(
        user=world.users["Architect"], model=family, name="support", variants=split(family)
    )
    url = reverse("registry:deployment-edit", args=[deployment.name])
    assert 'value="candidate-1"' in world.client("Admin").get(url).content.decode()
    rows = [("production", None, 70), ("candidate-1", version(family, 3).pk, 30)]
    assert world.client("Admin").post(url, form_data(family, rows)).status_code == 302
    assert [v.weight for v in deployment.variants.all()] == [70, 30]


def test_the_list_shows_each_deployment_its_split_and_production(world, family):
    deployment_create(user=world.users["Architect"], model=family, name="support", variants=split(family))
    page = world.client("PM").get(reverse("registry:deployments")).content.decode()
    assert 'data-deployment="support"' in page and "production 90%" in page and "candidate-1 10%" in page
    assert "support-bot v2" in page and 'id="new-deployment"' not in page


def test_the_dashboards_actions_stop_and_promote(world, family):
    deployment = deployment_create(
        user=world.users["Architect"], model=family, name="support", variants=split(family)
    )
    client = world.client("Architect")
    page = client.get(reverse("registry:deployment", args=["support"])).content.decode()
    assert 'data-promote="candidate-1"' in page and 'id="stop-form"' in page
    promote = reverse("registry:deployment-promote", args=["support"])
    page = client.post(promote, {"label": "candidate-1"}, follow=True).content.decode()
    request = PromotionRequest.objects.get()
    link = reverse("registry:promotion", args=[request.pk])
    assert f'<a href="{link}">Promotion request #{request.pk}</a> for support-bot v3 to production' in page
    assert 'id="pending-promotions"' in page
    client.post(reverse("registry:deployment-stop", args=["support"]), {"comment": "done"})
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.STOPPED
    assert (
        'id="stop-form"' not in client.get(reverse("registry:deployment", args=["support"])).content.decode()
    )


def test_a_pm_sees_the_dashboard_but_cannot_stop_or_promote(world, family):
    deployment = deployment_create(
        user=world.users["Architect"], model=family, name="support", variants=split(family)
    )
    client = world.client("PM")
    page = client.get(reverse("registry:deployment", args=["support"])).content.decode()
    assert 'id="variant-stats"' in page and "data-promote" not in page and 'id="stop-form"' not in page
    assert client.post(reverse("registry:deployment-stop", args=["support"])).status_code == 403
    assert (
        client.post(
            reverse("registry:deployment-promote", args=["support"]), {"label": "candidate-1"}
        ).status_code
        == 403
    )
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.RUNNING and not PromotionRequest.objects.exists()
