"""Hyperparameter search as a data scientist meets it: a search space with mistakes is refused with every problem
at once; the coarse phase's trials are fine-tune jobs whose settings TPE drew inside the ranges; once it ends, the
fine grid sits around the best coarse trial; the median pruner stops a trial whose validation loss is worse than
the median of the finished ones (decided from the database, and inside a real run); cancelling a study cancels its
trials; and a whole small study runs to the end on a real gpu worker with its leaderboard."""

import math

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from tests.conftest import wait_until
from tests.training_app.conftest import FAST, ready_version
from training_app.models import FineTuneJob, MetricPoint, Study
from training_app.services import (
    fine_tune_run,
    studies_advance_stalled,
    study_create,
    study_should_prune,
    study_trial_finished,
)

SPACE = {
    "lr": {"type": "log_uniform", "low": 1e-4, "high": 1e-2},
    "lora_r": {"type": "choice", "choices": [2, 4, 8]},
}
FIXED = {k: v for k, v in FAST.items() if k != "lora_r"}


def make_study(scientist, base, version, **overrides) -> Study:
    args = {"name": "lr and rank", "base": base, "dataset_version": version, "method": "lora",
            "hyperparameters": FIXED, "search_space": SPACE, "coarse_trials": 3, "fine_trials": 2}  # fmt: skip
    return study_create(user=scientist, **{**args, **overrides})


def finish(job: FineTuneJob, losses: dict[int, float], status: str = "succeeded") -> None:
    """A trial that ended with these validation losses by step, as the run would have recorded them."""
    MetricPoint.objects.bulk_create(
        MetricPoint(job=job, step=s, name="val_loss", value=v) for s, v in losses.items()
    )
    result = {"best_val_loss": min(losses.values())} if status == "succeeded" else {}
    FineTuneJob.objects.filter(pk=job.pk).update(status=status, result=result)
    study_trial_finished(job_id=job.pk)


def trials(study: Study) -> list[FineTuneJob]:
    return list(study.trials.order_by("trial_number"))


def test_an_invalid_search_space_lists_every_problem_at_once(scientist, base):
    version = ready_version(scientist)
    space = {
        "lr": {"type": "log_uniform", "low": 0, "high": 1e-3},
        "lora_r": {"type": "choice", "choices": [0, 4]},
        "epochs": {"type": "uniform", "low": 1, "high": 3},
        "colour": {"type": "choice", "choices": ["red"]},
        "output_dir": {"type": "choice", "choices": ["/etc"]},
        "warmup_steps": {"type": "int", "low": 8, "high": 2},
        "max_steps": {"type": "choice", "choices": [4]},
        "lora_dropout": {"type": "gaussian"},
    }
    with pytest.raises(ValidationError) as refused:
        make_study(scientist, base, version, name=" ", search_space=space, coarse_trials=0, parallelism=99)
    problems = refused.value.message_dict
    assert {"name", "coarse_trials", "parallelism"} <= set(problems)
    assert set(space) == {
        key.removeprefix("search_space.") for key in problems if key.startswith("search_space.")
    }
    assert "positive low" in problems["search_space.lr"][0]
    assert "at least 1" in " ".join(problems["search_space.lora_r"])  # the engine's own check, at each choice
    assert "below high" in problems["search_space.warmup_steps"][0]
    assert "not a known setting" in problems["search_space.colour"][0]
    assert "also a fixed" in problems["search_space.max_steps"][0]
    assert "use int or choice" in problems["search_space.epochs"][0]
    assert not Study.objects.exists() and not FineTuneJob.objects.exists()


def test_a_study_needs_a_validation_split_to_rank_its_trials(scientist, base):
    version = ready_version(scientist)
    version.counts = {**version.counts, "validation": 0}
    version.save(update_fields=["counts"])
    with pytest.raises(ValidationError) as refused:
        make_study(scientist, base, version)
    assert "validation" in refused.value.message_dict["dataset_version"][0]


def test_coarse_trials_are_child_fine_tunes_with_settings_drawn_by_tpe_inside_the_ranges(scientist, base):
    version = ready_version(scientist)
    study = make_study(scientist, base, version, coarse_trials=4, parallelism=4, seed=7)
    jobs = trials(study)
    assert [(j.trial_number, j.phase, j.status, j.QUEUE) for j in jobs] == [
        (n, "coarse", "queued", "gpu") for n in range(4)
    ]
    for job in jobs:
        assert 1e-4 <= job.config["lr"] <= 1e-2 and job.config["lora_r"] in (2, 4, 8)
        assert job.config["max_steps"] == 4 and job.celery_task_id and job.created_by == scientist
    assert len({j.config["lr"] for j in jobs}) == 4  # a rebuilt sampler does not repeat its draw
    again = make_study(scientist, base, version, coarse_trials=4, parallelism=4, seed=7)
    assert [j.config["lr"] for j in trials(again)] == [j.config["lr"] for j in jobs]  # seeded: reproducible


def test_the_fine_grid_is_centred_on_the_best_coarse_trial_once_the_coarse_phase_ends(scientist, base):
    version = ready_version(scientist)
    study = make_study(scientist, base, version, coarse_trials=3, fine_trials=4, parallelism=1)
    for loss in (0.9, 0.3, 0.7):  # trial 1 is the best
        (job,) = [j for j in trials(study) if not j.is_terminal]
        assert job.phase == "coarse"
        finish(job, {2: loss + 0.1, 4: loss})
    best = trials(study)[1]
    lr, rank = best.config["lr"], best.config["lora_r"]
    fine = [j for j in trials(study) if j.phase == "fine"]
    assert len(fine) == 1 and study.trials.filter(status="queued").count() == 1  # parallelism 1
    for _ in range(3):
        finish(fine[-1], {2: 0.5, 4: 0.4})
        fine = [j for j in trials(study) if j.phase == "fine"]
    assert len(fine) == 4
    ranks = {2: [2, 4], 4: [2, 4, 8], 8: [4, 8]}[rank]
    moved = [(not math.isclose(j.config["lr"], lr)) + (j.config["lora_r"] != rank) for j in fine]
    assert moved[:2] == [1, 1] and moved == sorted(
        moved
    )  # nearest points first: one setting moved from the best
    for job in fine:  # lr ×½ or ×2 (within the range), a neighbouring rank
        assert job.config["lora_r"] in ranks
        assert any(math.isclose(job.config["lr"], min(max(lr * f, 1e-4), 1e-2)) for f in (0.5, 1, 2))
    assert len({(j.config["lr"], j.config["lora_r"]) for j in fine}) == 4  # no point twice
    finish(fine[-1], {2: 0.2, 4: 0.1})
    study.refresh_from_db()
    assert study.status == "succeeded" and study.best_trial == fine[-1]


def test_the_median_pruner_stops_a_trial_worse_than_the_median_at_the_same_step(scientist, base):
    version = ready_version(scientist)
    study = make_study(scientist, base, version, coarse_trials=4, parallelism=4)
    a, b, worse, better = trials(study)
    finish(a, {2: 1.0, 4: 0.8})
    finish(b, {2: 1.2, 4: 0.9})  # median at step 2: 1.1
    MetricPoint.objects.create(job=worse, step=2, name="val_loss", value=2.0)
    MetricPoint.objects.create(job=better, step=2, name="val_loss", value=0.5)
    assert study_should_prune(job_id=worse.pk) is True
    assert study_should_prune(job_id=better.pk) is False
    Study.objects.filter(pk=study.pk).update(prune_startup_trials=3)  # not enough finished trials yet
    assert study_should_prune(job_id=worse.pk) is False


def test_a_real_run_worse_than_the_finished_trials_is_pruned_and_the_study_ends_on_the_best(scientist, base):
    version = ready_version(scientist)
    study = make_study(scientist, base, version, coarse_trials=3, fine_trials=0, parallelism=1)
    finish(trials(study)[0], {2: 0.02, 4: 0.01})  # far below what the tiny random model can reach
    finish(trials(study)[1], {2: 0.03, 4: 0.02})
    job = trials(study)[2]
    outcome = fine_tune_run(job_id=job.pk, task_id=job.celery_task_id, hostname="test")
    job.refresh_from_db()
    assert outcome.status == "cancelled" and job.pruned and job.result_version is None
    assert "pruned at step 2" in job.progress_message
    assert list(MetricPoint.objects.filter(job=job, name="val_loss").values_list("step", flat=True)) == [2]
    study.refresh_from_db()
    assert study.status == "succeeded" and study.best_trial == trials(study)[0]


def test_cancelling_a_study_cancels_its_queued_and_running_trials(world, scientist, base):
    version = ready_version(scientist)
    study = make_study(scientist, base, version, coarse_trials=3, parallelism=3)
    first, second, third = trials(study)
    finish(first, {2: 1.0})
    FineTuneJob.objects.filter(pk=second.pk).update(status="running")
    response = world.api("Data Scientist").post(reverse("api-study-cancel", kwargs={"pk": study.pk}))
    assert response.status_code == 202 and response.data["status"] == "cancelled"
    second.refresh_from_db(), third.refresh_from_db(), first.refresh_from_db()
    assert (first.status, second.cancel_requested, third.status) == ("succeeded", True, "cancelled")
    study_trial_finished(job_id=third.pk)  # the dropped delivery of the cancelled trial: nothing new
    assert study.trials.count() == 3
    assert (
        world.api("Data Scientist").post(reverse("api-study-cancel", kwargs={"pk": study.pk})).status_code
        == 409
    )


def test_a_study_whose_trial_the_reaper_ended_moves_on_when_stalled_studies_are_advanced(scientist, base):
    version = ready_version(scientist)
    study = make_study(scientist, base, version, coarse_trials=2, fine_trials=0, parallelism=1)
    (first,) = trials(study)
    FineTuneJob.objects.filter(pk=first.pk).update(status="failed", error="worker lost")  # no hook ran
    assert studies_advance_stalled() == [study.pk]
    assert [j.status for j in trials(study)] == ["failed", "queued"]
    assert studies_advance_stalled() == []  # a queued trial: nothing to do


def test_beat_advances_stalled_studies_through_a_registered_task(settings):
    from llmops.celery import app
    from training_app.tasks import advance_stalled_studies

    entry = settings.CELERY_BEAT_SCHEDULE["advance-stalled-studies"]
    assert entry["task"] == advance_stalled_studies.name and entry["task"] in app.tasks
    assert entry["schedule"] <= 300


def test_the_api_refuses_a_bad_study_with_every_problem_keyed_by_field(world, scientist, base):
    version = ready_version(scientist)
    body = {"name": "x", "base": base.pk, "dataset_version": version.pk, "hyperparameters": {"lr": 0.1},
            "search_space": {"lr": {"type": "log_uniform", "low": 1e-5, "high": 1e-3},
                             "lora_dropout": {"type": "uniform", "low": 0.5, "high": 1.5}},
            "coarse_trials": 2, "parallelism": 0}  # fmt: skip
    response = world.api("Data Scientist").post(reverse("api-studies"), body, format="json")
    assert response.status_code == 400
    fields = response.data["error"]["fields"]
    assert {"parallelism", "search_space.lr", "search_space.lora_dropout"} <= set(fields)
    assert "[0, 1)" in fields["search_space.lora_dropout"][0]  # the high end, found by the engine's own check
    assert world.api("PM").post(reverse("api-studies"), body, format="json").status_code == 403
    assert world.api("PM").get(reverse("api-studies")).status_code == 200 and not Study.objects.exists()


@pytest.mark.worker
def test_a_small_study_runs_to_the_end_on_a_real_gpu_worker_with_its_leaderboard(
    world, scientist, base, start_worker, settings
):
    version = ready_version(scientist)
    start_worker(queues="gpu", ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT), TRAINING_METRIC_FLUSH_SECONDS="0")
    body = {"name": "tiny <search>", "base": base.pk, "dataset_version": version.pk, "method": "lora",
            "hyperparameters": FIXED, "search_space": SPACE, "coarse_trials": 2, "fine_trials": 1}  # fmt: skip
    response = world.api("Data Scientist").post(reverse("api-studies"), body, format="json")
    assert response.status_code == 201, response.data
    study = Study.objects.get(pk=response.data["id"])

    def ended():
        study.refresh_from_db()
        return not study.is_running

    wait_until(ended, timeout=300, interval=0.5, what="the study to end")
    assert study.status == "succeeded", study.error
    assert [j.phase for j in trials(study)] == ["coarse", "coarse", "fine"]
    assert all(j.is_terminal for j in trials(study))
    best = study.best_trial
    assert best.status == "succeeded" and best.result_version_id and not best.pruned
    data = world.api("PM").get(reverse("api-study", kwargs={"pk": study.pk})).data
    assert data["leaderboard"][0]["job"] == best.pk and data["best_trial"] == best.pk
    page = world.client("PM").get(reverse("training:study", kwargs={"pk": study.pk})).content.decode()
    assert f'data-best="{best.pk}"' in page and "tiny &lt;search&gt;" in page
    assert str(best.result_version) in page
