"""An architect reads a comparison report in Chromium: the leakage and forgetting banners, the per-example list
filtered to the newly broken cases (an HTMX swap), one example side by side with its word diff, and the
self-contained HTML export downloaded from the page. The runs and results are written with the ORM and the report
computed by comparison_compute (the evaluation itself is tested elsewhere)."""

import re

from playwright.sync_api import expect

from tests.e2e.conftest import login, screenshot
from tests.evaluation_app.conftest import make_cases, make_report, make_versions


def test_an_architect_filters_a_report_opens_a_diff_and_downloads_the_export(page, live_server, world):
    report = make_report(make_versions(), make_cases())
    broken = report.items.get(case_outcome="newly_broken")
    login(page, live_server, "architect")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Evaluation").click()
    page.locator(f'[data-report="{report.pk}"] a').click()

    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Comparison report {report.pk}")
    expect(page.locator("#leakage-banner")).to_contain_text("untrustworthy: 1 test example")
    expect(page.locator("#forgetting-banner")).to_contain_text("FORGETTING")
    expect(page.locator("#metrics svg")).to_have_count(1)
    expect(page.locator("#items tr[data-item]")).to_have_count(10)
    screenshot(page, "evaluation-01-report.png")

    with page.expect_response(lambda r: "case_outcome=newly_broken" in r.url):
        page.locator("#f-case-outcome").select_option("newly_broken")
    expect(page.locator("#items tr[data-item]")).to_have_count(1)
    expect(page.locator("#items tr[data-item]")).to_have_attribute("data-case-outcome", "newly_broken")
    expect(page).to_have_url(re.compile(r"case_outcome=newly_broken"))
    screenshot(page, "evaluation-02-newly-broken.png")

    page.locator("#items").get_by_role("link", name="side by side").click()
    expect(page).to_have_url(re.compile(rf"/reports/{report.pk}/items/{broken.pk}/"))
    expect(page.locator("#baseline-output del")).not_to_have_count(0)
    expect(page.locator("#candidate-output ins")).not_to_have_count(0)
    expect(page.locator("#candidate-output")).to_contain_text("Refunds are never possible.")
    screenshot(page, "evaluation-03-side-by-side.png")

    page.go_back()
    expect(page.locator("#items tr[data-item]")).to_have_count(1)
    with page.expect_download() as download_info:
        page.locator("#export-html").click()
    download = download_info.value
    assert download.suggested_filename == f"comparison-report-{report.pk}.html"
    html = download.path().read_text(encoding="utf-8")
    assert f"Comparison report {report.pk}" in html and 'id="leakage-banner"' in html
    assert (
        'data-metric="accuracy"' in html
        and "<svg" in html
        and "<script" not in html.replace("&lt;script", "")
    )
