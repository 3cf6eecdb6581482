"""bench/list_latency.py loads a notebook in SQL, times the list view and ends with its JSON summary line."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_quick_list_benchmark_prints_its_summary_as_the_last_line():
    proc = subprocess.run(
        [sys.executable, "bench/list_latency.py", "--quick", "--cases", "5000", "--reps", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["bench"] == "list"
    assert summary["cases"] == 5000
    assert summary["p95_ms"] >= summary["p50_ms"] > 0
    assert set(summary["per_kind"]) >= {"first", "filtered", "deep", "search_en", "search_zh"}
    assert summary["reference_p95_ms"] > 0 and summary["ratio"] > 0
