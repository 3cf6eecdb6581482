"""Queue priority as a data scientist meets it: on a busy one-GPU worker, an urgent fine-tune submitted after a
low-priority one still starts first; out-of-range priorities are refused by the API."""

from django.urls import reverse

from llmops.jobs import JobStatus, broker_priority
from tests.conftest import wait_until
from tests.training_app.conftest import FAST, ready_version
from training_app.models import FineTuneJob
from training_app.services import fine_tune_submit


def test_priorities_map_onto_the_brokers_lists_highest_first_and_clamp_at_the_ends():
    levels = [broker_priority(FineTuneJob(priority=p)) for p in (99, 5, 2, 0, -2, -4, -99)]
    assert levels == [0, 0, 3, 5, 7, 9, 9]


def test_an_urgent_job_queued_after_low_ones_runs_before_them(scientist, base, start_worker):
    version = ready_version(scientist)
    submit = {
        "user": scientist,
        "base": base,
        "dataset_version": version,
        "method": "lora",
        "hyperparameters": FAST,
    }
    low = [fine_tune_submit(**submit, priority=-2) for _ in range(2)]
    urgent = fine_tune_submit(**submit, priority=5)
    start_worker(queues="gpu")
    jobs = [*low, urgent]

    def all_done():
        return all(FineTuneJob.objects.get(pk=j.pk).status == JobStatus.SUCCEEDED for j in jobs)

    wait_until(all_done, timeout=240, interval=0.5, what="the three fine-tunes to succeed")
    started = list(FineTuneJob.objects.order_by("started_at").values_list("pk", flat=True))
    assert started == [urgent.pk, low[0].pk, low[1].pk]


def test_the_api_refuses_a_priority_outside_its_range(world, base, scientist):
    version = ready_version(scientist)
    body = {"base": base.pk, "dataset_version": version.pk, "hyperparameters": FAST, "priority": 50}
    response = world.api("Data Scientist").post(reverse("api-fine-tunes"), body, format="json")
    assert response.status_code == 400
    assert "priority" in response.json()["error"]["fields"]
    assert not FineTuneJob.objects.exists()
