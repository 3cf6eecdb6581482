"""A data scientist turns approved cases into a dataset version: create the dataset, build v1 with an 80/10/10
split on a real worker, read the data card's drop-reason funnel and follow the lineage back to a case."""

import re

from playwright.sync_api import expect

from datasets_app.dedup import fingerprint
from datasets_app.models import ErrorCase, Tag
from datasets_app.models.cases import CaseStatus
from tests.e2e.conftest import login, screenshot

QUESTIONS = [
    ("退货运费谁承担?", "质量问题的退货运费由我们承担, 其他情况由买家承担。"),
    ("How long does a refund take?", "Refunds reach your card within 7 working days."),
    ("发票可以开公司抬头吗?", "可以, 在订单详情页填写公司名称和税号即可。"),
    (
        "Can I change my delivery address?",
        "Yes, until the parcel leaves the warehouse: open the order and edit it.",
    ),
    ("会员积分什么时候过期?", "积分在获得后的第二年年底过期。"),
    ("Do you ship to Canada?", "Yes, to every province; customs duties are shown at checkout."),
    ("怎么修改登录密码?", "在「账户设置」里选择「安全」, 再点「修改密码」。"),
    ("Is the warranty transferable?", "Yes, the two-year warranty follows the product to its new owner."),
    ("快递显示签收但我没收到怎么办?", "请先联系快递员确认, 24 小时内仍未找到请提交工单, 我们会补发。"),
    ("Can I pay with two cards?", "No, one order takes one card; split the cart into two orders instead."),
]


def approved_cases() -> list[ErrorCase]:
    tag = Tag.objects.get_or_create(name="outdated_knowledge", defaults={"label": "Outdated knowledge"})[0]
    cases = []
    for i, (question, answer) in enumerate(QUESTIONS):
        messages = [{"role": "user", "content": f"{question} (order {i + 1000})"}]
        bad = f"Old policy answer number {i}."
        case = ErrorCase.objects.create(messages=messages, bad_output=bad, expected_output=answer + " [0]",
                                        status=CaseStatus.APPROVED, product="shop",
                                        fingerprint=fingerprint(messages, bad))  # fmt: skip
        case.tags.add(tag)
        cases.append(case)
    duplicate = [{"role": "user", "content": QUESTIONS[0][0] + " (order 1000)"}]  # the same case once more
    cases.append(ErrorCase.objects.create(messages=duplicate, bad_output="dup", status=CaseStatus.APPROVED,
                                          expected_output=QUESTIONS[0][1] + " [0]",
                                          fingerprint=fingerprint(duplicate, "dup")))  # fmt: skip
    return cases


def test_a_data_scientist_builds_v1_from_approved_cases_and_follows_the_lineage(
    page, live_server, world, start_worker, settings, tmp_path
):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    start_worker(queues="cpu", ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT))
    cases = approved_cases()
    nav = page.get_by_role("navigation", name="Main")

    # 1. Datasets → create one for chat SFT.
    login(page, live_server, "scientist")
    nav.get_by_role("link", name="Datasets").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Datasets")
    form = page.locator("#create-dataset")
    form.get_by_label("Name").fill("shop support answers")
    form.get_by_label("Product").fill("shop")
    form.get_by_label("Task type").select_option("chat")
    form.get_by_role("button", name="Create dataset").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("shop support answers")
    screenshot(page, "datasets-01-created.png")

    # 2. New version: approved cases, an 80/10/10 split (the defaults), built on the cpu worker.
    page.get_by_role("link", name="New version").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New version of shop support answers")
    split = page.locator("#split-fields")
    for name, value in (("train", "0.8"), ("validation", "0.1"), ("test", "0.1")):
        split.get_by_label(re.compile(name, re.I)).first.fill(value)
    screenshot(page, "datasets-02-recipe.png")
    page.get_by_role("button", name="Build version").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("shop support answers v1")
    expect(page.locator("[data-version-status]")).to_have_text("ready", timeout=90_000)
    screenshot(page, "datasets-03-data-card.png")

    # 3. The data card: rows per split and the funnel, where dedup dropped the repeated case.
    sizes = page.locator("#sizes")
    expect(sizes.locator("tr").filter(has_text="train")).to_contain_text("8")  # 10 distinct cases: 8 / 1 / 1
    expect(sizes.locator("tr").filter(has_text="test")).to_contain_text("1")
    dedup = page.locator("#funnel [data-step=dedup]")
    expect(dedup.locator("[data-rows-in]")).to_have_text("11")
    expect(dedup.locator("[data-rows-out]")).to_have_text("10")
    dedup.locator("summary").first.click()
    expect(dedup.locator("details").first).to_contain_text("duplicate")
    expect(page.locator("#leakage")).to_contain_text("0")
    screenshot(page, "datasets-04-funnel.png")

    # 4. Lineage: a sample row links back to the error case it came from.
    link = page.locator("#sample-rows [data-case-link]").first
    case_id = int(link.get_attribute("data-case-link"))
    assert case_id in {c.pk for c in cases}
    link.click()
    expect(page).to_have_url(re.compile(rf"/cases/{case_id}/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Case #{case_id}")
    screenshot(page, "datasets-05-lineage-case.png")
