"""Fine-tuning as a data scientist meets it: a submit that cannot run is refused with every reason at once; a LoRA
run of the tiny model on a tiny dataset version ends succeeded with its loss curve recorded and its adapter
registered as a new model version that loads with peft; on a real gpu worker the curve shows in the chart JSON."""

from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from datasets_app.models import DatasetVersion
from registry_app.models import ModelVersion
from tests.conftest import wait_until
from tests.training_app.conftest import FAST, ready_version
from training_app.models import FineTuneJob, MetricPoint
from training_app.services import fine_tune_run, fine_tune_submit


def test_a_version_that_is_not_ready_or_has_no_train_rows_is_refused(scientist, base):
    version = ready_version(scientist)
    building = DatasetVersion.objects.create(dataset=version.dataset, number=9, recipe={}, status="building")
    with pytest.raises(ValidationError) as refused:
        fine_tune_submit(
            user=scientist, base=base, dataset_version=building, method="lora", hyperparameters={}
        )
    assert "not ready" in " ".join(refused.value.message_dict["dataset_version"])
    DatasetVersion.objects.filter(pk=version.pk).update(counts={"train": 0, "validation": 2, "test": 2})
    version.refresh_from_db()
    with pytest.raises(ValidationError) as refused:
        fine_tune_submit(
            user=scientist, base=base, dataset_version=version, method="lora", hyperparameters={}
        )
    assert "no train rows" in " ".join(refused.value.message_dict["dataset_version"])
    assert not FineTuneJob.objects.exists()


def test_invalid_hyperparameters_are_all_listed_at_once_through_the_api(world, scientist, base):
    version = ready_version(scientist)
    body = {
        "base": base.pk,
        "dataset_version": version.pk,
        "method": "lora",
        "gpus": 1,
        "hyperparameters": {"lr": -1, "lora_r": 0, "batch_size": "big", "warmup_ratio": 2, "colour": "red"},
    }
    response = world.api("Data Scientist").post(reverse("api-fine-tunes"), body, format="json")
    assert response.status_code == 400, response.data
    fields = response.data["error"]["fields"]
    assert {"batch_size", "colour"} <= set(fields)  # type and unknown-key problems, reported together
    body["hyperparameters"] = {"lr": -1, "lora_r": 0, "warmup_ratio": 2, "output_dir": "/etc"}
    fields = (
        world.api("Data Scientist")
        .post(reverse("api-fine-tunes"), body, format="json")
        .data["error"]["fields"]
    )
    assert {"lr", "lora_r", "warmup_ratio", "output_dir"} <= set(fields)
    assert world.api("PM").post(reverse("api-fine-tunes"), body, format="json").status_code == 403
    assert not FineTuneJob.objects.exists()


def test_a_lora_fine_tune_of_the_tiny_model_succeeds_records_its_loss_and_registers_a_loadable_adapter(
    world, scientist, base, tiny_dir
):
    version = ready_version(scientist)
    job = fine_tune_submit(
        user=scientist, base=base, dataset_version=version, method="lora", hyperparameters=FAST
    )
    assert job.status == "queued" and job.QUEUE == "gpu" and job.config["train_file"].endswith("train.jsonl")
    outcome = fine_tune_run(job_id=job.pk, task_id=job.celery_task_id, hostname="test")
    job.refresh_from_db()
    assert outcome.status == "succeeded" and job.status == "succeeded", job.error
    steps = list(MetricPoint.objects.filter(job=job, name="train_loss").values_list("step", flat=True))
    assert steps and max(steps) == 4
    assert MetricPoint.objects.filter(job=job, name="val_loss").exists()
    assert job.tokens_seen > 0 and job.progress == 1.0
    adapter = job.result_version
    assert (adapter.source, adapter.format, adapter.base_id, adapter.number) == (
        "fine_tune",
        "peft_adapter",
        base.pk,
        2,
    )
    assert adapter.lineage["dataset_version"] == version.pk and adapter.lineage["job"] == job.pk
    assert adapter.lineage["config"]["max_steps"] == 4 and len(adapter.sha256) == 64

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_dir), adapter.artifact_uri)
    assert any("lora_A" in name for name, _ in model.named_parameters())

    api = world.api("PM").get(reverse("api-fine-tune", kwargs={"pk": job.pk})).data
    assert api["status"] == "succeeded" and api["result_version"] == adapter.pk
    assert api["metrics"]["train_loss"]["last_step"] == 4


def test_an_engine_error_fails_the_job_with_its_message(scientist, base, tiny_dir):
    version = ready_version(scientist)
    job = fine_tune_submit(user=scientist, base=base, dataset_version=version, method="lora",
                           hyperparameters={**FAST, "target_modules": ["no_such_proj"]})  # fmt: skip
    fine_tune_run(job_id=job.pk, task_id=job.celery_task_id, hostname="test")
    job.refresh_from_db()
    assert job.status == "failed" and "no_such_proj" in job.error and "Traceback" not in job.error
    assert job.result_version is None


def test_the_chart_json_keeps_at_most_2000_points_per_series(world, scientist, base):
    version = ready_version(scientist, cases=12)
    job = FineTuneJob.objects.create(base=base, dataset_version=version, method="lora", config={})
    MetricPoint.objects.bulk_create(
        MetricPoint(job=job, step=s, name="train_loss", value=1 / (s + 1)) for s in range(5000)
    )
    url = reverse("training:job-metrics", kwargs={"pk": job.pk})
    data = world.client("PM").get(url, {"names": "train_loss,val_loss", "max_points": 100000}).json()
    line = data["series"]["train_loss"]
    assert len(line["x"]) == len(line["y"]) == 2000 and line["x"][0] == 0 and line["x"][-1] == 4999
    assert data["series"]["val_loss"] == {"x": [], "y": []} and data["status"] == "queued"


@pytest.mark.worker
def test_a_fine_tune_runs_on_a_real_gpu_queue_worker_and_its_curve_shows_in_the_chart(
    world, scientist, base, start_worker, settings
):
    version = ready_version(scientist)
    start_worker(queues="gpu", ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT), TRAINING_METRIC_FLUSH_SECONDS="0")
    job = fine_tune_submit(
        user=scientist, base=base, dataset_version=version, method="lora", hyperparameters=FAST
    )

    def finished():
        job.refresh_from_db()
        return job.is_terminal

    wait_until(finished, timeout=120, interval=0.2, what="the fine-tune to finish on the worker")
    assert job.status == "succeeded", job.error
    assert job.worker_hostname.startswith("test-") and job.result_version_id
    url = reverse("training:job-metrics", kwargs={"pk": job.pk})
    data = world.client("Architect").get(url, {"names": "train_loss"}).json()
    assert data["status"] == "succeeded" and data["progress"] == 1.0
    assert data["series"]["train_loss"]["x"][-1] == 4


@pytest.mark.worker
def test_a_running_fine_tune_cancelled_through_the_api_stops_at_a_checkpoint(
    world, scientist, base, start_worker, settings
):
    version = ready_version(scientist)
    start_worker(queues="gpu", ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT), TRAINING_METRIC_FLUSH_SECONDS="0")
    long = {**FAST, "max_steps": 100000, "eval_every": 0}
    job = fine_tune_submit(
        user=scientist, base=base, dataset_version=version, method="lora", hyperparameters=long
    )
    wait_until(
        lambda: MetricPoint.objects.filter(job=job, name="train_loss").exists(),
        timeout=90,
        interval=0.2,
        what="the first loss point",
    )
    url = reverse("api-fine-tune-cancel", kwargs={"pk": job.pk})
    assert world.api("Data Scientist").post(url).status_code == 202

    def finished():
        job.refresh_from_db()
        return job.is_terminal

    wait_until(finished, timeout=60, interval=0.2, what="the fine-tune to stop")
    assert job.status == "cancelled" and job.result_version is None
    assert job.result["status"] == "cancelled" and job.result["checkpoint_path"]
    assert world.api("Data Scientist").post(url).status_code == 409


def test_metric_points_are_written_in_batches_not_one_insert_per_point(
    scientist, base, django_assert_num_queries
):
    from training_app.services.run import MetricBatcher

    version = ready_version(scientist, cases=12)
    job = FineTuneJob.objects.create(base=base, dataset_version=version, method="lora", config={})
    batcher = MetricBatcher(job.pk, size=20, seconds=3600)
    with django_assert_num_queries(1):  # 10 steps × 3 metrics: one INSERT once 20 are buffered
        for step in range(1, 11):
            batcher.add(
                step, {"train_loss": 1.0 / step, "lr": 1e-4, "tokens_seen": step * 100, "gpu_util": None}
            )
    assert MetricPoint.objects.filter(job=job).count() == 21
    batcher.flush()
    assert MetricPoint.objects.filter(job=job).count() == 30


@pytest.mark.worker
def test_a_worker_killed_mid_training_resumes_on_the_next_and_ends_like_an_uninterrupted_run(
    scientist, base, start_worker, settings
):
    """SIGKILL the worker after a checkpoint: the reaper re-queues the job, the next worker resumes it from that
    checkpoint, and its adapter equals the one of the same run left alone (one model version, no second copy);
    that worker (one GPU's worth: concurrency 1 on the gpu queue) runs the two jobs one after the other."""
    from safetensors.torch import load_file

    from llmops.jobs import jobs_reap_stale

    settings.JOB_STALE_AFTER_SECONDS = 3
    version = ready_version(scientist)
    params = {**FAST, "max_steps": 60, "eval_every": 0, "checkpoint_every": 5, "seed": 3}
    env = {"ARTIFACT_ROOT": str(settings.ARTIFACT_ROOT), "TRAINING_METRIC_FLUSH_SECONDS": "0"}
    first = start_worker(queues="gpu", **env)
    killed = fine_tune_submit(user=scientist, base=base, dataset_version=version, method="lora",
                              hyperparameters=params)  # fmt: skip
    checkpoints = Path(FineTuneJob.objects.get(pk=killed.pk).output_dir) / "checkpoints"
    wait_until(lambda: checkpoints.is_dir() and any(p.name >= "step-00000010" for p in checkpoints.iterdir()),
               timeout=120, interval=0.1, what="a checkpoint past step 10")  # fmt: skip
    first.kill()
    assert FineTuneJob.objects.get(pk=killed.pk).status == "running"  # killed mid-run, not finished
    wait_until(lambda: jobs_reap_stale().requeued, timeout=15, interval=0.5, what="the reaper to re-queue it")
    alone = fine_tune_submit(user=scientist, base=base, dataset_version=version, method="lora",
                             hyperparameters=params)  # fmt: skip
    start_worker(queues="gpu", **env)

    def both_finished():
        return all(FineTuneJob.objects.get(pk=j.pk).is_terminal for j in (killed, alone))

    wait_until(
        both_finished, timeout=240, interval=0.3, what="the resumed and the uninterrupted run to finish"
    )
    resumed, reference = FineTuneJob.objects.get(pk=killed.pk), FineTuneJob.objects.get(pk=alone.pk)
    assert (resumed.status, reference.status) == ("succeeded", "succeeded"), (resumed.error, reference.error)
    one_gpu_one_job = (
        resumed.finished_at <= reference.started_at or reference.finished_at <= resumed.started_at
    )
    assert one_gpu_one_job, "the one-GPU worker ran two fine-tunes at once"
    assert resumed.attempts == 2 and resumed.result["final_step"] == reference.result["final_step"] == 60
    assert ModelVersion.objects.filter(lineage__job=resumed.pk).count() == 1
    early = list(
        MetricPoint.objects.filter(job=resumed, name="train_loss", step__lte=10).values_list(
            "step", flat=True
        )
    )
    assert sorted(early) == list(range(1, 11)), (
        "the second attempt started over instead of from the checkpoint"
    )
    ours = load_file(Path(resumed.result_version.artifact_uri) / "adapter_model.safetensors")
    theirs = load_file(Path(reference.result_version.artifact_uri) / "adapter_model.safetensors")
    assert ours.keys() == theirs.keys()
    assert all((ours[name] == theirs[name]).all() for name in ours), (
        "resumed weights differ from the run left alone"
    )
