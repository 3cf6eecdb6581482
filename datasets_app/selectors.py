"""Reads of the error notebook: the filtered, searchable, keyset-paginated list and the curation figures."""

from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db import connection
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate

from datasets_app.models import CaseStatus, CaseStatusCount, ErrorCase, Tag
from datasets_app.search import tokens, tsquery

PAGE_SIZE = 50


@dataclass
class CaseFilters:
    status: str = ""
    tag: str = ""
    severity: str = ""
    source: str = ""
    product: str = ""
    assignee: str = ""  # a user id, or "none"
    date_from: date | None = None
    date_to: date | None = None
    q: str = ""

    def is_empty(self) -> bool:
        return not any(vars(self).values())


@dataclass
class CasePage:
    cases: list[ErrorCase]
    next_after: int | None
    filters: CaseFilters = field(default_factory=CaseFilters)


def _search(qs: QuerySet, q: str) -> QuerySet:
    if connection.vendor == "postgresql":
        query = tsquery(q)
        if not query:
            return qs
        return qs.extra(
            where=["datasets_app_errorcase.search_vector @@ to_tsquery('simple', %s)"], params=[query]
        )
    for token in tokens(q):
        qs = qs.filter(search_text__contains=token)
    return qs


def cases_filtered(filters: CaseFilters) -> QuerySet:
    qs = ErrorCase.objects.filter(merged_into=None)
    exact = {"status": filters.status, "severity": filters.severity, "source": filters.source}
    qs = qs.filter(**{k: v for k, v in exact.items() if v})
    if filters.product:
        qs = qs.filter(product=filters.product)
    if filters.tag:
        qs = qs.filter(pk__in=Tag.cases.through.objects.filter(tag__name=filters.tag).values("errorcase_id"))
    if filters.assignee == "none":
        qs = qs.filter(assignee=None)
    elif filters.assignee:
        qs = qs.filter(assignee_id=filters.assignee)
    if filters.date_from:
        qs = qs.filter(created_at__date__gte=filters.date_from)
    if filters.date_to:
        qs = qs.filter(created_at__date__lte=filters.date_to)
    if filters.q.strip():
        qs = _search(qs, filters.q)
    return qs


def case_page(filters: CaseFilters, *, after: int | None = None, limit: int = PAGE_SIZE) -> CasePage:
    """Keyset pagination on id (newest first): page N costs the same as page 1."""
    qs = cases_filtered(filters)
    if after:
        qs = qs.filter(pk__lt=after)
    rows = list(
        qs.select_related("assignee")
        .prefetch_related("tags")
        .defer("search_text", "minhash", "metadata")
        .order_by("-pk")[: limit + 1]
    )
    more = len(rows) > limit
    rows = rows[:limit]
    _annotate_similar(rows)
    return CasePage(cases=rows, next_after=rows[-1].pk if more else None, filters=filters)


def _annotate_similar(cases: list[ErrorCase]) -> None:
    groups = {c.near_dup_group for c in cases if c.near_dup_group}
    sizes = {}
    if groups:
        sizes = dict(
            ErrorCase.objects.filter(near_dup_group__in=groups, merged_into=None)
            .values_list("near_dup_group")
            .annotate(n=Count("pk"))
            .order_by()
        )
    for case in cases:
        case.similar_count = max(sizes.get(case.near_dup_group, 1) - 1, 0) if case.near_dup_group else 0


def status_counts() -> dict[str, int]:
    """Cases per status in the whole notebook (merged cases excluded)."""
    if connection.vendor == "postgresql":
        counts = dict(CaseStatusCount.objects.values_list("status", "n"))
    else:
        rows = (
            ErrorCase.objects.filter(merged_into=None)
            .values_list("status")
            .annotate(n=Count("pk"))
            .order_by()
        )
        counts = dict(rows)
    return {s: counts.get(s, 0) for s in CaseStatus.values}


def funnel() -> list[tuple[str, int]]:
    """Reached-at-least counts: every case is 'new' once; approved ones went through all stages."""
    counts = status_counts()
    order = [CaseStatus.NEW, CaseStatus.TRIAGED, CaseStatus.CORRECTED, CaseStatus.APPROVED]
    reached = []
    for i, status in enumerate(order):
        reached.append((status, sum(counts[s] for s in order[i:])))
    return reached


def new_cases_per_tag(days: int = 30) -> dict:
    """{dates: [...], series: {tag: [count per day]}} for the dashboard chart."""
    start = date.today() - timedelta(days=days - 1)
    rows = (
        Tag.cases.through.objects.filter(errorcase__created_at__date__gte=start, errorcase__merged_into=None)
        .annotate(day=TruncDate("errorcase__created_at"))
        .values_list("tag__name", "day")
        .annotate(n=Count("pk"))
        .order_by()
    )
    dates = [start + timedelta(days=i) for i in range(days)]
    index = {d: i for i, d in enumerate(dates)}
    series: dict[str, list[int]] = {}
    for tag, day, n in rows:
        series.setdefault(tag, [0] * days)[index[day]] += n
    return {"dates": [d.isoformat() for d in dates], "series": series}


def top_tags(limit: int = 10) -> list[tuple[str, int]]:
    """The most used tags on cases in the list (a tag with no case is not a top tag)."""
    rows = (
        Tag.cases.through.objects.filter(errorcase__merged_into=None)
        .values_list("tag__label")
        .annotate(n=Count("pk"))
        .order_by("-n", "tag__label")
    )
    return list(rows[:limit])


def open_cases_per_assignee() -> list[tuple[str, int]]:
    open_statuses = [CaseStatus.NEW, CaseStatus.TRIAGED, CaseStatus.CORRECTED]
    rows = (
        ErrorCase.objects.filter(merged_into=None, status__in=open_statuses)
        .values_list("assignee__username")
        .annotate(n=Count("pk"))
        .order_by("-n")
    )
    return [(name or "(unassigned)", n) for name, n in rows]


def similar_cases(case: ErrorCase) -> QuerySet:
    if not case.near_dup_group:
        return ErrorCase.objects.none()
    return ErrorCase.objects.filter(near_dup_group=case.near_dup_group, merged_into=None).exclude(pk=case.pk)


def neighbours(case: ErrorCase, filters: CaseFilters) -> tuple[int | None, int | None]:
    """(previous, next) case ids in the filtered list order (newest first), for triage mode."""
    qs = cases_filtered(filters)
    newer = qs.filter(pk__gt=case.pk).order_by("pk").values_list("pk", flat=True).first()
    older = qs.filter(pk__lt=case.pk).order_by("-pk").values_list("pk", flat=True).first()
    return newer, older
