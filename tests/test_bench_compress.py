"""bench/compress.py fine-tunes its sources, runs every method through compress() and ends with its summary line."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLASSIFIER_METHODS = ["int8_dynamic", "prune_mlp", "prune_heads", "prune_mlp+int8", "distill"]
LM_METHODS = ["int8_dynamic", "prune_mlp", "prune_magnitude"]
FIELDS = {"size_ratio", "parameter_ratio", "latency_speedup", "latency_speedup_b1", "quality_delta", "agreement",
          "target", "met"}  # fmt: skip


def test_the_quick_compression_benchmark_prints_one_line_per_method_and_the_summary_last(tiny_dir, tmp_path):
    proc = subprocess.run(
        [sys.executable, "bench/compress.py", "--quick", "--tiny", str(tiny_dir), "--scratch", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    lines = [json.loads(line) for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    summary = lines[-1]
    assert summary["bench"] == "compress" and summary["threads"]["benchmark"] >= 1
    results = summary["results"]
    assert lines[:-1] == results  # each method's line was printed as it finished, then gathered
    assert [(r["model"], r["method"]) for r in results] == [
        *(("tiny_bert", m) for m in CLASSIFIER_METHODS),
        *(("tiny", m) for m in LM_METHODS),
    ]
    for row in results:
        assert set(row) >= FIELDS, row
        assert 0 <= row["agreement"] <= 1 and row["latency_speedup"] > 0 and row["size_ratio"] > 0
    by_method = {(r["model"], r["method"]): r for r in results}
    int8 = by_method["tiny_bert", "int8_dynamic"]
    assert int8["size_ratio"] < 0.5  # int8 weights and embeddings: well under half the float32 folder
    assert int8["target"] == {"latency_speedup_min": 2.0, "agreement_min": 0.99}
    assert int8["met"] == (int8["latency_speedup"] >= 2.0 and int8["agreement"] >= 0.99)
    assert by_method["tiny_bert", "prune_mlp"]["parameter_ratio"] < 1  # the tensors really shrank
    assert by_method["tiny_bert", "distill"]["parameter_ratio"] <= 0.5  # a half-width student
    assert by_method["tiny", "prune_magnitude"]["parameter_ratio"] == 1  # unstructured: zeros, same shapes
    assert all(r["met"] is None and r["target"] == {} for r in results if r["model"] == "tiny")
