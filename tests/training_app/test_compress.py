"""Compression jobs through the services and a real gpu-queue worker: bad settings refused before queuing (every
problem at once, nothing saved), a run registering a compressed version with its lineage, benchmarked beside its
source and scored through the evaluation app."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from safetensors.torch import save_file

from evaluation_app.models import ComparisonReport, EvalRun
from llmops.jobs import JobStatus
from registry_app.models import ModelVersion, VersionFormat, VersionSource
from registry_app.services import base_model_register
from tests.conftest import wait_until
from tests.training_app.conftest import ready_version
from training_app.models import CompressionJob, VersionBenchmark
from training_app.services.compress import compression_submit
from training_app.services.compress_run import compression_run

ROOT = Path(__file__).resolve().parents[2]
QUICK_BENCH = {
    "COMPRESSION_BENCH_ROUNDS": 1,
    "COMPRESSION_BENCH_REPEATS": 2,
    "COMPRESSION_BENCH_MAX_NEW_TOKENS": 4,
}


@pytest.fixture
def quick_bench(settings):
    for name, value in QUICK_BENCH.items():
        setattr(settings, name, value)


def _problems(**kwargs) -> dict:
    with pytest.raises(ValidationError) as caught:
        compression_submit(**kwargs)
    assert not CompressionJob.objects.exists()
    return caught.value.message_dict


def test_bad_settings_are_all_listed_at_once_and_nothing_is_queued(scientist, base):
    problems = _problems(user=scientist, source=base, method="prune_mlp",
                         options={"sparsity": 1.5, "temperature": 0, "colour": "red"})  # fmt: skip
    assert "strictly between 0 and 1" in problems["sparsity"][0]
    assert "must be above 0" in problems["temperature"][0]
    assert problems["colour"] == ["is not a compression setting"]
    problems = _problems(user=scientist, source=base, method="shrink", options={"model_path": "/etc"})
    assert "must be one of" in problems["method"][0] and "set by the portal" in problems["model_path"][0]


def test_the_source_teaches_only_a_recovery_that_trains(scientist, base):
    for method, options in (("int8_dynamic", {}), ("prune_mlp", {"steps": 0})):
        problems = _problems(
            user=scientist, source=base, method=method, options={"recovery_teacher": True, **options}
        )
        assert problems["recovery_teacher"] == ["applies to pruning with recovery steps (steps ≥ 1)"]
    problems = _problems(user=scientist, source=base, method="prune_mlp", options={"recovery_teacher": "yes"})
    assert problems["recovery_teacher"] == ["must be true or false (got 'yes')"]


def test_int4_is_refused_with_the_reason_when_the_workers_have_no_gpu(scientist, base, settings):
    settings.GPU_WORKERS_CUDA = False
    problems = _problems(user=scientist, source=base, method="int4_weight_only", options={"group_size": 32})
    assert "INT4" in problems["method"][0] and "kernel" in problems["method"][0]
    settings.GPU_WORKERS_CUDA = True  # with a GPU the same request passes the hardware check
    job = compression_submit(
        user=scientist, source=base, method="int4_weight_only", options={"group_size": 32}
    )
    assert job.config["group_size"] == 32


def test_2_4_pruning_is_refused_on_a_model_whose_widths_do_not_divide_by_4(scientist, tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": 30, "intermediate_size": 64, "num_attention_heads": 3,
        "num_key_value_heads": 3, "num_hidden_layers": 1, "vocab_size": 10}))  # fmt: skip
    import torch

    save_file({"w": torch.zeros(1)}, folder / "model.safetensors")
    odd = base_model_register(user=scientist, name="odd", path=folder)
    problems = _problems(user=scientist, source=odd, method="prune_2_4", options={})
    assert any("divisible by 4" in m and "hidden_size is 30" in m for m in problems["method"])


def test_structured_pruning_that_would_remove_nothing_or_everything_is_a_sparsity_error(scientist, base):
    assert "removes none" in _problems(user=scientist, source=base, method="prune_heads",
                                       options={"sparsity": 0.1})["sparsity"][0]  # fmt: skip
    assert "remove them all" in _problems(user=scientist, source=base, method="prune_heads",
                                          options={"sparsity": 0.9})["sparsity"][0]  # fmt: skip


def test_distillation_needs_a_student_and_training_data(scientist, base):
    problems = _problems(user=scientist, source=base, method="distill", options={"steps": 5})
    assert "choose a student" in problems["student"][0]
    assert "dataset version is needed" in problems["dataset_version"][0]
    problems = _problems(user=scientist, source=base, method="distill",
                         options={"steps": 5, "student_layers": 9, "alpha": 2})  # fmt: skip
    assert "must not exceed the teacher's 2" in problems["student_layers"][0]
    assert "between 0 and 1" in problems["alpha"][0]


def test_a_quantised_version_or_an_adapter_without_its_merged_model_cannot_be_compressed(scientist, base):
    quantised = ModelVersion.objects.create(model=base.model, number=2, source=VersionSource.COMPRESSION,
                                            format=VersionFormat.QUANTIZED, artifact_uri=base.artifact_uri,
                                            sha256="q" * 64, base=base)  # fmt: skip
    assert "already quantised" in _problems(user=scientist, source=quantised, method="prune_mlp",
                                            options={})["source"][0]  # fmt: skip
    adapter = ModelVersion.objects.create(model=base.model, number=3, source=VersionSource.FINE_TUNE,
                                          format=VersionFormat.PEFT_ADAPTER, artifact_uri="/gone",
                                          sha256="a" * 64, base=base, lineage={"merged_model": "/gone/merged"})  # fmt: skip
    assert "merged model is not on disk" in _problems(user=scientist, source=adapter, method="int8_dynamic",
                                                      options={})["source"][0]  # fmt: skip


def test_a_valid_request_queues_a_job_whose_paths_the_portal_set(scientist, base, settings):
    job = compression_submit(user=scientist, source=base, method="int8_dynamic")
    assert job.status == JobStatus.QUEUED and job.celery_task_id
    assert job.config["model_path"] == base.artifact_uri and job.config["device"] == "cpu"
    assert job.config["output_dir"] == job.output_dir and job.output_dir.startswith(
        str(settings.ARTIFACT_ROOT)
    )


def test_the_web_process_validates_a_compression_without_importing_torch():
    code = (
        "import os, sys, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'llmops.settings'); django.setup(); "
        "from workers.compress.config import CompressConfig, ConfigError, check_shapes, check_hardware; "
        "c = CompressConfig(method='prune_2_4', model_path='m', output_dir='o', sparsity=0.3); "
        "from training_app.services import compress; "
        "print(check_hardware(CompressConfig(method='int4_weight_only', model_path='m', output_dir='o'), cuda=False)); "
        "print(check_shapes(c, {'hidden_size': 30, 'num_attention_heads': 3, 'intermediate_size': 8})); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert "INT4 weight-only needs a CUDA GPU" in out.stdout and "hidden_size is 30" in out.stdout
    assert out.stdout.strip().endswith("False")


def _run_here(job: CompressionJob) -> CompressionJob:
    compression_run(job_id=job.pk, task_id=job.celery_task_id, hostname="test")
    job.refresh_from_db()
    return job


def test_magnitude_pruning_with_recovery_registers_a_sparse_version_benchmarked_beside_its_source(
    scientist, base, quick_bench
):
    data = ready_version(scientist)
    job = compression_submit(user=scientist, source=base, method="prune_magnitude", dataset_version=data,
                             options={"sparsity": 0.5, "steps": 6, "batch_size": 4, "max_seq_len": 128})  # fmt: skip
    job = _run_here(job)
    assert job.status == JobStatus.SUCCEEDED, job.error
    version = job.result_version
    assert version.source == VersionSource.COMPRESSION and version.format == VersionFormat.HF
    assert version.base_id == base.pk and version.lineage["method"] == "prune_magnitude"
    assert version.lineage["dataset_version"] == data.pk
    assert job.result["sparsity_reached"] == pytest.approx(0.5, abs=0.01)
    assert [step for step, _ in job.result["train_losses"]][-1] == 6
    roles = dict(VersionBenchmark.objects.filter(job=job).values_list("role", "version"))
    assert roles == {"source": base.pk, "compressed": version.pk}
    assert job.result["benchmark"]["parameter_ratio"] == pytest.approx(1.0)


@pytest.mark.worker
def test_an_int8_job_runs_on_a_real_gpu_queue_worker_and_both_versions_are_scored(
    scientist, base, start_worker, settings
):
    data = ready_version(scientist)
    start_worker(queues="gpu", ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT), EVAL_AUTO_MAX_NEW_TOKENS="8",
                 **{k: str(v) for k, v in QUICK_BENCH.items()})  # fmt: skip
    job = compression_submit(user=scientist, source=base, method="int8_dynamic", eval_dataset_version=data)

    def finished():
        job.refresh_from_db()
        return job.is_terminal

    wait_until(finished, timeout=180, interval=0.2, what="the compression to finish on the worker")
    assert job.status == JobStatus.SUCCEEDED, job.error
    version = job.result_version
    assert version.format == VersionFormat.QUANTIZED and version.size_bytes < base.size_bytes
    small, big = (VersionBenchmark.objects.get(job=job, role=r) for r in ("compressed", "source"))
    assert small.size_bytes < big.size_bytes and small.p50_b8_ms and big.p50_b8_ms
    ended = ("ready", "refused", "failed")
    # the comparison is linked just after the job ends (the worker queues the evaluations then), so re-read it
    wait_until(lambda: CompressionJob.objects.filter(pk=job.pk, comparison__status__in=ended).exists(),
               timeout=240, interval=0.5, what="both evaluation runs and their comparison")  # fmt: skip
    job.refresh_from_db()
    runs = EvalRun.objects.filter(model_version__in=[base, version], dataset_version=data)
    assert {r.status for r in runs} == {"succeeded"} and runs.count() == 2, [
        (r.status, r.error) for r in runs
    ]
    assert ComparisonReport.objects.get(pk=job.comparison_id).status == "ready"
