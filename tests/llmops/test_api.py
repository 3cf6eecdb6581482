"""The REST API: OpenAPI schema, offline docs, consistent error bodies, diagnostic jobs."""

from django.urls import reverse

from llmops.jobs import JobStatus
from llmops.models import DiagnosticJob


def test_the_openapi_schema_lists_our_endpoints_and_the_token_scheme(world):
    response = world.api("PM").get(reverse("api-schema"), {"format": "json"})
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/me", "/api/v1/diagnostics/jobs", "/api/v1/diagnostics/jobs/{id}/cancel"} <= set(
        schema["paths"]
    )
    assert schema["components"]["securitySchemes"]["ApiToken"]["scheme"] == "bearer"


def test_the_docs_page_is_served_offline_from_the_sidecar(world):
    html = world.client("PM").get(reverse("api-docs")).content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()


def test_invalid_input_names_every_field_in_one_error_body(world, broker):
    response = world.api("Admin").post(
        reverse("api-diagnostic-jobs"), {"seconds": -5, "queue": "tpu"}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["status"], error["code"]) == (400, "invalid")
    assert set(error["fields"]) == {"seconds", "queue"}
    assert DiagnosticJob.objects.count() == 0


def test_an_unknown_api_path_is_a_json_404(world):
    response = world.api("PM").get("/api/v1/no-such-thing")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_a_missing_job_is_a_json_404(world):
    response = world.api("Admin").get(reverse("api-diagnostic-job", args=[999999]))
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_an_admin_queues_reads_and_cancels_a_job_through_the_api(world, broker):
    api = world.api("Admin")
    created = api.post(reverse("api-diagnostic-jobs"), {"seconds": 30, "queue": "gpu"}, format="json").json()
    assert created["status"] == "queued" and created["queue"] == "gpu"
    assert api.get(reverse("api-diagnostic-job", args=[created["id"]])).json()["id"] == created["id"]
    cancelled = api.post(reverse("api-diagnostic-cancel", args=[created["id"]]))
    assert cancelled.status_code == 202 and cancelled.json()["status"] == JobStatus.CANCELLED
    again = api.post(reverse("api-diagnostic-cancel", args=[created["id"]]))
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


def test_the_job_list_is_paginated_newest_first(world):
    for seconds in (1, 2, 3):
        DiagnosticJob.objects.create(seconds=seconds)
    page = world.api("Admin").get(reverse("api-diagnostic-jobs"), {"limit": 2}).json()
    assert page["count"] == 3 and [job["seconds"] for job in page["results"]] == [3, 2]
    assert "offset=2" in page["next"]


def test_the_openapi_schema_generates_without_a_warning(tmp_path):
    """Warnings there mean a wrong schema: e.g. two views' nested InputSerializers merged into one component."""
    from django.core.management import call_command

    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "schema.yaml"))
    schema = (tmp_path / "schema.yaml").read_text()
    assert "CaseStatusInputRequest" in schema and "CaseCommentInputRequest" in schema
