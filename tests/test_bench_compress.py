"""bench/compress.py fine-tunes its sources, runs every method through compress() and ends with its summary line."""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLASSIFIER_METHODS = [
    "int8_dynamic",
    "int8_dynamic_token",
    "prune_mlp",
    "prune_heads",
    "prune_mlp+int8",
    "distill",
]
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
    assert by_method["tiny_bert", "int8_dynamic_token"]["target"] == int8["target"]
    assert by_method["tiny_bert", "prune_mlp"]["parameter_ratio"] < 1  # the tensors really shrank
    assert by_method["tiny_bert", "distill"]["parameter_ratio"] <= 0.5  # a half-width student
    assert by_method["tiny", "prune_magnitude"]["parameter_ratio"] == 1  # unstructured: zeros, same shapes
    assert all(r["met"] is None and r["target"] == {} for r in results if r["model"] == "tiny")


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_compress", ROOT / "bench" / "compress.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def phrasing(template: str) -> re.Pattern:
    return re.compile(re.sub(r"\\\{\w+\\\}", ".+?", re.escape(template)), re.IGNORECASE)


def test_the_intent_test_rows_are_phrased_only_with_templates_and_slot_values_training_never_sees(tmp_path):
    bench = load_bench()
    import _intents as intents  # loaded by the bench from bench/

    data = bench.write_data(tmp_path, 300, 150)
    again = bench.write_data(tmp_path / "again", 300, 150)  # seeded: the same rows every time
    assert again["test_rows"] == data["test_rows"]
    assert Path(again["train"]).read_text() == Path(data["train"]).read_text()
    train = [json.loads(line) for line in Path(data["train"]).read_text().splitlines()]
    test = data["test_rows"]
    assert len(train) == 300 and len(test) == 150 and {r["label"] for r in test} == set(bench.INTENTS)
    seen = [phrasing(t) for ts in intents.TRAIN_TEMPLATES.values() for t in ts]
    held_out = {label: [phrasing(t) for t in ts] for label, ts in intents.TEST_TEMPLATES.items()}
    for row in test:
        assert not any(p.search(row["text"]) for p in seen), row
        assert any(p.search(row["text"]) for p in held_out[row["label"]]), row
    for row in train:
        assert not any(p.search(row["text"]) for ps in held_out.values() for p in ps), row
    products = intents.HELD_OUT_SLOTS["product"]
    assert not any(p in r["text"] for r in train for p in products)
    assert any(p in r["text"] for r in test for p in products)
