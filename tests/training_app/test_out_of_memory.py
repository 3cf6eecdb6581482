"""Out of memory as a data scientist meets it: a fine-tune that cannot fit fails with a hint on what to change,
and the GPU worker that ran it lives on and trains the next job. The worker's memory is capped the way a small
node is (RLIMIT_AS on its pool process, a little above what a normal run needed); the failing job trains a base
with a million-token vocabulary whose logits alone exceed the cap."""

import resource
from pathlib import Path

import pytest

from llmops.jobs import TERMINAL, JobStatus
from registry_app.services import base_model_register
from tests.conftest import wait_until
from tests.training_app.conftest import FAST, ready_version
from training_app.models import FineTuneJob
from training_app.services import fine_tune_submit
from workers.tiny import TinyModelSpec, build_tiny_model

HEADROOM = 1 << 30  # bytes of address space above the normal run's peak
WIDE_VOCAB = 1_000_000  # x ~600 target tokens x 4 bytes: ~2.4 GB of logits in one allocation


@pytest.fixture(scope="module")
def wide_dir(tmp_path_factory) -> Path:
    """A narrow model (hidden 8) with a very wide output layer: 64 MB on disk, gigabytes of logits per step."""
    import shutil

    from transformers import AutoModelForCausalLM

    narrow = build_tiny_model(
        tmp_path_factory.mktemp("narrow") / "model",
        TinyModelSpec(hidden_size=8, num_heads=2, num_kv_heads=1, intermediate_size=16),
    )
    out = tmp_path_factory.mktemp("wide") / "model"
    model = AutoModelForCausalLM.from_pretrained(narrow)
    model.resize_token_embeddings(WIDE_VOCAB, mean_resizing=False)
    model.save_pretrained(out, safe_serialization=True)
    for file in narrow.iterdir():
        if file.is_file() and not file.name.startswith(("model", "config")):
            shutil.copy(file, out / file.name)
    return out


def pool_process(worker) -> int:
    children = Path(f"/proc/{worker.proc.pid}/task/{worker.proc.pid}/children").read_text().split()
    assert len(children) == 1, f"expected one pool process, found {children}"
    return int(children[0])


def vm_peak(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmPeak:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmPeak")


def finished(job) -> FineTuneJob:
    wait_until(lambda: FineTuneJob.objects.get(pk=job.pk).status in TERMINAL, timeout=180,
               interval=0.5, what=f"fine-tune {job.pk} to finish")  # fmt: skip
    return FineTuneJob.objects.get(pk=job.pk)


def test_an_oversized_run_fails_with_a_hint_and_the_worker_trains_the_next_job(
    scientist, base, wide_dir, start_worker
):
    version = ready_version(scientist)
    wide = base_model_register(user=scientist, name="wide", path=wide_dir, task="causal_lm")
    submit = {"user": scientist, "dataset_version": version, "method": "lora"}
    worker = start_worker(queues="gpu")
    first = finished(fine_tune_submit(**submit, base=base, hyperparameters=FAST))
    assert first.status == JobStatus.SUCCEEDED, first.error
    pid = pool_process(worker)
    cap = vm_peak(pid) + HEADROOM
    resource.prlimit(pid, resource.RLIMIT_AS, (cap, cap))

    big = {**FAST, "batch_size": 16, "max_steps": 2}
    failed = finished(fine_tune_submit(**submit, base=wide, hyperparameters=big))
    assert failed.status == JobStatus.FAILED
    assert "out of memory" in failed.error and "smaller batch_size" in failed.error and "LoRA" in failed.error

    after = finished(fine_tune_submit(**submit, base=base, hyperparameters=FAST))
    assert after.status == JobStatus.SUCCEEDED, after.error
    assert pool_process(worker) == pid, "the pool process was replaced, not kept alive"
