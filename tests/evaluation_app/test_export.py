"""The report's two exports: one self-contained HTML file (inline CSS and SVG, no script, no link to anything
outside it) and a Markdown document; both carry the leakage warning and the forgetting flag."""

import re

from django.urls import reverse

from evaluation_app.export import report_html, report_markdown
from evaluation_app.models import ComparisonReport
from tests.evaluation_app.conftest import SCRIPT


def test_the_html_export_is_one_self_contained_attachment(world, e_report):
    response = world.client("PM").get(reverse("evaluation:report-export-html", args=[e_report.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="comparison-report-{e_report.pk}.html"'
    html = response.content.decode()
    assert "<script" not in html.replace("&lt;script", "")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "no external resource"
    assert not re.search(r"<link\b|<img\b|@import|url\(", html), "no other file to load"
    assert "http://" not in html and "https://" not in html
    assert "<style>" in html and ".banner-warning" in html and "<svg" in html
    assert SCRIPT not in html and "tuned vs base &lt;script&gt;" in html


def test_the_html_export_carries_the_leakage_banner_and_the_forgetting_flag(e_report):
    html = report_html(e_report)
    banner = html.split('id="leakage-banner"')[1].split("</div>")[0]
    assert "untrustworthy: 1 test example" in banner and "#5 (exact)" in banner
    assert 'id="forgetting-banner"' in html and 'class="flagged"' in html
    assert 'data-metric="accuracy"' in html and "support-bot v2" in html
    assert 'href="/' not in html  # portal links are left out of the file


def test_a_report_without_leakage_has_no_banner(e_report):
    report = ComparisonReport.objects.get(pk=e_report.pk)
    report.summary = {**report.summary, "leakage": {"count": 0}}
    html = report_html(report)
    assert 'id="leakage-banner"' not in html and "untrustworthy" not in html.split("<body>")[1]
    assert "WARNING" not in report_markdown(report)


def test_the_markdown_export_has_the_metrics_table_and_the_warnings(world, e_report):
    response = world.client("Architect").get(reverse("evaluation:report-export-md", args=[e_report.pk]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/markdown")
    assert "attachment" in response["Content-Disposition"]
    text = response.content.decode()
    assert "> **WARNING — untrustworthy:** 1 test examples" in text
    assert "> **FORGETTING:** the general-capability score dropped by 0.5" in text
    lines = text.splitlines()
    header = lines.index("| metric | baseline | candidate | delta | 95% CI | p | method |")
    assert lines[header + 1] == "|---|---|---|---|---|---|---|"
    accuracy = next(line for line in lines[header:] if line.startswith("| accuracy |"))
    cells = [c.strip() for c in accuracy.strip("|").split("|")]
    assert cells[1:4] == ["0.5", "0.5", "0"] and cells[4].startswith("[")
    assert "| fixed | still wrong | newly broken | still right |" in text and "| 1 | 1 | 1 | 1 |" in text
    assert "## By tag" in text and "| login | 1 | 1 | 0 | -1 |" in text


def test_markdown_cells_cannot_break_the_table(e_report):
    report = ComparisonReport.objects.get(pk=e_report.pk)
    report.summary["by_category"] = [
        {"name": "a|b\nc", "n": 1, "baseline": 0.5, "candidate": 0.25, "delta": -0.25}
    ]
    text = report_markdown(report)
    assert "| a\\|b c | 1 | 0.5 | 0.25 | -0.25 |" in text


def test_user_written_html_in_the_markdown_is_shown_not_rendered(e_report):
    text = report_markdown(e_report)
    assert SCRIPT not in text and "tuned vs base &lt;script&gt;alert(1)&lt;/script&gt;" in text
