"""A PM's day in the error notebook: import a file of bad answers, correct one, approve it in triage mode."""

import json
import re

from playwright.sync_api import expect

from datasets_app.models import ErrorCase, Tag
from tests.e2e.conftest import login, screenshot

TAGS = {
    "hallucination": "Hallucination",
    "terminology": "Terminology",
    "outdated_knowledge": "Outdated knowledge",
    "wrong_intent": "Wrong intent",
}
OLD_ANSWER = "退款需要 30 天, please wait."
NEW_ANSWER = "退款会在 7 个工作日内到账, usually sooner."
CASES = [  # the file's order; the list shows the newest (the last line) first
    {
        "messages": [
            {"role": "user", "content": "What is the capital of Australia?"},
            {"role": "assistant", "content": "Sydney is the capital of Australia."},
        ],
        "tags": ["hallucination"],
        "severity": "high",
    },
    {
        "messages": [
            {"role": "user", "content": "请把我的发票发到 zhang.wei@example.com"},
            {"role": "assistant", "content": "好的, I will send the invoice by fax."},
        ],
        "tags": ["wrong_intent"],
    },
    {
        "messages": [
            {"role": "system", "content": "You are the support assistant of ACME Cloud."},
            {"role": "user", "content": "怎么重置 API key?"},
            {"role": "assistant", "content": "请在「密码」页面重置 token."},
        ],
        "tags": ["terminology"],
        "severity": "low",
    },
    {
        "messages": [
            {"role": "user", "content": "Which Python versions do you support?"},
            {"role": "assistant", "content": "We support Python 2.7 and 3.5."},
        ],
        "tags": ["outdated_knowledge"],
    },
    {
        "messages": [
            {"role": "user", "content": "退款要多久?"},
            {"role": "assistant", "content": OLD_ANSWER},
        ],
        "expected": "退款会在 14 天内到账, please wait.",
        "tags": ["hallucination"],
        "severity": "high",
    },
]


def test_a_pm_imports_cases_corrects_one_and_approves_it_in_triage_mode(page, live_server, world, tmp_path):
    for name, label in TAGS.items():
        Tag.objects.get_or_create(
            name=name, defaults={"label": label}
        )  # the flush removed the default taxonomy
    upload = tmp_path / "bad-answers.jsonl"
    upload.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in CASES), encoding="utf-8")
    nav = page.get_by_role("navigation", name="Main")

    # 1. The PM logs in through the login page.
    login(page, live_server, "pm")
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, pm")
    screenshot(page, "notebook-01-login.png")

    # 2. Error notebook → Import: the file goes in for real (dry run unchecked), e-mail addresses scrubbed.
    nav.get_by_role("link", name="Error notebook").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Error notebook")
    page.get_by_role("link", name="Import", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Import cases")
    dry_run = page.get_by_role("checkbox", name="Dry run")
    expect(dry_run).to_be_checked()
    dry_run.uncheck()
    page.get_by_label("File", exact=True).set_input_files(upload)
    page.get_by_role("button", name="Upload").click()

    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"Import #\d+: bad-answers\.jsonl"))
    status = page.locator("#import-status")
    expect(status.locator("[data-status]")).to_have_text("succeeded")
    expect(status.locator("#import-summary")).to_contain_text("5 imported")
    expect(status.locator("#imported")).to_have_text("5")
    expect(status.locator("dd").filter(has_text="EMAIL")).to_have_text("EMAIL: 1")
    expect(status.locator("table.preview")).to_contain_text("请把我的发票发到 [EMAIL]")
    expect(status).not_to_contain_text("zhang.wei@example.com")
    screenshot(page, "notebook-02-import.png")

    # 3. The curation dashboard's funnel: five cases in, none approved yet.
    nav.get_by_role("link", name="Curation").click()
    funnel = page.locator("#funnel")
    expect(funnel.locator("[data-funnel=new]")).to_have_text("5")
    approved_before = int(funnel.locator("[data-funnel=approved]").inner_text())
    assert approved_before == 0
    screenshot(page, "notebook-03-dashboard.png")

    # 4. Open the refund case from the list: bad and expected output side by side; correct it in place.
    nav.get_by_role("link", name="Error notebook").click()
    rows = page.locator("#case-rows tr")
    expect(rows).to_have_count(5)
    refund_row = rows.filter(has_text="退款要多久")
    expect(refund_row.locator(".status")).to_have_text("corrected")
    refund_row.get_by_role("link", name=re.compile(r"^#\d+$")).click()
    expect(page).to_have_url(re.compile(r"/cases/\d+/$"))
    case_url = page.url
    case_id = int(re.search(r"/(\d+)/$", case_url).group(1))
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Case #{case_id}")
    diff = page.locator("#diff-panel")
    expect(diff.locator(".diff-left")).to_have_text(OLD_ANSWER)
    expect(diff.locator(".diff-right")).to_have_text("退款会在 14 天内到账, please wait.")
    expect(diff.locator(".diff-left del").first).to_be_visible()
    screenshot(page, "notebook-04-case.png")

    page.evaluate("window.stillTheSamePage = true")
    page.get_by_label("Expected output").fill(NEW_ANSWER)
    page.locator("#edit-form").get_by_role("button", name="Save").click()

    expect(page.locator("#toasts")).to_contain_text(f"Case #{case_id} saved.")
    expect(diff.locator(".diff-right")).to_have_text(NEW_ANSWER)
    expect(diff.locator(".diff-right ins").first).to_be_visible()
    assert page.url == case_url
    assert page.evaluate("window.stillTheSamePage") is True, "saving reloaded the whole page"
    screenshot(page, "notebook-05-corrected.png")

    # 5. Triage mode for this case: `a` approves it and the next (older) case takes its place.
    page.get_by_role("link", name="Open in triage mode").click()
    heading = page.locator("#triage-panel h1")
    expect(heading).to_contain_text(f"case #{case_id}")
    expect(heading.locator(".status")).to_have_text("corrected")
    screenshot(page, "notebook-06-triage.png")

    page.keyboard.press("a")

    expect(page.locator("#toasts")).to_contain_text(f"Case #{case_id} is now approved.")
    expect(heading).not_to_contain_text(f"case #{case_id}")
    expect(heading.locator(".status")).to_have_text("new")
    expect(page.locator("#triage-panel .conversation")).to_contain_text(
        "Which Python versions do you support?"
    )
    expect(page).to_have_url(re.compile(r"/cases/\d+/triage$"))
    screenshot(page, "notebook-07-next-case.png")

    # 6. Back on the dashboard the funnel counts one approved case.
    nav.get_by_role("link", name="Curation").click()
    expect(page.locator("#funnel [data-funnel=approved]")).to_have_text(str(approved_before + 1))
    expect(page.locator("#funnel [data-funnel=new]")).to_have_text("5")
    screenshot(page, "notebook-08-dashboard-after.png")

    case = ErrorCase.objects.get(pk=case_id)
    assert (case.status, case.expected_output, case.updated_by.username) == ("approved", NEW_ANSWER, "pm")
