"""Structured logs and request metrics.

Every log record carries the request id (taken from X-Request-ID or made up) and the job id of the job being run,
so an ELK-style collector can join the web request that queued a job with the worker lines that ran it.
"""

import contextvars
import json
import logging
import time
import uuid
from datetime import UTC, datetime

from prometheus_client import Counter, Histogram

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
job_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("job_id", default="-")

HTTP_REQUESTS = Counter(
    "llmops_http_requests_total", "HTTP requests by view, method and status", ["view", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "llmops_http_request_duration_seconds",
    "HTTP request latency by view and method",
    ["view", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id", "job_id"}


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.job_id = job_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id, job_id, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id_var.get()),
            "job_id": getattr(record, "job_id", job_id_var.get()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def _clean_request_id(raw: str | None) -> str:
    if raw and len(raw) <= 64 and all(c.isalnum() or c in "-_." for c in raw):
        return raw
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Sets the request id for logs and the response header, and records request count and latency by view."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = _clean_request_id(request.headers.get("X-Request-ID"))
        token = request_id_var.set(request_id)
        request.request_id = request_id
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match else "<unresolved>"
        HTTP_LATENCY.labels(view, request.method).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(view, request.method, str(response.status_code)).inc()
        response["X-Request-ID"] = request_id
        return response
