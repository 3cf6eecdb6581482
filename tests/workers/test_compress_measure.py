"""workers.compress.measure: benchmarks of the tiny models (in a child process and in-process), parameter counts
of quantised modules, compare() arithmetic and benchmark_pair's rounds. Timings are never asserted."""

import copy
import os
import shutil
import statistics

import pytest
import torch

from workers.compress.config import CompressError, ConfigError
from workers.compress.measure import (
    benchmark,
    benchmark_pair,
    combine_rounds,
    compare,
    count_parameters,
    fill_batch,
)

TEXTS = ["where is my parcel?", "I was charged twice for one order", "how do I send this back?"]
QUICK = {"warmup": 1, "repeats": 3, "threads": 1}


def folder_bytes(path) -> int:
    return sum(
        os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names
    )


def plain_count(path, cls) -> int:
    model = cls.from_pretrained(path, use_safetensors=True)
    return sum(p.numel() for p in model.parameters())


def assert_sane(result: dict, path, parameters: int, threads: int = 1) -> None:
    assert result["size_bytes"] == folder_bytes(path)
    assert result["parameters"] == parameters
    assert result["peak_memory_bytes"] >= result["resident_bytes"] > 0
    assert (
        result["peak_memory_bytes"] > result["model_memory_bytes"] >= 0
    )  # 0 possible in-process (reused heap)
    assert result["load_seconds"] > 0
    assert set(result["latency"]) == {"1", "8"}
    for figures in result["latency"].values():
        assert 0 < figures["p50_ms"] <= figures["p95_ms"]
        assert figures["mean_ms"] > 0
    assert result["throughput"] == pytest.approx(8 / (result["latency"]["8"]["mean_ms"] / 1000))
    assert result["threads"] == threads
    assert result["device"] == "cpu"
    assert result["texts"] == len(TEXTS)


def test_it_benchmarks_a_causal_lm_in_a_fresh_process(tiny_dir):
    from transformers import AutoModelForCausalLM

    result = benchmark(tiny_dir, "causal_lm", texts=TEXTS, max_new_tokens=4, **QUICK)

    assert_sane(result, tiny_dir, plain_count(tiny_dir, AutoModelForCausalLM))
    assert result["isolated"] is True
    assert result["model_memory_bytes"] > 0  # a fresh process: loading the model raised its resident set
    assert result["max_new_tokens"] == 4
    # every row generates exactly max_new_tokens (eos ignored), so tokens/s is rows x tokens / time
    assert result["tokens_per_s"] == pytest.approx(result["throughput"] * 4)


def test_it_benchmarks_a_classifier_in_process(tiny_bert_dir):
    from transformers import AutoModelForSequenceClassification

    result = benchmark(tiny_bert_dir, "classification", texts=TEXTS, isolate=False, **{**QUICK, "threads": 2})

    assert_sane(
        result, tiny_bert_dir, plain_count(tiny_bert_dir, AutoModelForSequenceClassification), threads=2
    )
    assert torch.get_num_threads() == 1  # the caller's setting is back
    assert result["isolated"] is False
    assert result["tokens_per_s"] is None
    assert result["max_new_tokens"] is None


def test_a_broken_folder_raises_compress_error_naming_it(tiny_bert_dir, tmp_path):
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_bert_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")

    with pytest.raises(CompressError) as caught:
        benchmark(broken, "classification", texts=TEXTS, **QUICK)

    assert str(broken) in str(caught.value)


def test_a_missing_folder_raises_compress_error_from_the_child(tmp_path):
    missing = tmp_path / "nowhere"

    with pytest.raises(CompressError, match=str(missing)):
        benchmark(missing, "causal_lm", texts=TEXTS, **QUICK)


def test_it_rejects_bad_arguments_naming_every_one(tiny_bert_dir):
    with pytest.raises(ConfigError) as caught:
        benchmark(tiny_bert_dir, "regression", texts=[], batch_sizes=(0,), repeats=0, threads=0, device="tpu")

    assert set(caught.value.problems) == {"task", "texts", "batch_sizes", "repeats", "threads", "device"}


def test_batches_cycle_the_texts_to_fill_each_size():
    assert fill_batch(["a", "b", "c"], 1) == ["a"]
    assert fill_batch(["a", "b", "c"], 8) == ["a", "b", "c", "a", "b", "c", "a", "b"]


def test_a_saved_int8_folder_counts_as_many_parameters_as_its_source_and_is_smaller(tiny_bert_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from workers.compress.config import CompressConfig
    from workers.compress.quantize import quantize_model, save_quantized

    config = CompressConfig(
        method="int8_dynamic", model_path=str(tiny_bert_dir), output_dir=str(tmp_path), task="classification"
    )
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, use_safetensors=True).eval()
    source_count = sum(p.numel() for p in model.parameters())
    details = quantize_model(model, config)
    save_quantized(
        model, AutoTokenizer.from_pretrained(tiny_bert_dir), tmp_path / "int8", config, details, tiny_bert_dir
    )

    result = benchmark(tmp_path / "int8", "classification", texts=TEXTS, isolate=False, **QUICK)

    assert_sane(result, tmp_path / "int8", source_count)
    assert result["size_bytes"] < folder_bytes(tiny_bert_dir)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_it_counts_dynamic_int8_weights_that_parameters_misses(tiny_bert_dir):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, use_safetensors=True).eval()
    before = count_parameters(model)
    quantized = torch.ao.quantization.quantize_dynamic(
        copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8
    )
    linears = [m for m in quantized.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]

    assert linears  # the quantisation did replace the Linear layers
    assert sum(p.numel() for p in quantized.parameters()) < before  # which model.parameters() no longer sees
    assert count_parameters(quantized) == before == sum(p.numel() for p in model.parameters())


def test_it_counts_torchao_weights_at_their_logical_size():
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    model = torch.nn.Sequential(
        torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 32, bias=False)
    )
    before = count_parameters(model)
    quantize_(model, Int8WeightOnlyConfig())

    assert "Int8" in type(model[0].weight).__name__  # torchao's tensor subclass, packed int8 inside
    assert count_parameters(model) == before == 64 * 128 + 128 + 128 * 32


def test_tied_weights_count_once(tiny_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_dir, use_safetensors=True)
    model.lm_head.weight = model.model.embed_tokens.weight

    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


def result(size, params, memory, p50s, throughput, texts="abc"):
    return {
        "task": "classification", "texts_sha256": texts, "max_new_tokens": None, "size_bytes": size,
        "parameters": params, "peak_memory_bytes": memory, "model_memory_bytes": memory // 2,
        "latency": {b: {"p50_ms": v, "p95_ms": v * 2, "mean_ms": v} for b, v in p50s.items()},
        "throughput": throughput, "tokens_per_s": None, "load_seconds": 1.0,
    }  # fmt: skip


def test_compare_divides_compressed_by_source_and_speedup_source_by_compressed():
    source = result(400, 100, 1000, {"1": 10.0, "8": 40.0}, 200.0)
    compressed = result(100, 100, 500, {"1": 5.0, "8": 10.0}, 800.0)

    ratios = compare(source, compressed)

    assert ratios["size_ratio"] == 0.25
    assert ratios["parameter_ratio"] == 1.0
    assert ratios["memory_ratio"] == 0.5
    assert ratios["model_memory_ratio"] == 0.5
    assert ratios["resident_ratio"] is None  # not measured in these two
    assert ratios["speedup"] == {"1": 2.0, "8": 4.0}
    assert ratios["throughput_ratio"] == 4.0
    assert ratios["tokens_per_s_ratio"] is None


def test_compare_refuses_benchmarks_of_different_texts_or_batch_sizes():
    source = result(1, 1, 1, {"1": 1.0}, 1.0)
    with pytest.raises(ValueError, match="texts_sha256"):
        compare(source, result(1, 1, 1, {"1": 1.0}, 1.0, texts="other"))
    with pytest.raises(ValueError, match="batch sizes"):
        compare(source, result(1, 1, 1, {"1": 1.0, "8": 1.0}, 1.0))


def test_benchmark_pair_measures_both_models_in_each_round(tiny_bert_dir, tmp_path):
    copied = tmp_path / "copy"
    shutil.copytree(tiny_bert_dir, copied)

    source, compressed = benchmark_pair(
        tiny_bert_dir, copied, "classification", texts=TEXTS, batch_sizes=(1, 8), rounds=2, **QUICK
    )

    assert source["model_path"] == str(tiny_bert_dir) and compressed["model_path"] == str(copied)
    for measured in (source, compressed):
        assert measured["rounds"] == 2 and measured["isolated"] is True
        for size in ("1", "8"):
            rounds = measured["round_p50_ms"][size]
            assert len(rounds) == 2
            assert measured["latency"][size]["p50_ms"] == statistics.median(rounds)
    assert compare(source, compressed)["parameter_ratio"] == 1.0


def test_rounds_combine_into_the_median_of_each_figure():
    rounds = [result(100, 10, memory, {"1": p50}, throughput) for memory, p50, throughput in
              ((1000, 9.0, 50.0), (3000, 1.0, 70.0), (2000, 4.0, 60.0))]  # fmt: skip

    combined = combine_rounds(rounds)

    assert combined["latency"]["1"] == {"p50_ms": 4.0, "p95_ms": 8.0, "mean_ms": 4.0}
    assert combined["round_p50_ms"] == {"1": [9.0, 1.0, 4.0]}
    assert combined["throughput"] == 60.0 and combined["peak_memory_bytes"] == 2000
    assert combined["rounds"] == 3 and combined["parameters"] == 10


def test_benchmark_pair_rejects_zero_rounds(tiny_bert_dir):
    with pytest.raises(ConfigError, match="rounds"):
        benchmark_pair(tiny_bert_dir, tiny_bert_dir, "classification", texts=TEXTS, rounds=0)
