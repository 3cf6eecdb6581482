"""The regression suite page: every approved error case of a product × every model version that has results on
them, the latest result of each (from succeeded runs) as pass / fail / —, pass counts, and the run link."""

import re

from django.urls import reverse

from datasets_app.models import ErrorCase
from evaluation_app.models import EvalResult, EvalRun
from llmops.jobs import JobStatus


def cells(html: str) -> dict[int, list[str]]:
    rows = re.findall(r'<tr data-case="(\d+)">(.*?)</tr>', html, re.S)
    return {int(pk): re.findall(r'data-cell="(\w+)"', body) for pk, body in rows}


def test_the_matrix_shows_the_latest_result_per_case_and_version(world, e_report, e_cases, e_versions):
    base, tuned = e_versions
    # a later succeeded run of the base fixes case 2; a failed run's results are ignored
    later = EvalRun.objects.create(model_version=base, product="shop", status=JobStatus.SUCCEEDED)
    EvalResult.objects.create(run=later, position=0, key="key2", case=e_cases[2], prompt=[], correct=True)
    failed = EvalRun.objects.create(model_version=tuned, product="shop", status=JobStatus.FAILED)
    EvalResult.objects.create(run=failed, position=0, key="key0", case=e_cases[0], prompt=[], correct=True)
    ErrorCase.objects.create(messages=[], bad_output="x", expected_output="y", fingerprint="z", status="approved",
                             product="other")  # fmt: skip
    html = world.client("PM").get(reverse("evaluation:regression") + "?product=shop").content.decode()
    assert cells(html) == {
        e_cases[0].pk: ["pass", "fail"],  # newly broken by v2
        e_cases[1].pk: ["fail", "pass"],
        e_cases[2].pk: ["pass", "fail"],
        e_cases[3].pk: ["pass", "pass"],
    }
    headers = re.findall(r'<th data-version="(\d+)">', html)
    assert headers == [str(base.pk), str(tuned.pk)]
    assert f'data-passed="{base.pk}">3 / 4<' in html and f'data-passed="{tuned.pk}">2 / 4<' in html
    assert f'href="{reverse("cases:detail", args=[e_cases[0].pk])}"' in html
    assert "Run the suite" not in html  # a PM may not submit


def test_every_product_by_default_and_a_case_never_run_shows_a_dash(world, e_report, e_cases):
    extra = ErrorCase.objects.create(messages=[{"role": "user", "content": "new one"}], bad_output="x",
                                     expected_output="y", fingerprint="z", status="approved", product="other")  # fmt: skip
    ErrorCase.objects.create(messages=[], bad_output="x", expected_output="y", fingerprint="w", status="corrected",
                             product="other")  # fmt: skip
    html = world.client("Data Scientist").get(reverse("evaluation:regression")).content.decode()
    matrix = cells(html)
    assert set(matrix) == {c.pk for c in e_cases} | {extra.pk}
    assert matrix[extra.pk] == ["none", "none"]
    assert '<option value="other">' in html and '<option value="shop">' in html


def test_the_run_link_prefills_the_form_with_the_product(world, e_report, e_versions):
    html = (
        world.client("Data Scientist")
        .get(reverse("evaluation:regression") + "?product=shop")
        .content.decode()
    )
    link = f"{reverse('evaluation:new')}?product=shop&amp;model_version={e_versions[1].pk}"
    assert link in html
    form = world.client("Data Scientist").get(link.replace("&amp;", "&")).content.decode()
    assert 'name="product" value="shop"' in form
