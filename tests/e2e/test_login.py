"""Logging in through the real form, what each role then sees, and the pages a role may or may not open."""

import re

import pytest
from playwright.sync_api import expect

from llmops.models import DiagnosticJob
from llmops.roles import ADMIN, ARCHITECT, DATA_SCIENTIST, PM
from tests.conftest import USERNAMES
from tests.e2e.conftest import login, screenshot

EVERYONE = [
    "Home",
    "Error notebook",
    "Curation",
    "Datasets",
    "Fine-tuning",
    "Compression",
    "Models",
    "Promotions",
    "Serving",
    "Evaluation",
    "API tokens",
    "API docs",
]
NAVIGATION = {
    PM: EVERYONE,
    DATA_SCIENTIST: EVERYONE,
    ARCHITECT: [*EVERYONE[:-2], "Client apps", *EVERYONE[-2:]],
    ADMIN: [
        "Home",
        "Error notebook",
        "Curation",
        "Datasets",
        "Fine-tuning",
        "Compression",
        "Models",
        "Promotions",
        "Serving",
        "Evaluation",
        "Client apps",
        "Diagnostics",
        "API tokens",
        "API docs",
        "Admin site",
    ],
}


@pytest.mark.parametrize("role", [PM, DATA_SCIENTIST, ARCHITECT, ADMIN])
def test_each_role_logs_in_through_the_login_page_and_sees_its_navigation(page, live_server, world, role):
    username = USERNAMES[role]

    login(page, live_server, username)

    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Welcome, {username}")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link")).to_have_text(NAVIGATION[role])
    expect(page.locator(".role-badge")).to_have_text([role])
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    screenshot(page, f"login-{username}.png")


def test_a_wrong_password_shows_a_form_error_not_a_server_error(page, live_server, world):
    responses = []
    page.on("response", lambda response: responses.append(response.status))

    login(page, live_server, "pm", password="not the password")

    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    expect(page.locator("#id_username")).to_have_value("pm")
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)
    assert all(status < 500 for status in responses), responses
    screenshot(page, "login-wrong-password.png")


def test_a_pm_opening_diagnostics_gets_the_403_page_in_the_portal_look(page, live_server, world):
    login(page, live_server, "pm")

    response = page.goto(f"{live_server.url}/diagnostics/")

    assert response.status == 403
    expect(page.get_by_role("heading", level=1)).to_contain_text("403")
    expect(page.locator("header.topbar .brand")).to_have_text("LLMOps Portal")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link")).to_have_text(NAVIGATION[PM])
    expect(page.get_by_role("link", name="Back to the home page")).to_be_visible()
    screenshot(page, "diagnostics-403-pm.png")


def test_an_admin_queues_a_diagnostic_job_and_sees_its_page(page, live_server, world):
    login(page, live_server, "admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Diagnostics").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Diagnostics")

    page.locator("#id_seconds").fill("0")
    page.get_by_role("button", name="Queue job").click()

    expect(page).to_have_url(re.compile(r"/diagnostics/\d+/$"))
    job_id = int(re.search(r"/diagnostics/(\d+)/$", page.url).group(1))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Diagnostic job #{job_id}")
    expect(page.locator("[data-status]")).to_have_text("queued")
    expect(page.get_by_role("status")).to_contain_text(f"Diagnostic job #{job_id} queued on cpu")
    job = DiagnosticJob.objects.get(pk=job_id)
    assert (job.seconds, job.created_by.username) == (0, "admin")
    screenshot(page, "diagnostic-job-queued.png")


def test_log_out_returns_to_the_login_page(page, live_server, world):
    login(page, live_server, "scientist")
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, scientist")

    page.get_by_role("button", name="Log out").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    expect(page).to_have_url(re.compile(r"/login/"))
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
