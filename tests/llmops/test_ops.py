"""Operations: /healthz, /metrics, structured logs with request and job ids."""

import json
import logging

from django.urls import reverse

from llmops.jobs import broker_lists
from llmops.models import DiagnosticJob
from llmops.observability import ContextFilter, JsonFormatter, job_id_var


def test_healthz_is_200_when_database_and_broker_answer(client, db, broker):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_healthz_is_503_and_names_the_broker_when_it_is_down(client, db, settings):
    from scripts.services import free_port

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    body = client.get(reverse("healthz"))
    assert body.status_code == 503
    checks = body.json()["checks"]
    assert checks["database"] == "ok" and checks["broker"].startswith("failed: ConnectionError")


def test_metrics_count_requests_by_view_and_report_jobs_and_queue_depth(client, world, broker):
    DiagnosticJob.objects.create(seconds=0)
    broker.rpush("gpu", "a", "b")
    broker.rpush(broker_lists("gpu")[5], "c")  # a normal-priority job's list (llmops.jobs.broker_priority)
    world.client("PM").get(reverse("home"))
    text = client.get(reverse("metrics")).content.decode()
    assert 'llmops_http_requests_total{method="GET",status="200",view="home"}' in text
    assert 'llmops_http_request_duration_seconds_bucket{le="0.005",method="GET",view="home"}' in text
    assert 'llmops_jobs{status="queued",type="diagnosticjob"} 1.0' in text
    assert 'llmops_queue_depth{queue="gpu"} 3.0' in text and 'llmops_queue_depth{queue="cpu"} 0.0' in text


def test_metrics_can_require_a_token(client, db, settings):
    settings.METRICS_TOKEN = "s3cret"
    assert client.get(reverse("metrics")).status_code == 401
    assert client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


def test_a_request_id_is_echoed_and_a_fresh_one_made_when_missing_or_unsafe(client, db, broker):
    assert client.get(reverse("healthz"), HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    made = client.get(reverse("healthz"), HTTP_X_REQUEST_ID="bad id\n")["X-Request-ID"]
    assert len(made) == 32 and made.isalnum()


def test_log_lines_are_json_with_request_and_job_ids():
    record = logging.LogRecord("llmops.jobs", logging.INFO, __file__, 1, "job %s", ("started",), None)
    record.attempt = 2
    token = job_id_var.set("diagnosticjob:7")
    try:
        ContextFilter().filter(record)
    finally:
        job_id_var.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "job started" and line["job_id"] == "diagnosticjob:7"
    assert line["request_id"] == "-" and line["attempt"] == 2 and line["level"] == "INFO"
