"""Reads of the error notebook: the filtered, searchable, keyset-paginated list and the curation figures."""

import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from datasets_app.models import CaseStatus, CaseStatusCount, ErrorCase, Tag
from datasets_app.search import tokens, tsquery

PAGE_SIZE = 50
# A filtered page is normally read by walking the id index from the newest case and stopping when the page is
# full. When the planner expects the filters to match only a few cases (a rare word, a small product, ...), that walk
# can read most of the table before it finds them; those pages collect all matching ids instead (bitmap scans of the
# filters' indexes) and keep the newest. Cases of a date range were created together and lie together in the table,
# so collecting even many of them is cheap, while the walk from the newest case to an old day is long.
# bench/list_latency.py measures both ("day", "search_rare"); bench/RESULTS.md has the figures.
FEW_ROWS = 4_000
FEW_ROWS_DATED = 50_000


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
        # the tag's id as a constant, so that the planner knows how common the tag is and walks the
        # (tag_id, errorcase_id) index newest first (migration 0004)
        tag_id = Tag.objects.filter(name=filters.tag).values_list("pk", flat=True).first()
        if tag_id is None:
            return qs.none()
        qs = qs.filter(pk__in=Tag.cases.through.objects.filter(tag_id=tag_id).values("errorcase_id"))
    if filters.assignee == "none":
        qs = qs.filter(assignee=None)
    elif filters.assignee:
        qs = qs.filter(assignee_id=filters.assignee)
    # created_at__date__gte/lte as a range on created_at itself (same cases: the first instant of the day in the
    # current time zone), which the created_at index can serve
    if filters.date_from and filters.date_from > date.min:
        qs = qs.filter(created_at__gte=_day_start(filters.date_from))
    if filters.date_to and filters.date_to < date.max:
        qs = qs.filter(created_at__lt=_day_start(filters.date_to + timedelta(days=1)))
    if filters.q.strip():
        qs = _search(qs, filters.q)
    return qs


def _day_start(day: date) -> datetime:
    """The first instant whose date in the current time zone is `day` (fold=0: the earlier of a repeated hour,
    and the first existing instant when midnight is skipped)."""
    start = datetime.combine(day, time.min)
    return timezone.make_aware(start) if settings.USE_TZ else start


def _estimated_rows(qs: QuerySet) -> float:
    """The planner's estimate of how many rows the filters match (EXPLAIN: planning only, nothing is read)."""
    sql, params = qs.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return plan[0]["Plan"]["Plan Rows"]


def _few_ids(qs: QuerySet, filters: CaseFilters, limit: int) -> list[int] | None:
    """The newest `limit` ids matching filters that are expected to match few cases; None when they are not
    expected to, or match more than twice as many as that (then the walk is the better plan after all)."""
    if connection.vendor != "postgresql" or qs.query.is_empty():
        return None
    few = FEW_ROWS_DATED if filters.date_from or filters.date_to else FEW_ROWS
    if _estimated_rows(qs) > few:
        return None
    cap = 2 * few
    sql, params = qs.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), (array_agg(pk ORDER BY pk DESC))[1:%s] FROM ({sql} LIMIT %s) AS matching",
            (limit, *params, cap + 1),
        )
        count, ids = cursor.fetchone()
    return None if count > cap else ids or []


def case_page(filters: CaseFilters, *, after: int | None = None, limit: int = PAGE_SIZE) -> CasePage:
    """Keyset pagination on id (newest first): page N costs the same as page 1."""
    qs = cases_filtered(filters)
    if after:
        qs = qs.filter(pk__lt=after)
    if not filters.is_empty():
        ids = _few_ids(qs, filters, limit + 1)
        if ids is not None:
            qs = qs.filter(pk__in=ids)
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


def case_products(limit: int = 200) -> list[str]:
    """The distinct non-empty products (the first `limit` in the database's order), sorted.

    On PostgreSQL a loose index scan of the (product, id) index: one probe per product instead of reading an
    entry per case, so it costs the same for a thousand cases as for a million."""
    if connection.vendor != "postgresql":
        rows = ErrorCase.objects.exclude(product="").values_list("product", flat=True).distinct()
        return sorted(rows.order_by("product")[:limit])
    table = ErrorCase._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH RECURSIVE products(product) AS (
                (SELECT product FROM {table} WHERE product > '' ORDER BY product LIMIT 1)
                UNION ALL
                SELECT (SELECT p.product FROM {table} AS p WHERE p.product > products.product
                        ORDER BY p.product LIMIT 1)
                FROM products WHERE products.product IS NOT NULL
            )
            SELECT product FROM products WHERE product IS NOT NULL LIMIT %s
            """,
            [limit],
        )
        return sorted(row[0] for row in cursor.fetchall())


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
