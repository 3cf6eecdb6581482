"""bench/dataset_build.py builds a version from a generated file and ends with its JSON summary line."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_small_dataset_build_benchmark_prints_its_summary_with_the_cpu_split_as_the_last_line():
    proc = subprocess.run([sys.executable, "bench/dataset_build.py", "--rows", "3000"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["bench"] == "dataset_build" and summary["rows"] == 3000
    assert summary["dedup_recall"] >= 0.9 and summary["false_drops"] == 0
    assert 2400 < summary["kept"] < 3000
    cpu = summary["cpu_seconds"]
    assert set(cpu) == {"build_process", "forked_children", "postgres_backend"}
    assert cpu["build_process"] > 0 and cpu["forked_children"] > 0 and cpu["postgres_backend"] > 0
    assert abs(summary["cpu_us_per_row"] - sum(cpu.values()) / 3000 * 1e6) < 100  # the rounded figures' sum
    assert summary["cpu_budget_us_per_row"] == 100
    assert len(summary["content_sha256"]) == 64
    assert set(summary["exports_sha256"]) == {"jsonl", "parquet", "hf"}
