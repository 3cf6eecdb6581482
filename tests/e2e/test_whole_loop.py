"""The whole loop in one browser journey, on the tiny model, with a screenshot at each step (docs/img/ holds them).

A PM approves the refund cases in the error notebook; a data scientist builds a dataset version from them,
fine-tunes the tiny base with LoRA from the form while the loss curve grows, evaluates candidate and base, opens
the comparison report at its fixed cases and requests promotion to production; an architect approves and sees the
model card; a client application's chat request through the OpenAI-compatible gateway is answered by the promoted
version, and its thumbs-down comes back to the PM as a new error case.

Real parts throughout: the live server, one real Celery worker process (builds, training and evaluation runs in
turn), the tiny Llama-style model. Only what no step here is about is made through services: the cases' arrival,
the registered base in production, its gate policy and the client application's token. Every case has the same
short answer, so a few dozen LoRA steps are enough for the candidate to fix the held-out ones.
"""

import re
from pathlib import Path

import requests
from playwright.sync_api import Page, expect

from datasets_app.models import DatasetVersion, ErrorCase, Tag
from datasets_app.services.cases import case_create
from demo_app.catalog import FEATURE_CHAT, PRODUCT
from evaluation_app.models import ComparisonReport, EvalRun, ReportStatus
from llmops.jobs import TERMINAL, JobStatus
from registry_app.models import Alias, ModelVersion, ServedResponse
from registry_app.services import base_model_register
from registry_app.services.clients import client_app_create, client_token_issue
from registry_app.services.promotion import gate_policy_update
from tests.conftest import ROOT, wait_until
from tests.e2e.conftest import login
from tests.registry_app.test_gateway import closing_connections  # noqa: F401
from training_app.models import FineTuneJob

SHOTS = ROOT / "test-artifacts" / "whole-loop"
MAX_SHOT_HEIGHT = 1400  # px: long pages are cut to their top, which is what a reader needs to see
ANSWER = "Refunds take 7 days."
BAD = "Refunds take 30 working days."
QUESTIONS = [
    "How long does a refund take?",
    "When do I get my money back after returning the kettle?",
    "My refund is late, when will it arrive?",
    "I sent the lamp back last week. Where is my money?",
    "退款要多久到账?",
    "Is the refund paid to my card or as store credit, and how fast?",
    "The vacuum cleaner went back to you; how many days for the refund?",
    "退货以后多久能收到退款?",
    "Can you speed up my refund for the broken heater?",
    "我的退款什么时候到信用卡?",
    "Do refunds for cancelled orders take long?",
    "What is the usual refund time for a thermostat?",
    "How soon is the money returned when the parcel was refused?",
    "我取消了订单, 钱几天退回来?",
    "Refund timing for a damaged smart plug?",
    "When will the bank show the refund for my doorbell camera?",
]
ASKED = "How long until the refund for my blender?"


def shot(page: Page, name: str, until: str = "") -> Path:
    """A 1280-wide PNG of the page from its top, cut at MAX_SHOT_HEIGHT, or just below the element ``until``."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    height = page.evaluate("document.documentElement.scrollHeight")
    if until:
        box = page.locator(until).bounding_box()
        height = min(height, box["y"] + box["height"] + 4 + page.evaluate("window.scrollY"))
    else:
        height = min(height, MAX_SHOT_HEIGHT)
    clip = {"x": 0, "y": 0, "width": 1280, "height": height}
    page.screenshot(path=str(path), full_page=True, clip=clip)
    return path


def act_as(page: Page, live_server, username: str) -> None:
    page.context.clear_cookies()
    login(page, live_server, username)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Welcome, {username}")


def settle(page: Page, predicate, what: str, timeout: float = 120):
    """Poll a database fact while the page keeps running its own polls (sync Playwright delivers the page's events
    only while this thread is inside a Playwright call)."""
    return wait_until(
        lambda: page.wait_for_timeout(200) or predicate(), timeout=timeout, interval=0, what=what
    )


def arrived_cases(pm) -> list[ErrorCase]:
    """Bad refund answers from production, already corrected, waiting for the PM's approval."""
    Tag.objects.get_or_create(name="outdated_knowledge", defaults={"label": "Outdated knowledge"})
    return [case_create(user=pm, messages=[{"role": "user", "content": q}], bad_output=BAD, expected_output=ANSWER,
                        tags=["outdated_knowledge"], product=PRODUCT, feature=FEATURE_CHAT, model_version="tiny:v1")
            for q in QUESTIONS]  # fmt: skip


def tiny_in_production(architect, tiny_dir) -> ModelVersion:
    base = base_model_register(user=architect, name="tiny", path=tiny_dir, task="causal_lm")
    ModelVersion.objects.filter(pk=base.pk).update(alias=Alias.PRODUCTION)
    gate_policy_update(user=architect, model=base.model,
                       items={"min_gain": 0.2, "no_leakage": True, "max_forgetting_drop": 0.05})  # fmt: skip
    return base


def queue_evaluation(page: Page, live_server, version: ModelVersion, dataset_version) -> EvalRun:
    page.goto(f"{live_server.url}/evaluations/")
    page.locator("#new-run").click()
    form = page.locator("#run-form")
    form.locator("#id_name").fill(f"{version} on refunds")
    form.get_by_label("Model version").select_option(str(version.pk))
    form.get_by_label("Dataset version").select_option(str(dataset_version.pk))
    form.get_by_label("Max new tokens").fill("12")
    form.get_by_role("button", name="Queue evaluation").click()
    expect(page.locator("#toasts")).to_contain_text("is queued")
    return EvalRun.objects.get(model_version=version)


def test_three_roles_walk_the_loop_from_error_cases_to_a_promoted_version_and_back(
    page,
    live_server,
    world,
    start_worker,
    settings,
    tmp_path,
    tiny_dir,
    closing_connections,  # noqa: F811
):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    start_worker(queues="cpu,gpu", ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT))
    pm, architect = world.users["PM"], world.users["Architect"]
    cases = arrived_cases(pm)
    base = tiny_in_production(architect, tiny_dir)
    app = client_app_create(user=None, name="aurora-support-widget")
    token = client_token_issue(app=app, name="prod")[1]
    nav = page.get_by_role("navigation", name="Main")

    # 1. PM: the error notebook holds the corrected refund cases; approve them all at once.
    act_as(page, live_server, "pm")
    nav.get_by_role("link", name="Error notebook").click()
    rows = page.locator("#case-rows tr")
    expect(rows).to_have_count(len(cases))
    expect(rows.first.locator(".status")).to_have_text("corrected")
    shot(page, "01-pm-error-notebook.png")
    page.locator("#select-all").check()
    bulk = page.locator("#bulk-form")
    bulk.get_by_label("New status").select_option("approved")
    bulk.get_by_role("button", name="Set status").click()
    expect(page.locator("#case-rows tr .status").filter(has_text="approved")).to_have_count(len(cases))
    shot(page, "02-pm-case-approved.png")
    assert set(ErrorCase.objects.values_list("status", flat=True)) == {"approved"}

    # 2. Data scientist: a chat dataset from the approved cases, v1 split 60/10/30, built on the worker.
    act_as(page, live_server, "scientist")
    nav.get_by_role("link", name="Datasets").click()
    create = page.locator("#create-dataset")
    create.get_by_label("Name").fill("refund answers")
    create.get_by_label("Product").fill(PRODUCT)
    create.get_by_label("Task type").select_option("chat")
    create.get_by_role("button", name="Create dataset").click()
    page.get_by_role("link", name="New version").click()
    split = page.locator("#split-fields")
    for name, value in (("train", "0.6"), ("validation", "0.1"), ("test", "0.3")):
        split.get_by_label(re.compile(name, re.I)).first.fill(value)
    page.get_by_role("button", name="Build version").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("refund answers v1")
    expect(page.locator("[data-version-status]")).to_have_text("ready", timeout=60_000)
    shot(page, "03-ds-dataset-version.png")
    dataset_version = DatasetVersion.objects.get(dataset__name="refund answers")
    assert dataset_version.counts["test"] >= 3, dataset_version.counts

    # 3. A LoRA fine-tune of the tiny base from the form; the job page's loss chart fills in as it trains.
    polls = []
    page.on("response", lambda r: polls.append(r) if "metrics.json" in r.url and r.ok else None)
    nav.get_by_role("link", name="Fine-tuning").click()
    page.get_by_role("link", name="New fine-tune").click()
    page.get_by_role("link", name="Quick LoRA").click()
    page.get_by_label("Base model").select_option(str(base.pk))
    page.get_by_label("Dataset version").select_option(str(dataset_version.pk))
    for label, value in (("Epochs", "40"), ("Batch size", "8"), ("Learning rate", "0.02"), ("Eval every", "10"),
                         ("Max sequence length", "64"), ("LoRA rank", "8")):  # fmt: skip
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Submit fine-tune").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Fine-tune job \d+$"))
    job = FineTuneJob.objects.get()

    def drawn() -> list[int]:
        return [n for r in list(polls) if (n := len(r.json()["series"].get("train_loss", {}).get("x", [])))]

    settle(page, lambda: FineTuneJob.objects.get(pk=job.pk).status in TERMINAL, "the fine-tune to end")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    expect(page.locator("#result")).to_be_visible(timeout=15_000)
    expect(page.locator("[data-chart]").first.locator("canvas")).to_have_count(1)
    steps = job.metric_points.filter(name="train_loss").count()
    assert steps >= 40, steps
    settle(page, lambda: drawn() and drawn()[-1] == steps, "the chart to show every step's loss", timeout=15)
    assert drawn() == sorted(drawn()), f"the curve lost points between polls: {drawn()}"
    shot(page, "04-ds-training-loss.png", until="#chart-loss")
    candidate = job.result_version

    # 4. Evaluate candidate and base on the test split, compare them, open the report at its fixed cases.
    candidate_run = queue_evaluation(page, live_server, candidate, dataset_version)
    base_run = queue_evaluation(page, live_server, base, dataset_version)
    page.goto(f"{live_server.url}/evaluations/")
    page.locator("#new-report").click()
    form = page.locator("#report-form")
    form.get_by_label("Baseline run").select_option(str(base_run.pk))
    form.get_by_label("Candidate run").select_option(str(candidate_run.pk))
    form.get_by_role("button").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Comparison report")
    report = ComparisonReport.objects.get()
    settle(page, lambda: ComparisonReport.objects.get(pk=report.pk).status != ReportStatus.WAITING,
           "both evaluation runs to end and the report to be computed")  # fmt: skip
    report.refresh_from_db()
    assert report.status == ReportStatus.READY, report.reason
    fixed = report.summary["cases"]["fixed"]
    assert fixed >= 1 and not report.summary["forgetting"]["flagged"], report.summary
    page.goto(f"{live_server.url}/evaluations/reports/{report.pk}/?case_outcome=fixed#items")
    expect(page.locator("#case-outcomes .case-fixed strong")).to_have_text(str(fixed))
    expect(page.locator("#items tr[data-item]")).to_have_count(fixed)
    expect(page.locator("#forgetting-banner")).to_have_count(0)
    shot(page, "05-ds-comparison-report.png", until="#items")

    # 5. Request promotion of the candidate to production; the gate reads the report.
    page.goto(f"{live_server.url}/models/tiny/v{candidate.number}/")
    page.locator("#request-promotion").click()
    page.get_by_label("Target").select_option("production")
    page.get_by_label("Comment").fill(
        f"Fixes {fixed} held-out refund cases; no forgetting on the general pack."
    )
    page.get_by_role("button", name="Request promotion").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        re.compile(rf"Promotion #\d+: tiny v{candidate.number}")
    )
    expect(page.locator("#request-status")).to_have_text("pending")
    expect(page.locator('#gate-table tr[data-passed="false"]')).to_have_count(0)
    shot(page, "06-ds-promotion-request.png")

    # 6. Architect: approve from the promotions list, then read the model card.
    act_as(page, live_server, "architect")
    page.goto(f"{live_server.url}/models/promotions/")
    page.get_by_role("link", name=f"tiny v{candidate.number}").first.click()
    expect(page.locator('#gate-table tr[data-passed="true"]')).to_have_count(3)
    page.get_by_label("Comment").fill("Clear gain on the refund cases, no leakage, no forgetting.")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#request-status")).to_have_text("approved")
    shot(page, "07-architect-approve.png")
    page.get_by_role("link", name="tiny", exact=True).click()
    expect(page.locator('#aliases dd[data-alias="production"]')).to_have_text(f"v{candidate.number}")
    expect(page.locator('#aliases dd[data-alias="archived"]')).to_have_text(f"v{base.number}")
    shot(page, "08-architect-model-card.png")

    # 7. A client application chats through the gateway: the family name now reaches the promoted version.
    gateway = requests.Session()
    gateway.headers["Authorization"] = f"Bearer {token}"
    answer = gateway.post(f"{live_server.url}/v1/chat/completions", timeout=60, json={
        "model": "tiny", "messages": [{"role": "user", "content": ASKED}], "max_tokens": 12, "temperature": 0,
        "user": "customer-42"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert answer.headers["X-Model-Version"] == candidate.openai_id == f"tiny:v{candidate.number}"
    assert body["object"] == "chat.completion" and body["model"] == "tiny"
    content = body["choices"][0]["message"]["content"]
    assert "7 days" in content, content  # what the fine-tune taught; the random base never says it
    served = wait_until(
        lambda: ServedResponse.objects.filter(pk=body["id"]).first(), what="the request's log row"
    )
    assert served.version_id == candidate.pk

    # 8. The customer's thumbs-down comes back as a new error case, which the PM finds in the notebook.
    rated = gateway.post(f"{live_server.url}/v1/feedback", timeout=30, json={
        "response_id": body["id"], "rating": "down", "correction": ANSWER, "comment": "the answer is cut off"})  # fmt: skip
    assert rated.status_code == 200 and rated.json()["case"] == "created", rated.text
    case = ErrorCase.objects.get(pk=rated.json()["case_id"])
    assert (case.source, case.model_version, case.bad_output) == (
        "user_feedback",
        candidate.openai_id,
        content,
    )
    act_as(page, live_server, "pm")
    nav.get_by_role("link", name="Error notebook").click()
    page.locator("#f-source").select_option("user_feedback")
    page.locator("#case-filters").get_by_role("button", name="Filter").click()
    feedback_rows = page.locator("#case-rows tr")
    expect(feedback_rows).to_have_count(1)
    expect(feedback_rows).to_contain_text(ASKED)
    feedback_rows.get_by_role("link", name=f"#{case.pk}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Case #{case.pk}")
    expect(page.locator("#diff-panel .diff-right")).to_have_text(ANSWER)
    shot(page, "09-pm-feedback-case.png")
