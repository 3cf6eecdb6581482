"""bench/serving.py runs end to end (gateway under gunicorn, then in-process) and ends with its summary line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


def test_the_quick_serving_benchmark_answers_every_request_and_prints_its_summary_last(tiny_dir):
    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("postgresql"):
        pytest.skip("the serving benchmark needs PostgreSQL")
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}_bench_serving"
    env = dict(os.environ, DATABASE_URL=url, REDIS_URL=settings.REDIS_URL)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.run(
        [sys.executable, "bench/serving.py", "--quick", "--seconds", "1", "--tiny", str(tiny_dir)], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["bench"] == "serving"
    assert summary["errors"] == 0
    assert summary["rps"] > 0 and summary["in_process"]["rps"] > 0
    assert summary["p95_ms"] >= summary["p50_ms"] > 0
    assert isinstance(summary["overhead_p50_ms"], float)
    assert summary["server_cores"]["gateway"] > 0 and summary["server_cores"]["in_process"] > 0
    assert summary["server_cpu_ms_per_request"]["gateway"] > 0
