"""The compression API: a submit, read, list and cancel round trip; every refused setting in one 400 keyed by field
with nothing saved; the detail's benchmarks, ratios and quality; and the roles (PMs read, never submit)."""

from django.urls import reverse

from llmops.jobs import JobStatus
from tests.training_app.test_compress_views import base, finished_job, narrow, version  # noqa: F401 (fixtures)
from training_app.models import CompressionJob


def test_a_job_is_submitted_read_listed_and_cancelled_through_the_api(world, base, version, broker):  # noqa: F811
    api = world.api("Data Scientist")
    body = {"source": base.pk, "method": "int8_dynamic", "eval_dataset_version": version.pk}
    created = api.post(reverse("api-compressions"), body, format="json")
    assert created.status_code == 201, created.content
    job = created.json()
    assert job["status"] == "queued" and job["config"]["method"] == "int8_dynamic"
    assert job["eval_dataset_version"] == version.pk and job["eval_split"] == "test"
    detail = api.get(reverse("api-compression", args=[job["id"]])).json()
    assert detail["benchmarks"] == [] and detail["ratios"]["size_ratio"] is None
    assert detail["quality"]["report"] is None and detail["quality"]["pending"] is False
    listed = api.get(reverse("api-compressions")).json()
    assert [j["id"] for j in listed["results"]] == [job["id"]]
    cancelled = api.post(reverse("api-compression-cancel", args=[job["id"]]))
    assert cancelled.status_code == 202 and cancelled.json()["status"] == JobStatus.CANCELLED
    again = api.post(reverse("api-compression-cancel", args=[job["id"]]))
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


def test_refused_settings_come_back_in_one_400_keyed_by_field(world, base):  # noqa: F811
    body = {"source": base.pk, "method": "prune_magnitude",
            "options": {"sparsity": 1.5, "temperature": -1, "steps": 5}}  # fmt: skip
    api = world.api("Data Scientist")
    response = api.post(reverse("api-compressions"), body, format="json")
    assert response.status_code == 400
    assert {"sparsity", "temperature", "dataset_version"} <= set(response.json()["error"]["fields"])
    body["options"] = {"colour": "red"}
    response = api.post(reverse("api-compressions"), body, format="json")
    assert response.status_code == 400 and "colour" in response.json()["error"]["fields"]
    assert not CompressionJob.objects.exists()


def test_2_4_on_a_narrow_model_is_refused_naming_the_width(world, narrow):  # noqa: F811
    body = {"source": narrow.pk, "method": "prune_2_4"}
    response = world.api("Admin").post(reverse("api-compressions"), body, format="json")
    assert response.status_code == 400
    assert any("hidden_size is 30" in m for m in response.json()["error"]["fields"]["method"])


def test_the_detail_carries_benchmarks_ratios_and_quality(world, base, version):  # noqa: F811
    job = finished_job(base, version)
    data = world.api("PM").get(reverse("api-compression", args=[job.pk])).json()
    roles = {b["role"]: b for b in data["benchmarks"]}
    assert roles["source"]["size_bytes"] == 4_000_000 and roles["compressed"]["p50_b8_ms"] == 20.0
    assert data["ratios"]["size_ratio"] == 0.25 and data["ratios"]["speedup_b8"] == 2.0
    quality = data["quality"]
    assert (quality["baseline"], quality["candidate"]) == (0.8, 0.75)
    assert abs(quality["delta"] + 0.05) < 1e-9 and quality["unchanged"] == 0.75 and quality["paired"] == 4
    assert quality["report"] == job.comparison_id and quality["candidate_run"] == job.comparison.candidate_id
    assert data["result_version"] == job.result_version_id and data["result"]["size_after"] == 1_000_000


def test_a_pm_reads_compressions_but_may_not_submit_or_cancel(world, base, version):  # noqa: F811
    job = CompressionJob.objects.create(source=base, method="int8_dynamic", config={})
    pm = world.api("PM")
    assert pm.get(reverse("api-compressions")).status_code == 200
    assert pm.get(reverse("api-compression", args=[job.pk])).status_code == 200
    body = {"source": base.pk, "method": "int8_dynamic"}
    assert pm.post(reverse("api-compressions"), body, format="json").status_code == 403
    assert pm.post(reverse("api-compression-cancel", args=[job.pk])).status_code == 403
    assert CompressionJob.objects.count() == 1 and CompressionJob.objects.get().status == JobStatus.QUEUED
