"""The near-duplicate job as a PM sees its result: similar cases grouped, "N similar" in the list, groups merged."""

import re

import pytest
from django.urls import reverse

from datasets_app.models import CaseEvent, DedupJob, ErrorCase
from datasets_app.services.cases import case_create
from datasets_app.services.dedup import dedup_run

HX = {"HTTP_HX_REQUEST": "true"}

PASSWORD_Q = (
    "How do I reset my password on the mobile app when I have forgotten the old one and lost my phone?"
)
PASSWORD_BAD = "Open the settings page, choose security, then press the red button to receive a reset e-mail."
ORDER_Q = "我的订单已经付款三天了，为什么还没有发货？请帮我查一下物流信息，谢谢。"
ORDER_BAD = "您的订单已经发货，预计明天下午送达，请耐心等待快递员的电话。"


@pytest.fixture(autouse=True)
def no_heartbeat_during_the_test(settings):
    """The job runs in-process inside the test's transaction, which a heartbeat thread's connection cannot see."""
    settings.JOB_HEARTBEAT_SECONDS = 600


def make_case(text: str, bad: str):
    return case_create(user=None, messages=[{"role": "user", "content": text}], bad_output=bad)


def run_job(threshold: float = 0.8) -> DedupJob:
    job = DedupJob.objects.create(threshold=threshold, celery_task_id="t")
    outcome = dedup_run(job_id=job.pk, task_id="t", hostname="test")
    job.refresh_from_db()
    assert outcome.status == "succeeded", job.error
    return job


@pytest.fixture
def cases(db):
    return {
        "password": make_case(PASSWORD_Q, PASSWORD_BAD),
        "password, one word changed": make_case(PASSWORD_Q.replace("mobile", "desktop"), PASSWORD_BAD),
        "order": make_case(ORDER_Q, ORDER_BAD),
        "order, one character changed": make_case(ORDER_Q.replace("三天", "五天"), ORDER_BAD),
        "unrelated": make_case("What are your opening hours on public holidays?", "We never close."),
        "unrelated too": make_case("退货需要自己付运费吗？", "需要，运费由买家承担。"),
    }


def similar_in_list(client) -> dict[int, str]:
    """Case id -> the "N similar" text of its row in the list ('' when none)."""
    html = client.get(reverse("cases:list")).content.decode()
    rows = re.findall(r'<tr data-case="(\d+)">(.*?)</tr>', html, re.S)
    return {int(pk): " ".join(re.findall(r"(\d+ similar)", row)) for pk, row in rows}


def test_a_one_word_edit_and_a_one_character_chinese_edit_are_grouped_and_unrelated_cases_are_not(cases):
    job = run_job()
    assert (job.status, job.progress, job.groups_found, job.cases_grouped) == ("succeeded", 1.0, 2, 4)
    assert job.progress_message == "2 groups of similar cases (4 cases)"
    groups = {name: ErrorCase.objects.get(pk=case.pk).near_dup_group for name, case in cases.items()}
    assert groups["password"] is not None and groups["password"] == groups["password, one word changed"]
    assert groups["order"] is not None and groups["order"] == groups["order, one character changed"]
    assert groups["password"] != groups["order"]
    assert groups["unrelated"] is None and groups["unrelated too"] is None
    assert ErrorCase.objects.filter(minhash=None).count() == 0  # every case was signed


def test_the_list_shows_how_many_similar_cases_each_grouped_case_has(world, cases):
    run_job()
    shown = similar_in_list(world.client("PM"))
    for name in ("password", "password, one word changed", "order", "order, one character changed"):
        assert shown[cases[name].pk] == "1 similar", name
    assert shown[cases["unrelated"].pk] == "" and shown[cases["unrelated too"].pk] == ""


def test_merging_a_group_hides_the_others_and_keeps_their_history(world, cases):
    run_job()
    keep, other = cases["order"], cases["order, one character changed"]
    client = world.client("PM")
    response = client.post(reverse("cases:merge"), {"ids": [keep.pk, other.pk]}, **HX)
    assert response.status_code == 200
    assert f"Merged #{other.pk} into case #{keep.pk}" in response.content.decode()
    shown = similar_in_list(client)
    assert other.pk not in shown
    assert shown[keep.pk] == ""  # nothing similar is left in the list
    other.refresh_from_db()
    assert other.merged_into_id == keep.pk
    assert list(CaseEvent.objects.filter(case=other).values_list("kind", flat=True)) == ["created", "merged"]
    page = client.get(reverse("cases:detail", args=[other.pk])).content.decode()
    assert f"merged into case #{keep.pk}" in page


def test_a_rerun_forgets_groups_that_no_longer_hold(cases):
    run_job()
    changed = cases["password, one word changed"]
    ErrorCase.objects.filter(pk=changed.pk).update(
        messages=[{"role": "user", "content": "Something else entirely"}], bad_output="no", minhash=None
    )
    job = run_job()
    assert (job.groups_found, job.cases_grouped) == (1, 2)
    assert ErrorCase.objects.get(pk=cases["password"].pk).near_dup_group is None


def test_a_stricter_threshold_groups_only_closer_cases(cases):
    run_job(threshold=0.99)
    assert not ErrorCase.objects.exclude(near_dup_group=None).exists()


def test_the_api_queues_a_near_duplicate_job_and_refuses_a_bad_threshold(world):
    client = world.api("PM")
    response = client.post(reverse("api-cases-near-duplicates"), {"threshold": 0.85}, format="json")
    assert response.status_code == 202
    job = DedupJob.objects.get(pk=response.json()["id"])
    assert (job.status, job.threshold) == ("queued", 0.85) and job.celery_task_id
    bad = client.post(reverse("api-cases-near-duplicates"), {"threshold": 3}, format="json")
    assert bad.status_code == 400 and "threshold" in bad.json()["error"]["fields"]


def test_a_threshold_of_one_or_more_is_refused_before_any_job_is_queued(world):
    response = world.api("PM").post(reverse("api-cases-near-duplicates"), {"threshold": 1.0}, format="json")
    assert response.status_code == 400 and "between 0 and 1" in str(
        response.json()["error"]["fields"]["threshold"]
    )
    page = world.client("PM").post(reverse("cases:find-duplicates"), {"threshold": "5"}, follow=True)
    assert "threshold: give a number between 0 and 1" in page.content.decode()
    assert not DedupJob.objects.exists()
