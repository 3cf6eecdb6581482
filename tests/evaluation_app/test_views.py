"""The evaluation pages: the list, the run form (service errors beside their fields, nothing saved), the run page
(leakage banner, suites' metrics, judge agreement), one example (saliency, label), and the comparison report with
its filters and the side-by-side diff. Data is made with the ORM and the report by comparison_compute."""

import re

import pytest
from django.urls import reverse

from evaluation_app.models import ComparisonReport, EvalResult, EvalRun
from llmops.jobs import JobStatus
from tests.evaluation_app.conftest import SCRIPT


def get(world, url: str, role: str = "Architect", **headers):
    response = world.client(role).get(url, **headers)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def item_rows(html: str) -> list[str]:
    return re.findall(r'data-item="\d+" data-outcome="(\w+)" data-case-outcome="(\w*)"', html)


def test_the_list_shows_runs_and_reports_with_their_flags(world, e_report):
    html = get(world, reverse("evaluation:list"), "PM")
    assert f'data-report="{e_report.pk}"' in html and f'data-run="{e_report.candidate_id}"' in html
    report_row = html.split(f'data-report="{e_report.pk}"')[1].split("</tr>")[0]
    assert "forgetting" in report_row and "leakage" in report_row
    assert "with template" in html  # the candidate has a system prompt
    assert SCRIPT not in html
    assert 'id="new-run"' not in html
    assert 'id="new-run"' in get(world, reverse("evaluation:list"), "Data Scientist")


def test_a_pm_cannot_open_or_post_the_run_form(world, e_versions):
    client = world.client("PM")
    assert client.get(reverse("evaluation:new")).status_code == 403
    assert client.post(reverse("evaluation:new"), {}).status_code == 403


def run_post(version, **extra) -> dict:
    data = {"model_version": version.pk, "split": "test", "product": "shop", "suites": ["task"],
            "pass_threshold": "0.5", "general_pack": "on", "judge_rubrics": ["correctness"],
            "rules-TOTAL_FORMS": "3", "rules-INITIAL_FORMS": "0", "rules-MIN_NUM_FORMS": "0",
            "rules-MAX_NUM_FORMS": "20"}  # fmt: skip
    data.update(extra)
    return data


def test_an_invalid_regex_rule_is_named_on_the_form_and_nothing_is_saved(world, e_versions, e_cases):
    data = run_post(
        e_versions[1], **{"rules-0-kind": "regex_must", "rules-0-pattern": "([a-z", "rules-0-name": "lower"}
    )
    response = world.client("Data Scientist").post(reverse("evaluation:new"), data)
    assert response.status_code == 400
    errors = response.content.decode().split('id="rule-errors"')[1].split("</ul>")[0]
    assert "rule 1" in errors and "regex" in errors
    assert EvalRun.objects.count() == 0


def test_service_and_form_problems_show_beside_their_fields(world, e_versions):
    data = run_post(e_versions[1], product="nobody-sells-this", few_shot='{"user": "hi"}\nnot json',
                    judge_base_url="ftp://x", judge_model="m")  # fmt: skip
    response = world.client("Data Scientist").post(reverse("evaluation:new"), data)
    assert response.status_code == 400
    html = response.content.decode()
    assert "line 1: needs &quot;user&quot; and &quot;assistant&quot;" in html and "line 2: not JSON" in html
    response = world.client("Data Scientist").post(reverse("evaluation:new"), run_post(e_versions[1],
                                                   product="nobody-sells-this", judge_base_url="ftp://x",
                                                   judge_model="m"))  # fmt: skip
    html = response.content.decode()
    product_field = html.split('id="field-product"')[1].split('id="field-limit"')[0]
    assert "regression suite of product &#x27;nobody-sells-this&#x27; is empty" in product_field
    judge_field = html.split('id="field-judge_base_url"')[1].split('id="field-judge_model"')[0]
    assert "base_url: must be an http:// or https:// URL" in judge_field
    assert EvalRun.objects.count() == 0


def test_a_valid_form_queues_a_run_with_the_rules_and_settings(world, e_versions, e_cases):
    data = run_post(e_versions[1], **{"rules-0-kind": "keywords_forbidden", "rules-0-keywords": "sorry, never",
                                      "max_new_tokens": "64", "temperature": "0.7", "stop": "###\nEND",
                                      "system_prompt": "Be brief.",
                                      "few_shot": '{"user": "hi", "assistant": "hello"}'})  # fmt: skip
    response = world.client("Data Scientist").post(reverse("evaluation:new"), data)
    assert response.status_code == 302
    run = EvalRun.objects.get()
    assert response["Location"] == reverse("evaluation:run", args=[run.pk])
    assert run.status == JobStatus.QUEUED and run.product == "shop" and run.dataset_version is None
    assert [r["kind"] for r in run.rules] == ["keywords_forbidden"] and run.rules[0]["keywords"] == [
        "sorry",
        "never",
    ]
    assert run.generation["max_new_tokens"] == 64 and run.generation["stop"] == ["###", "END"]
    assert run.few_shot == [{"user": "hi", "assistant": "hello"}] and run.has_template


def test_the_run_form_is_prefilled_from_the_query_string(world, e_versions):
    html = get(world, reverse("evaluation:new") + f"?product=shop&model_version={e_versions[0].pk}", "Admin")
    assert 'name="product" value="shop"' in html
    assert f'<option value="{e_versions[0].pk}" selected>' in html


def test_the_run_page_shows_the_leakage_banner_and_every_suite_present(world, e_report):
    run = e_report.candidate
    run.metrics = {
        "task": {"accuracy": 0.5, "macro_f1": 0.4, "n": 6,
                 "confusion": {"labels": ["yes", "no"], "matrix": [[2, 1], [0, 3]]},
                 "per_label": {"yes": {"precision": 1.0, "recall": 0.66, "f1": 0.8, "support": 3}}},
        "judge": {"correctness": {"mean": 3.5, "scored": 5, "errors": 1, "cost": 0.012}},
        "efficiency": {"latency_p95_ms": 120.0}, "robustness": {"clean": 0.5, "noisy": 0.4, "drop": 0.1},
        "general": {"score": 0.5, "n": 4, "by_category": {"math": 0.5}}, "judge_errors": 1,
    }  # fmt: skip
    run.save()
    for i, (judge_score, human) in enumerate([(5, "good"), (2, "bad"), (4, "bad")]):
        EvalResult.objects.filter(run=run, position=i, pack="task").update(
            judge={"correctness": {"score": judge_score, "reason": "r"}}, human_label=human
        )
    html = get(world, reverse("evaluation:run", args=[run.pk]), "PM")
    banner = html.split('id="leakage-banner"')[1].split("</div>")[0]
    assert "1 test example" in banner and "#5 (exact)" in banner
    confusion = html.split('id="confusion"')[1].split("</table>")[0]
    assert re.findall(r"<td class=\"num\">(\d+)</td>", confusion) == ["2", "1", "0", "3"]
    assert 'id="per-label"' in html and 'id="efficiency"' in html and 'id="robustness"' in html
    assert "1 example judge-error" in html
    agreement = html.split('id="agreement"')[1].split("</p>")[0]
    assert (
        "3 labelled examples" in agreement and "2 of 3 agree" in agreement and "κ = <strong>0.4" in agreement
    )
    assert html.count("data-result=") == 10


def test_the_run_status_is_a_polling_partial_while_running(world, e_report):
    run = e_report.candidate
    EvalRun.objects.filter(pk=run.pk).update(status=JobStatus.RUNNING, progress=0.25)
    html = get(world, reverse("evaluation:run", args=[run.pk]), "PM", HTTP_HX_REQUEST="true",
               HTTP_HX_TARGET="run-status")  # fmt: skip
    assert html.lstrip().startswith('<section id="run-status"') and 'hx-trigger="every 3s"' in html
    assert "25 %" in html and "Cancel run" not in html  # a PM may not cancel
    scientist = get(world, reverse("evaluation:run", args=[run.pk]), "Data Scientist")
    assert "Cancel run" in scientist


def test_cancelling_a_running_run_asks_it_to_stop(world, e_report):
    run = e_report.candidate
    EvalRun.objects.filter(pk=run.pk).update(status=JobStatus.RUNNING)
    response = world.client("Data Scientist").post(reverse("evaluation:run-cancel", args=[run.pk]))
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.cancel_requested or run.status == JobStatus.CANCELLED
    assert world.client("PM").post(reverse("evaluation:run-cancel", args=[run.pk])).status_code == 403


def test_an_example_page_shows_saliency_the_case_and_a_label_form(world, e_report):
    result = EvalResult.objects.get(run=e_report.candidate, pack="task", position=0)
    result.saliency = [["refund", 0.8], ["never", -0.4], [SCRIPT, 0.0]]
    result.save()
    url = reverse("evaluation:result", args=[result.run_id, result.pk])
    html = get(world, url, "PM")
    spans = re.findall(r'<span style="background: rgba\(([\d,]+),([\d.]+)\)"', html)
    assert spans == [("22,163,74", "1.0"), ("220,38,38", "0.5"), ("22,163,74", "0.0")]
    assert SCRIPT not in html and "&lt;script&gt;" in html
    assert f'href="{reverse("cases:detail", args=[result.case_id])}"' in html
    assert (
        "Refunds are never possible." in html
        and "You can get a refund" not in html.split('id="prediction"')[1][:80]
    )
    assert 'value="good"' in html
    assert 'value="good"' not in get(world, url, "Architect")


def test_people_with_the_label_permission_label_an_example(world, e_report):
    result = EvalResult.objects.get(run=e_report.candidate, pack="task", position=1)
    url = reverse("evaluation:result-label", args=[result.run_id, result.pk])
    assert world.client("Architect").post(url, {"label": "good"}).status_code == 403
    response = world.client("PM").post(url, {"label": "bad"})
    assert response.status_code == 302
    result.refresh_from_db()
    assert (result.human_label, result.human_labelled_by.username) == ("bad", "pm")
    response = world.client("PM").post(url, {"label": "meh"})
    assert response.status_code == 400
    result.refresh_from_db()
    assert result.human_label == "bad"


def test_a_result_of_another_run_is_not_found(world, e_report):
    result = EvalResult.objects.filter(run=e_report.candidate).first()
    response = world.client("PM").get(reverse("evaluation:result", args=[e_report.baseline_id, result.pk]))
    assert response.status_code == 404


def test_the_report_form_shows_the_services_refusal(world, e_report):
    client = world.client("Data Scientist")
    run = e_report.baseline
    response = client.post(reverse("evaluation:report-new"), {"baseline": run.pk, "candidate": run.pk})
    assert response.status_code == 400
    assert "a run compared with itself says nothing" in response.content.decode()
    other = EvalRun.objects.create(
        model_version=run.model_version, product="shop", status=JobStatus.SUCCEEDED
    )
    EvalResult.objects.create(run=other, position=0, key="elsewhere", prompt=[])
    response = client.post(reverse("evaluation:report-new"), {"baseline": run.pk, "candidate": other.pk})
    assert "the runs score different example sets" in response.content.decode()
    assert ComparisonReport.objects.count() == 1
    response = client.post(reverse("evaluation:report-new"),
                           {"baseline": run.pk, "candidate": e_report.candidate_id, "name": "again"})  # fmt: skip
    report = ComparisonReport.objects.get(name="again")
    assert response["Location"] == reverse("evaluation:report", args=[report.pk]) and report.status == "ready"
    assert world.client("PM").get(reverse("evaluation:report-new")).status_code == 403


def test_the_report_warns_of_leakage_and_forgetting_and_draws_its_charts(world, e_report):
    html = get(world, reverse("evaluation:report", args=[e_report.pk]))
    banner = html.split('id="leakage-banner"')[1].split("</div>")[0]
    assert "untrustworthy: 1 test example" in banner
    assert 'id="forgetting-banner"' in html and "dropped by 0.5" in html
    metrics = html.split('id="metrics"')[1].split("</section>")[0]
    assert "untrustworthy" in metrics and 'data-metric="accuracy"' in metrics and "<svg" in metrics
    assert metrics.count('class="whisker"') >= 1
    forgetting = html.split('id="forgetting"')[1].split("</section>")[0]
    assert forgetting.count('class="flagged"') == 3  # overall + both categories
    cases = html.split('id="case-outcomes"')[1].split("</ul>")[0]
    assert re.search(r"<strong>1</strong> <a href=\"\?case_outcome=newly_broken#items\">newly broken", cases)
    assert "<svg" in html.split('id="by-tag"')[1].split("</section>")[0]
    assert SCRIPT not in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("outcome=loss", [("loss", "newly_broken"), ("loss", ""), ("loss", ""), ("loss", "")]),  # 2 general
        ("case_outcome=newly_broken", [("loss", "newly_broken")]),
        ("case_outcome=fixed", [("win", "fixed")]),
        ("category=shipping", [("tie", "still_wrong"), ("tie", "still_right")]),
        ("tag=refund", [("loss", "newly_broken"), ("win", "fixed")]),
        ("outcome=win&category=account", [("win", "")]),
    ],
)
def test_the_report_filters_return_only_matching_examples(world, e_report, query, expected):
    html = get(world, reverse("evaluation:report", args=[e_report.pk]) + "?" + query)
    items = html.split('id="items"')[1]
    assert item_rows(items) == expected


def test_an_htmx_filter_returns_only_the_list_and_bad_values_are_ignored(world, e_report):
    url = reverse("evaluation:report", args=[e_report.pk]) + "?case_outcome=newly_broken"
    html = get(world, url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="items")
    assert html.lstrip().startswith('<section class="card" id="items">') and 'id="metrics"' not in html
    assert len(item_rows(html)) == 1
    everything = get(
        world, reverse("evaluation:report", args=[e_report.pk]) + "?outcome=bogus&case_outcome=x"
    )
    assert len(item_rows(everything.split('id="items"')[1])) == 10  # 6 task + 4 general


def test_the_side_by_side_page_diffs_the_outputs_word_by_word_and_escapes_them(world, e_report):
    item = e_report.items.get(pack="task", baseline__position=4)
    html = get(
        world, reverse("evaluation:report-item", args=[e_report.pk, item.pk]) + "?back=%3Foutcome%3Dloss"
    )
    baseline = html.split('id="baseline-output">')[1].split("</div>")[0]
    candidate = html.split('id="candidate-output">')[1].split("</div>")[0]
    assert "<del>" in baseline and "<ins>" in candidate
    assert "&lt;script&gt;" in candidate and SCRIPT not in html
    assert f'href="{reverse("evaluation:report", args=[e_report.pk])}?outcome=loss#items"' in html
    case_item = e_report.items.get(case_outcome="newly_broken")
    case_html = get(world, reverse("evaluation:report-item", args=[e_report.pk, case_item.pk]))
    assert f'href="{reverse("cases:detail", args=[case_item.baseline.case_id])}"' in case_html


def test_an_item_of_another_report_is_not_found(world, e_report):
    other = ComparisonReport.objects.create(baseline=e_report.baseline, candidate=e_report.candidate)
    item = e_report.items.first()
    response = world.client("PM").get(reverse("evaluation:report-item", args=[other.pk, item.pk]))
    assert response.status_code == 404
