"""The production stack: docker-compose.yml, the Dockerfiles it builds and the Prometheus alert rules.

No Docker engine is needed: the files are parsed and checked for what would break a deployment.
"""

import re
import shlex
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"

REQUIRED_SERVICES = {"postgres", "redis", "web", "gateway", "worker-cpu", "worker-gpu", "beat"}
LONG_RUNNING_APP_SERVICES = ["web", "gateway", "worker-cpu", "worker-gpu", "beat"]

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict:
    return compose()["services"]


def app_services() -> list[str]:
    """The services that run our image: the long-running ones plus the optional one-shot migrate."""
    return LONG_RUNNING_APP_SERVICES + (["migrate"] if "migrate" in services() else [])


def interpolate(value: str) -> str:
    """Resolve compose interpolation with no variable set: defaults win, required ones get a stand-in."""

    def replace(match: re.Match) -> str:
        if match["op"] in (":-", "-"):
            return match["arg"]
        return f"{match['name'].lower()}-value"

    return INTERPOLATION.sub(replace, value)


def environment(name: str) -> dict[str, str]:
    env = services()[name].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def tokens(name: str) -> list[str]:
    """The service's entrypoint + command as argv; `sh -c "..."` is unwrapped."""
    argv = []
    for key in ("entrypoint", "command"):
        part = services()[name].get(key) or []
        argv += shlex.split(part) if isinstance(part, str) else [str(arg) for arg in part]
    if argv[:2] in (["sh", "-c"], ["bash", "-c"], ["/bin/sh", "-c"]):
        argv = shlex.split(argv[2])
    return argv


def option(argv: list[str], *names: str) -> str | None:
    """The value of a command-line option given as `-Q cpu`, `--queues cpu` or `--queues=cpu`."""
    for index, arg in enumerate(argv):
        for name in names:
            if arg == name and index + 1 < len(argv):
                return argv[index + 1]
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def mounts(name: str) -> list[tuple[str, str]]:
    """(source, target) of each volume the service mounts, short or long syntax."""
    result = []
    for volume in services()[name].get("volumes") or []:
        if isinstance(volume, dict):
            result.append((volume.get("source", ""), volume["target"]))
        else:
            source, target = volume.split(":")[:2]
            result.append((source, target))
    return result


def is_named_volume(source: str) -> bool:
    return bool(source) and not source.startswith((".", "/", "~", "$"))


def depends_on(name: str) -> dict[str, str]:
    """{service: condition}; the list form means service_started."""
    deps = services()[name].get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {dep: (spec or {}).get("condition", "service_started") for dep, spec in deps.items()}


def dockerfiles() -> list[Path]:
    paths = set()
    for service in services().values():
        build = service.get("build")
        if build is None:
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = ROOT / build.get("context", ".")
        paths.add((context / build.get("dockerfile", "Dockerfile")).resolve())
    return sorted(paths)


def instructions(dockerfile: Path) -> list[str]:
    """Dockerfile instructions with line continuations joined and comments dropped."""
    lines = [line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\s*\n", " ", "\n".join(lines))
    return [line.strip() for line in joined.splitlines() if line.strip()]


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


# --- services -------------------------------------------------------------------------------------------


def test_compose_defines_postgres_redis_web_both_workers_and_beat():
    assert set(services()) >= REQUIRED_SERVICES


def test_web_serves_the_django_wsgi_app_with_gunicorn_on_port_8000():
    argv = tokens("web")
    assert Path(argv[0]).name == "gunicorn"
    assert "llmops.wsgi:application" in argv or "llmops.wsgi" in argv
    assert option(argv, "-b", "--bind") == "0.0.0.0:8000"


def test_the_gateway_serves_the_same_app_with_threads_on_its_own_port():
    argv = tokens("gateway")
    assert Path(argv[0]).name == "gunicorn" and "llmops.wsgi:application" in argv
    assert option(argv, "-b", "--bind") == "0.0.0.0:8001"
    assert int(option(argv, "--threads")) > 1
    assert "gateway" in interpolate(environment("gateway")["ALLOWED_HOSTS"]).split(",")
    assert "8001/healthz" in " ".join(services()["gateway"]["healthcheck"]["test"])


def test_web_has_a_healthcheck_on_healthz():
    test = services()["web"]["healthcheck"]["test"]
    assert "/healthz" in (test if isinstance(test, str) else " ".join(test))


def test_cpu_worker_consumes_only_the_cpu_queue():
    argv = tokens("worker-cpu")
    assert argv[:4] == ["celery", "-A", "llmops", "worker"]
    assert option(argv, "-Q", "--queues") == "cpu"


def test_gpu_worker_consumes_only_the_gpu_queue_one_job_at_a_time():
    argv = tokens("worker-gpu")
    assert argv[:4] == ["celery", "-A", "llmops", "worker"]
    assert option(argv, "-Q", "--queues") == "gpu"
    assert option(argv, "-c", "--concurrency") == "1"


def test_gpu_worker_reserves_an_nvidia_gpu():
    devices = services()["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        device.get("driver") == "nvidia" and "gpu" in device.get("capabilities", []) for device in devices
    )


def test_beat_runs_the_celery_scheduler_for_the_llmops_app():
    argv = tokens("beat")
    assert argv[:4] == ["celery", "-A", "llmops", "beat"]


def test_migrations_and_role_bootstrap_finish_before_the_app_starts():
    if "migrate" in services():
        steps = " ".join(tokens("migrate"))
        assert "manage.py migrate" in steps
        assert "manage.py bootstrap" in steps
        for name in LONG_RUNNING_APP_SERVICES:
            assert depends_on(name).get("migrate") == "service_completed_successfully", name
    else:
        entrypoint = (ROOT / "deploy" / "entrypoint.sh").read_text()
        assert "manage.py migrate" in entrypoint
        assert "manage.py bootstrap" in entrypoint


# --- environment and volumes ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", LONG_RUNNING_APP_SERVICES)
def test_app_service_reaches_postgres_and_redis_by_service_name(name):
    database = urlsplit(interpolate(environment(name)["DATABASE_URL"]))
    broker = urlsplit(interpolate(environment(name)["REDIS_URL"]))
    assert database.scheme.startswith("postgres")
    assert database.hostname == "postgres"
    assert broker.scheme == "redis"
    assert broker.hostname == "redis"


def test_app_services_share_one_environment():
    shared = [
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_KEY",
        "DEBUG",
        "ALLOWED_HOSTS",
        "ARTIFACT_ROOT",
        "LOG_FORMAT",
    ]
    first = {key: environment("web")[key] for key in shared}
    for name in app_services():
        assert {key: environment(name).get(key) for key in shared} == first, name


def test_production_settings_refuse_to_start_without_a_secret_key_and_run_without_debug():
    env = environment("web")
    assert re.fullmatch(r"\$\{SECRET_KEY:?\?[^}]*\}", env["SECRET_KEY"])
    assert env["DEBUG"] == "0"
    assert env["LOG_FORMAT"] == "json"


def test_every_app_service_mounts_the_same_artifacts_volume_at_artifact_root():
    volumes = set()
    for name in app_services():
        root = environment(name)["ARTIFACT_ROOT"]
        sources = [source for source, target in mounts(name) if target == root]
        assert len(sources) == 1 and is_named_volume(sources[0]), name
        volumes.add(sources[0])
    assert len(volumes) == 1


def test_named_volumes_are_declared_at_the_top_level():
    declared = set(compose().get("volumes") or {})
    used = {source for name in services() for source, _ in mounts(name) if is_named_volume(source)}
    assert used <= declared
    assert {"pgdata", "redisdata", "artifacts"} <= declared


def test_postgres_and_redis_keep_their_data_on_volumes():
    assert ("pgdata", "/var/lib/postgresql/data") in mounts("postgres")
    assert ("redisdata", "/data") in mounts("redis")
    assert services()["postgres"]["image"].startswith("postgres:15")
    assert services()["redis"]["image"].startswith("redis:7")
    assert option(tokens("redis"), "--appendonly") == "yes"


def test_postgres_and_redis_have_healthchecks_that_the_app_services_wait_for():
    assert "pg_isready" in " ".join(services()["postgres"]["healthcheck"]["test"])
    assert "redis-cli ping" in " ".join(services()["redis"]["healthcheck"]["test"])
    for name in app_services():
        deps = depends_on(name)
        assert deps.get("postgres") == "service_healthy", name
        assert deps.get("redis") == "service_healthy", name


# --- images ---------------------------------------------------------------------------------------------


def test_dockerfiles_named_by_build_sections_exist():
    assert dockerfiles()
    for dockerfile in dockerfiles():
        assert dockerfile.is_file(), dockerfile


def test_web_and_gpu_worker_are_built_from_different_images():
    web, gpu = services()["web"]["build"], services()["worker-gpu"]["build"]
    assert web["dockerfile"] != gpu["dockerfile"]
    assert "nvidia/cuda" in (ROOT / gpu["dockerfile"]).read_text()


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda path: path.name)
def test_dockerfile_installs_with_torch_pinned_by_the_constraints_file(dockerfile):
    installs = [line for line in instructions(dockerfile) if line.startswith("RUN") and "pip install" in line]
    assert any("-c constraints.txt" in line or "--constraint constraints.txt" in line for line in installs)
    assert re.search(r"^torch==\S+", (ROOT / "constraints.txt").read_text(), re.MULTILINE)


def test_cpu_image_takes_torch_from_the_cpu_wheel_index():
    assert "download.pytorch.org/whl/cpu" in (ROOT / "deploy" / "Dockerfile").read_text()


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda path: path.name)
def test_dockerfile_never_downloads_a_playwright_browser(dockerfile):
    assert "playwright install" not in dockerfile.read_text()


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda path: path.name)
def test_dockerfile_runs_the_app_as_a_non_root_user(dockerfile):
    users = [line.split()[1] for line in instructions(dockerfile) if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")


def test_build_context_leaves_out_the_venv_var_and_git():
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", "var", ".git"} <= ignored


# --- monitoring -----------------------------------------------------------------------------------------


def test_every_alert_rule_has_an_expression_a_severity_and_a_summary():
    rules = alert_rules()
    assert rules
    for rule in rules:
        assert rule["expr"], rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_alert_rules_cover_downtime_server_errors_queue_depth_and_failing_jobs():
    expressions = "\n".join(rule["expr"] for rule in alert_rules())
    assert re.search(r"\bup\{[^}]*\}\s*==\s*0", expressions)
    assert re.search(r'llmops_http_requests_total\{status=~"5\.\."\}', expressions)
    assert "llmops_queue_depth" in expressions
    assert 'llmops_jobs{status="failed"}' in expressions


def test_prometheus_scrapes_the_portal_metrics_and_loads_the_alert_rules():
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert any(Path(path).name == ALERTS.name for path in config["rule_files"])
    web_jobs = [
        job
        for job in config["scrape_configs"]
        if any(
            "web:8000" in target for static in job.get("static_configs", []) for target in static["targets"]
        )
        and job.get("metrics_path", "/metrics") == "/metrics"
    ]
    assert web_jobs
