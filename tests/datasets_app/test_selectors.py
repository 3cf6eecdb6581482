"""Reads of the notebook: trigger-kept status counts, search in Chinese and English, dashboard figures."""

from django.db.models import Count

from datasets_app.models import ErrorCase, Tag
from datasets_app.search import search_text
from datasets_app.selectors import CaseFilters, case_page, funnel, status_counts, top_tags
from datasets_app.services.cases import case_create, case_set_status, cases_merge


def live_counts() -> dict:
    rows = ErrorCase.objects.filter(merged_into=None).values_list("status").annotate(n=Count("pk")).order_by()
    return {status: dict(rows).get(status, 0) for status in status_counts()}


def new_case(text: str, expected: str = "", tags=()) -> ErrorCase:
    return case_create(user=None, messages=[{"role": "user", "content": text}], bad_output="bad " + text,
                       expected_output=expected, tags=list(tags))  # fmt: skip


def test_status_counts_stay_equal_to_a_live_count_through_creates_moves_merges_and_deletes(world):
    cases = [new_case(f"question {i}", expected="fixed" if i % 2 else "") for i in range(6)]
    assert status_counts() == live_counts() == {**status_counts(), "new": 3, "corrected": 3}
    case_set_status(case_id=cases[1].pk, user=world.users["PM"], status="approved")
    case_set_status(
        case_id=cases[0].pk, user=world.users["PM"], status="rejected", reason="not a real failure"
    )
    cases_merge(primary_id=cases[2].pk, other_ids=[cases[4].pk], user=world.users["PM"])
    ErrorCase.objects.filter(pk=cases[5].pk).delete()
    assert status_counts() == live_counts()
    assert status_counts()["approved"] == 1 and sum(status_counts().values()) == 4


def test_search_finds_chinese_phrases_single_characters_and_english_prefixes(db):
    refund = new_case("退货政策是七天吗? Refund please")
    other = new_case("发票什么时候开? invoice")
    found = {
        q: [c.pk for c in case_page(CaseFilters(q=q)).cases]
        for q in ("退货", "政策是", "票", "refun", "七天 refund")
    }
    assert found == {"退货": [refund.pk], "政策是": [refund.pk], "票": [other.pk], "refun": [refund.pk],
                     "七天 refund": [refund.pk]}  # fmt: skip
    assert case_page(CaseFilters(q="政退")).cases == []  # the characters, but not as a phrase


def test_the_search_text_holds_lowercased_words_and_cjk_bigrams_with_each_runs_last_character(db):
    assert search_text("Refund in 7 days", "退货政策") == "refund in 7 days 退货 货政 政策 策"


def test_top_tags_count_cases_and_leave_out_unused_tags(db):
    for name in ("hallucination", "tone", "format"):
        Tag.objects.get_or_create(name=name, defaults={"label": name.title()})
    new_case("a", tags=["hallucination"])
    new_case("b", tags=["hallucination", "tone"])
    assert top_tags() == [("Hallucination", 2), ("Tone", 1)]


def test_the_funnel_counts_cases_that_reached_each_stage(world):
    first, second = new_case("one", expected="fixed"), new_case("two")
    case_set_status(case_id=first.pk, user=world.users["PM"], status="approved")
    assert funnel() == [("new", 2), ("triaged", 1), ("corrected", 1), ("approved", 1)]
    assert second.status == "new"
