"""The monitoring files under deploy/: the Prometheus alert rules and the Grafana dashboard of the gateway.

Every metric a rule or a panel reads must be one the code exports (the gateway's METRIC_NAMES, the portal's HTTP
metrics and job gauges), so renaming a metric without updating deploy/ fails here rather than silently in
production. Metric names are found by stripping a PromQL expression of its strings, label matchers, ranges and
grouping clauses and keeping the identifiers that are neither functions nor keywords.
"""

import json
import re
from pathlib import Path

import yaml

from llmops.metrics import JobsCollector
from llmops.observability import HTTP_LATENCY, HTTP_REQUESTS
from registry_app.gateway import metrics as gateway_metrics

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "llmops-gateway.json"
PROMETHEUS_OWN = {"up", "probe_success"}  # written by Prometheus and the blackbox exporter
KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_names(collectors) -> set[str]:
    """The series names a scrape shows for these collectors (counters get _total, histograms three series)."""
    names = set()
    for collector in collectors:
        for family in collector.describe():
            names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def known_metrics() -> set[str]:
    gateway = {
        name + suffix
        for name in gateway_metrics.METRIC_NAMES
        for suffix in (("_bucket", "_sum", "_count") if name.endswith("_seconds") else ("",))
    }
    return gateway | exported_names([HTTP_REQUESTS, HTTP_LATENCY, JobsCollector()]) | PROMETHEUS_OWN


def metric_names(expr: str) -> set[str]:
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][\w:]*)\s*(\()?", text):
        if not match.group(2) and match.group(1) not in KEYWORDS:
            names.add(match.group(1))
    return names


def alert_groups() -> dict[str, list[dict]]:
    return {g["name"]: g["rules"] for g in yaml.safe_load(ALERTS.read_text())["groups"]}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_metric_names_are_read_out_of_promql():
    expr = ('histogram_quantile(0.95, sum by (version, le) (rate(a_bucket{x=~"5..", y="b c"}[5m]))) > 10 '
            'and on (version) sum(rate(b_total[$__rate_interval] offset 1d)) / scalar(c) unless up == 0')  # fmt: skip
    assert metric_names(expr) == {"a_bucket", "b_total", "c", "up"}


def test_the_gateways_metric_names_are_the_names_it_exports():
    collectors = [gateway_metrics.REQUESTS, gateway_metrics.REQUEST_SECONDS, gateway_metrics.ERRORS,
                  gateway_metrics.TOKENS, gateway_metrics.CACHE, gateway_metrics.LOADED_MODELS]  # fmt: skip
    exported = exported_names(collectors)
    assert set(gateway_metrics.METRIC_NAMES) <= exported | {"llmops_gateway_request_seconds"}


def test_every_alert_rule_has_an_expression_a_severity_and_a_summary():
    for group, rules in alert_groups().items():
        for rule in rules:
            assert rule["expr"].strip() and rule["labels"]["severity"] in ("warning", "critical"), rule[
                "alert"
            ]
            assert rule["annotations"]["summary"].strip(), rule["alert"]
            if group == "llmops-gateway":
                assert re.fullmatch(r"\d+[smh]", str(rule["for"])), rule["alert"]


def test_the_gateway_rules_alert_on_error_rate_and_p95_latency_per_version():
    rules = {rule["alert"]: rule["expr"] for rule in alert_groups()["llmops-gateway"]}
    errors = rules["GatewayHighErrorRate"]
    assert "by (deployment, version)" in errors and "> 0.05" in errors
    assert re.search(r'llmops_gateway_requests_total\{status=~"5\.\."\}', errors)
    latency = rules["GatewayLatencyP95High"]
    assert "histogram_quantile(0.95" in latency and "llmops_gateway_request_seconds_bucket" in latency
    assert "le)" in latency  # the quantile keeps the bucket label


def test_every_metric_an_alert_reads_is_exported():
    known = known_metrics()
    for rules in alert_groups().values():
        for rule in rules:
            assert metric_names(rule["expr"]) <= known, (rule["alert"], metric_names(rule["expr"]) - known)


def test_prometheus_scrapes_the_gateway_process():
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["llmops-gateway"]["static_configs"][0]["targets"] == ["gateway:8001"]
    assert jobs["llmops-gateway"].get("metrics_path", "/metrics") == "/metrics"


def test_the_dashboard_has_a_prometheus_datasource_variable_used_by_every_panel():
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]


def test_every_metric_a_panel_reads_is_exported_and_every_gateway_metric_is_shown():
    known, shown = known_metrics(), set()
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names <= known, (panel["title"], names - known)
            shown |= names
    bases = {re.sub(r"_(bucket|sum|count)$", "", name) for name in shown}
    assert set(gateway_metrics.METRIC_NAMES) <= bases
    titles = " ".join(p["title"].lower() for p in dashboard()["panels"])
    for topic in (
        "requests per second",
        "error rate",
        "p50 / p95",
        "tokens",
        "cache hit rate",
        "loaded models",
    ):
        assert topic in titles
