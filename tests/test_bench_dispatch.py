"""bench/dispatch.py runs end to end on services it starts itself and ends with its JSON summary line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.worker
def test_the_quick_dispatch_benchmark_prints_its_summary_as_the_last_line():
    proc = subprocess.run(
        [sys.executable, "bench/dispatch.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["bench"] == "dispatch"
    assert summary["jobs"] == 20
    assert summary["p50_ms"] > 0
    assert summary["p95_ms"] >= summary["p50_ms"]
