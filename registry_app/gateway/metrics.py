"""Prometheus metrics of the gateway, in the default registry (exposed at /metrics by llmops.views.metrics).

The names are read by deploy/ (alert rules, the Grafana dashboard): change them there too.
- llmops_gateway_requests_total{deployment,variant,version,endpoint,status}: every request after authentication
- llmops_gateway_request_seconds{deployment,version,endpoint}: wall time of answered requests (streams: to the end)
- llmops_gateway_errors_total{deployment,version,type}: type bad_request|not_found|rate_limited|engine|server
- llmops_gateway_tokens_total{version,kind}: kind prompt|completion
- llmops_gateway_cache_total{version,result}: response cache lookups, result hit|miss (hit rate = hit / sum)
- llmops_gateway_loaded_models: models resident in this process's model cache
``deployment`` is the deployment's name, or "" when the client named a family or pinned a version; ``version`` is
the ModelVersion's openai_id ("family:vN"), "" when none was resolved.
"""

from prometheus_client import Counter, Gauge, Histogram

METRIC_NAMES = (
    "llmops_gateway_requests_total",
    "llmops_gateway_request_seconds",
    "llmops_gateway_errors_total",
    "llmops_gateway_tokens_total",
    "llmops_gateway_cache_total",
    "llmops_gateway_loaded_models",
)

REQUESTS = Counter(
    "llmops_gateway_requests", "Gateway requests", ["deployment", "variant", "version", "endpoint", "status"]
)
REQUEST_SECONDS = Histogram(
    "llmops_gateway_request_seconds",
    "Gateway request latency",
    ["deployment", "version", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ERRORS = Counter("llmops_gateway_errors", "Gateway errors", ["deployment", "version", "type"])
TOKENS = Counter("llmops_gateway_tokens", "Tokens read and written", ["version", "kind"])
CACHE = Counter("llmops_gateway_cache", "Response cache lookups", ["version", "result"])
LOADED_MODELS = Gauge("llmops_gateway_loaded_models", "Models resident in the gateway's model cache")

ERROR_TYPES = {400: "bad_request", 404: "not_found", 429: "rate_limited"}


def error_type(status: int, engine: bool = False) -> str:
    if engine:
        return "engine"
    return ERROR_TYPES.get(status, "server" if status >= 500 else "bad_request")
