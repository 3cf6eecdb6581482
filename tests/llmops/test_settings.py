"""Settings come from the environment; production mode refuses to start without its secrets."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = "import django; django.setup(); from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.DEBUG)"


def start(env_overrides: dict, drop=("SECRET_KEY", "ALLOWED_HOSTS", "DEBUG")) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_overrides, DJANGO_SETTINGS_MODULE="llmops.settings")
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_production_mode_refuses_to_start_without_secret_key_and_names_it():
    result = start({"DEBUG": "0", "ALLOWED_HOSTS": "portal.example.com"})
    assert result.returncode != 0
    assert (
        "SECRET_KEY" in result.stderr
        and "ALLOWED_HOSTS" not in result.stderr.split("ImproperlyConfigured")[-1]
    )


def test_production_mode_names_every_missing_variable_at_once():
    result = start({"DEBUG": "0"})
    assert result.returncode != 0
    assert "SECRET_KEY, ALLOWED_HOSTS" in result.stderr


def test_production_mode_starts_with_its_variables_and_secures_cookies():
    result = start({"DEBUG": "0", "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "portal.example.com"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "False"]


def test_local_defaults_start_with_debug_on_and_no_variables():
    result = start({})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "True"


def test_a_malformed_boolean_is_reported_with_its_variable():
    result = start({"DEBUG": "maybe"})
    assert result.returncode != 0 and "DEBUG='maybe' is not a boolean" in result.stderr


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("yes", True), ("off", False), ("", True)])
def test_env_bool_reads_the_usual_spellings(monkeypatch, raw, expected):
    from llmops.settings import env_bool

    monkeypatch.setenv("SOME_FLAG", raw)
    assert env_bool("SOME_FLAG", True) is expected


def test_env_list_splits_on_commas_and_drops_blanks(monkeypatch):
    from llmops.settings import env_list

    monkeypatch.setenv("HOSTS", " a.example.com, ,b.example.com ")
    assert env_list("HOSTS", []) == ["a.example.com", "b.example.com"]


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    code = (
        "import django; django.setup(); from django.db import connection;"
        "c = connection.cursor(); c.execute('PRAGMA journal_mode'); print(c.fetchone()[0]);"
        "c.execute('PRAGMA busy_timeout'); print(c.fetchone()[0])"
    )
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="llmops.settings")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["wal", "20000"]
    assert (tmp_path / "db.sqlite3").exists()
