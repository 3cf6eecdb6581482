"""The demo workspace a newcomer gets from `make run`: seeded once, the same after a second run, with cases a PM and
a data scientist can work on at once, labels a human agrees with, and a general pack the forgetting check reads."""

import io
from collections import Counter, defaultdict

import pytest
from django.core.management import call_command
from django.db import connection

from datasets_app.models import CaseEvent, CaseStatusCount, Dataset, DatasetVersion, ErrorCase, VersionStatus
from demo_app.catalog import FEATURE_CHAT, FEATURE_INTENT, GENERAL_INTENTS_DATASET, INTENTS, PRODUCT
from demo_app.seed import CHAT_TAGS, INTENT_TAGS, case_specs, load
from evaluation_app.services.examples import general_dataset_examples


@pytest.fixture(autouse=True)
def artifacts(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.JOB_HEARTBEAT_SECONDS = 600


def seed() -> tuple[dict, str]:
    from demo_app.seed import demo_seed

    out = io.StringIO()
    counts = demo_seed(stdout=out)
    return counts, out.getvalue()


def notebook_counts() -> dict:
    cases = ErrorCase.objects.filter(merged_into=None)
    return {
        "by_status": Counter(cases.values_list("status", flat=True)),
        "by_task": Counter(cases.values_list("task_type", flat=True)),
        "datasets": Dataset.objects.count(),
        "versions": Counter(DatasetVersion.objects.values_list("status", flat=True)),
        "events": CaseEvent.objects.count(),
    }


def test_running_the_seed_twice_creates_nothing_the_second_time_and_reports_the_same_counts(db):
    first, said = seed()
    before = notebook_counts()
    assert "309 created" in said and "built" in said
    out = io.StringIO()
    call_command("demo_seed", stdout=out)
    assert "0 created, 309 already there" in out.getvalue() and "already ready" in out.getvalue()
    second, _ = seed()
    assert second == first and notebook_counts() == before
    assert first["cases"] == 309 and first["users"] == 4
    assert first["cases_approved"] > 250 and first["cases_new"] >= 20 and first["cases_corrected"] >= 10
    assert first["cases_rejected"] >= 3 and first["cases_classification"] > 200 and first["cases_chat"] > 100
    assert first["general_datasets"] == first["general_ready_versions"] == 1
    # the per-status counts the case list shows (kept by triggers on PostgreSQL) agree with the cases
    real = Counter(ErrorCase.objects.filter(merged_into=None).values_list("status", flat=True))
    if connection.vendor == "postgresql":
        assert {row.status: row.n for row in CaseStatusCount.objects.all() if row.n} == dict(real)


def test_the_pm_owns_the_cases_and_the_general_pack_is_ready_for_the_forgetting_check(db):
    seed()
    cases = ErrorCase.objects.filter(metadata__has_key="demo_key")
    assert set(cases.values_list("created_by__username", flat=True)) == {"pm"}
    assert set(cases.values_list("product", flat=True)) == {PRODUCT}
    approved = cases.filter(status="approved").first()
    assert approved.updated_by.username == "pm"
    assert approved.events.filter(kind="status", changes__status=["corrected", "approved"]).exists()
    assert not cases.filter(status="new").exclude(expected_output="").exists()  # waiting for the PM's answer
    rejected = cases.filter(status="rejected")
    assert rejected.exists() and not rejected.filter(rejection_reason="").exists()
    assert cases.filter(feature=FEATURE_INTENT, tags__name__in=INTENT_TAGS).distinct().count() == 203
    assert cases.filter(feature=FEATURE_CHAT, tags__name__in=CHAT_TAGS).distinct().count() == 106
    assert len({c.date() for c in cases.values_list("created_at", flat=True)}) > 15  # over the last 30 days
    assert (
        cases.get(metadata__demo_key="intent-invoice-05").user_input
        == "pls send me a receipt for order AH-40032"
    )

    dataset = Dataset.objects.get(name=GENERAL_INTENTS_DATASET)
    assert dataset.is_general and dataset.task_type == "classification"
    version = dataset.versions.get()
    assert version.status == VersionStatus.READY and version.counts["test"] >= 16
    assert sum(version.counts.values()) == 160
    rows = general_dataset_examples(task="classification")
    assert len(rows) == version.counts["test"] and {r.reference for r in rows} == set(INTENTS)


def test_the_intent_cases_cover_every_intent_in_both_languages_with_a_wrong_label_that_differs():
    specs = [s for s in case_specs() if s["task_type"] == "classification"]
    seen = defaultdict(set)
    for spec in specs:
        assert spec["expected_output"] in INTENTS and spec["bad_output"] in INTENTS, spec["key"]
        assert spec["expected_output"] != spec["bad_output"], spec["key"]
        seen[spec["expected_output"]].add(spec["lang"])
    assert set(seen) == set(INTENTS)
    assert all({"zh", "en"} <= langs for langs in seen.values())
    per_intent = Counter(s["expected_output"] for s in specs if s["status"] == "approved")
    assert min(per_intent.values()) >= 20  # enough to train on and hold some out, for every intent


def test_every_policy_fact_is_asked_several_ways_in_each_language():
    policies = {p["fact"] for p in load("policies.jsonl")}
    chats = [s for s in case_specs() if s["task_type"] == "chat" and s["status"] != "rejected"]
    asked = Counter((s["fact"], s["lang"]) for s in chats)
    assert {fact for fact, _ in asked} == policies
    assert all(asked[(fact, lang)] >= 3 for fact in policies for lang in ("zh", "en"))
    assert all(s["bad_output"] != s["expected_output"] for s in chats)


def test_the_general_pack_holds_other_messages_than_the_error_cases_in_every_intent():
    general = load("general_intents.jsonl")
    cases = {s["messages"][0]["content"] for s in case_specs()}
    assert not {row["text"] for row in general} & cases
    assert Counter(row["label"] for row in general) == dict.fromkeys(INTENTS, 20)
