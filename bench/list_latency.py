#!/usr/bin/env python3
"""Server time of the error notebook's list view on a big notebook: keyset pages and full-text search vs OFFSET
pages and icontains.

    .venv/bin/python bench/list_latency.py [--quick] [--cases N] [--reps R] [--reference-reps R] [--explain]

Loads N cases (default 1,000,000; --quick 50,000) straight into a throwaway PostgreSQL with INSERT ... SELECT FROM
generate_series, one slice per core (400 distinct Chinese/English texts prepared by the import pipeline's own
`prepare_content`, cycled by the database; statuses, severities, sources, 20 products, 0-2 tags, assignees,
near-duplicate groups, 1% merged cases, created_at spread over 180 days), indexes and foreign keys dropped for the
load and rebuilt after it, then VACUUM ANALYZE; checks that the trigger-kept status counts match the table.
Then, logged in as a PM, requests the real list view (`cases:list` through Django's test Client and the project's
middleware) for each kind below, interleaved, R times (default 50) after two warm-up rounds, and times the view
call itself: server time, i.e. its queries and the template rendering (wall clock; the process's CPU time beside
it). Kinds: the first page, a filtered page (status+severity+product), a tag, one day four months back, a page deep
in the keyset (`after=` an id near the oldest), searches for common English and Chinese words, and for a rare word.
--explain prints every kind's queries and EXPLAIN ANALYZE of those over 5 ms.
Reference, in the same process and through the same view: the page query swapped for Django's default
(`Paginator`: COUNT + OFFSET) and `bad_output__icontains` for search, on the deep page and the three searches
(10 requests per kind above 100k cases). `ratio` = reference p95 / ours p95 on those same kinds.
The last line is one JSON object.
"""

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import time
from contextlib import contextmanager
from datetime import timedelta

from _common import django_on_postgres, machine

QUICK_CASES = 50_000
TEXTS = 400  # distinct case texts, cycled over the rows
RARE_SHARE = 0.0005  # the share of rows carrying the rare text (a word no other text has)
RARE_WORD = "warranty"
PRODUCTS = [
    "shop-assistant", "after-sales", "checkout-bot", "returns-desk", "delivery-tracker", "billing-help",
    "loyalty-club", "store-locator", "size-advisor", "gift-cards", "b2b-portal", "seller-center",
    "app-onboarding", "voice-assistant", "price-watch", "coupon-helper", "warehouse-ops", "hr-helpdesk",
    "it-helpdesk", "legal-faq",
]  # fmt: skip
USERS = ["pm", "alice", "bob", "chen.wei", "li.na", "dmitri"]
STATUSES = [("new", 0.55), ("triaged", 0.15), ("corrected", 0.10), ("approved", 0.15), ("rejected", 0.05)]
SEVERITIES = [("low", 0.30), ("medium", 0.40), ("high", 0.22), ("critical", 0.08)]
SOURCES = [("import", 0.50), ("user_feedback", 0.25), ("monitoring", 0.15), ("api", 0.07), ("manual", 0.03)]


def _pick(weighted: list[tuple[str, float]], column: str) -> str:
    """A SQL CASE that maps a uniform random column onto the weighted values."""
    parts, edge = [], 0.0
    for value, share in weighted[:-1]:
        edge += share
        parts.append(f"WHEN {column} < {edge:.4f} THEN '{value}'")
    return f"CASE {' '.join(parts)} ELSE '{weighted[-1][0]}' END"


def case_texts(count: int) -> list[dict]:
    """Distinct case texts as the import stores them (PII scrubbed, search_text built by search.search_text)."""
    from ingest import synthetic_case

    from datasets_app.services.prepare import Scrubber, prepare_content

    rng = random.Random(11)
    scrubber = Scrubber.from_database()
    rare = {
        "messages": [{"role": "user", "content": f"Is the {RARE_WORD} on my headphones still valid? 保修卡丢了怎么办?"},
                     {"role": "assistant", "content": "Yes, 保修期 is two years."}],
        "expected": "",
    }  # fmt: skip
    texts = []
    for i in range(count):
        case = rare if i == 0 else synthetic_case(i, rng)
        messages, bad = case["messages"][:-1], case["messages"][-1]["content"]
        prepared = prepare_content(scrubber, messages, bad, case["expected"])
        texts.append(
            {"messages": json.dumps(prepared.messages, ensure_ascii=False), "bad": prepared.bad_output,
             "expected": prepared.expected_output, "search_text": prepared.search_text}
        )  # fmt: skip
    return texts


def _loose_indexes(cursor, table: str) -> list[tuple[str, str]]:
    """(name, definition) of the table's indexes that back no constraint: dropped for the load, rebuilt after."""
    cursor.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = %s::regclass AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        [table],
    )
    return cursor.fetchall()


def _foreign_keys(cursor, table: str) -> list[tuple[str, str, str]]:
    """(table, name, definition) of the table's foreign keys: dropped for the load, added (and checked) after."""
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
        [table],
    )
    return [(table, name, definition) for name, definition in cursor.fetchall()]


CASES_SQL = f"""
INSERT INTO datasets_app_errorcase (id, messages, bad_output, expected_output, task_type, severity, source,
    product, feature, model_version, status, rejection_reason, assignee_id, metadata, flags, fingerprint,
    search_text, minhash, near_dup_group, merged_into_id, import_job_id, version, created_by_id, updated_by_id,
    created_at, updated_at)
SELECT g, (%(messages)s::text[])[t]::jsonb, (%(bad)s::text[])[t], (%(expected)s::text[])[t],
    CASE WHEN r_task < 0.05 THEN 'classification' ELSE 'chat' END,
    {_pick(SEVERITIES, "r_sev")}, {_pick(SOURCES, "r_src")},
    CASE WHEN r_prod < 0.03 THEN '' ELSE (%(products)s::text[])[1 + floor(20 * r_prod * r_prod)::int] END,
    CASE WHEN r_task < 0.5 THEN 'faq' ELSE 'orders' END, 'acme-chat-v' || (1 + g * 4 / %(n)s),
    {_pick(STATUSES, "r_status")}, CASE WHEN r_status >= 0.95 THEN 'Not a model error.' ELSE '' END,
    CASE WHEN r_asg >= 0.6 THEN (%(users)s::bigint[])[1 + floor((r_asg - 0.6) / 0.4 * %(nusers)s)::int] END,
    '{{}}'::jsonb, '[]'::jsonb, encode(sha256(convert_to('bench case ' || g, 'UTF8')), 'hex'),
    (%(search)s::text[])[t], NULL,
    CASE WHEN r_dup < 0.03 THEN 1 + floor(r_dup / 0.03 * %(groups)s)::bigint END,
    CASE WHEN r_merge < 0.01 AND g > 10 THEN g - 1 - g %% 7 END,
    NULL, 1, %(creator)s, %(creator)s, at, at + r_task * interval '3 days'
FROM (
    SELECT g, random() AS r_status, random() AS r_sev, random() AS r_src, random() AS r_prod, random() AS r_asg,
        random() AS r_task, random() AS r_dup, random() AS r_merge,
        CASE WHEN random() < %(rare)s THEN 1 ELSE 2 + floor(random() * (%(k)s - 1))::int END AS t,
        now() - interval '180 days' + (g::float8 / %(n)s) * interval '180 days' - random() * interval '1 hour' AS at
    FROM generate_series(%(lo)s, %(hi)s) AS g
) AS rows
"""  # fmt: skip
LINKS_SQL = """
INSERT INTO datasets_app_errorcase_tags (errorcase_id, tag_id)
SELECT s.g, (%(tags)s::bigint[])[1 + (s.first + u.step) %% %(ntags)s]
FROM (SELECT g, floor(random() * 3)::int AS k, floor(random() * %(ntags)s)::int AS first,
             1 + floor(random() * (%(ntags)s - 1))::int AS second
      FROM generate_series(1, %(n)s) AS g) AS s,
     LATERAL unnest(ARRAY[0, s.second]) WITH ORDINALITY AS u(step, i)
WHERE u.i <= s.k
"""


def _insert_cases(params: dict, seed: float) -> None:
    """One slice of the cases (its own connection, so that the slices run side by side)."""
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT setseed(%s)", [seed])
            cursor.execute(CASES_SQL, params)
    finally:
        connection.close()


def load(n: int) -> dict:
    """N cases, their tag links and users, straight in SQL; returns timings and sizes."""
    from concurrent.futures import ThreadPoolExecutor

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection

    from datasets_app.models import ErrorCase, Tag
    from llmops.bootstrap import ensure_roles
    from llmops.roles import PM

    ensure_roles(Group)
    users = []
    for name in USERS:
        user = get_user_model().objects.create_user(name, password="bench-password-1")
        if name == "pm":
            user.groups.add(Group.objects.get(name=PM))
        users.append(user.pk)
    tag_ids = list(Tag.objects.order_by("pk").values_list("pk", flat=True))
    started = time.perf_counter()
    texts = case_texts(TEXTS)
    table, links = ErrorCase._meta.db_table, ErrorCase.tags.through._meta.db_table
    assert (table, links) == ("datasets_app_errorcase", "datasets_app_errorcase_tags")
    params = {"messages": [t["messages"] for t in texts], "bad": [t["bad"] for t in texts],
              "expected": [t["expected"] for t in texts], "search": [t["search_text"] for t in texts],
              "products": PRODUCTS, "users": users, "nusers": len(users), "n": n, "k": len(texts),
              "groups": max(n * 3 // 100 // 5, 1),  # 3% of the cases in near-duplicate groups of about five
              "rare": RARE_SHARE, "creator": users[0]}  # fmt: skip
    with connection.cursor() as cursor:
        # the bulk-load recipe of pg_restore: rows first, then indexes and foreign keys (one check each)
        keys = _foreign_keys(cursor, links) + _foreign_keys(cursor, table)
        for owner, name, _ in keys:
            cursor.execute(f"ALTER TABLE {owner} DROP CONSTRAINT {name}")
        dropped = _loose_indexes(cursor, table) + _loose_indexes(cursor, links)
        for name, _ in dropped:
            cursor.execute(f"DROP INDEX {name}")
        # the generated tsvector (CJK bigrams by regular expressions) is most of the cost: one slice per core
        slices = max(1, min(os.cpu_count() or 1, 8, n // 10_000))
        bounds = [n * i // slices for i in range(slices + 1)]
        with ThreadPoolExecutor(slices) as pool:
            done = [pool.submit(_insert_cases, {**params, "lo": lo + 1, "hi": hi}, (i + 1) / (slices + 1))
                    for i, (lo, hi) in enumerate(itertools.pairwise(bounds))]  # fmt: skip
            for future in done:
                future.result()
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), %s)", [n])  # next case: N+1
        cursor.execute("SELECT setseed(0.5)")
        cursor.execute(LINKS_SQL, {"tags": tag_ids, "ntags": len(tag_ids), "n": n})
        inserted = time.perf_counter() - started
        cursor.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in dropped:
            cursor.execute(definition)
        for owner, name, definition in reversed(keys):
            cursor.execute(f"ALTER TABLE {owner} ADD CONSTRAINT {name} {definition}")
        indexed = time.perf_counter() - started - inserted
        cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute(f"VACUUM ANALYZE {links}")
        cursor.execute("RESET maintenance_work_mem")
        cursor.execute(f"SELECT pg_total_relation_size('{table}')")
        size = cursor.fetchone()[0]
    return {"seconds": time.perf_counter() - started, "insert_s": inserted, "index_s": indexed,
            "bytes": size, "indexes_rebuilt": len(dropped), "slices": slices}  # fmt: skip


def check_counts(n: int) -> dict[str, int]:
    from datasets_app.models import ErrorCase
    from datasets_app.selectors import status_counts

    counts = status_counts()
    live = ErrorCase.objects.filter(merged_into=None).count()
    assert sum(counts.values()) == live, (counts, live)
    assert live + ErrorCase.objects.exclude(merged_into=None).count() == n
    return counts


@contextmanager
def timed_view(samples: list[tuple[float, float]]):
    """Wrap the URL pattern's view so that each call's (wall, CPU) seconds land in `samples` (server time)."""
    from django.urls import get_resolver

    pattern = next(
        p
        for r in get_resolver().url_patterns
        if getattr(r, "namespace", None) == "cases"
        for p in r.url_patterns
        if getattr(p, "name", None) == "list"
    )
    view = pattern.callback

    def timed(request, *args, **kwargs):
        started, cpu = time.perf_counter(), time.process_time()
        response = view(request, *args, **kwargs)
        samples.append((time.perf_counter() - started, time.process_time() - cpu))
        return response

    pattern.callback = timed
    try:
        yield
    finally:
        pattern.callback = view


@contextmanager
def reference_pages(page_number: dict):
    """The same view, its page query swapped for Django's default: Paginator (COUNT + OFFSET), icontains."""
    from django.core.paginator import Paginator

    from datasets_app import selectors

    ours = selectors.case_page

    def offset_page(filters, *, after=None, limit=selectors.PAGE_SIZE):
        q, filters.q = filters.q, ""
        qs = selectors.cases_filtered(filters)
        filters.q = q
        if q:
            qs = qs.filter(bad_output__icontains=q)
        qs = qs.select_related("assignee").prefetch_related("tags").order_by("-pk")
        page = Paginator(qs, limit).page(page_number.get("page", 1))
        rows = list(page.object_list)
        selectors._annotate_similar(rows)
        return selectors.CasePage(
            cases=rows, next_after=rows[-1].pk if page.has_next() else None, filters=filters
        )

    selectors.case_page = offset_page
    try:
        yield
    finally:
        selectors.case_page = ours


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def run_series(client, kinds: dict[str, dict], reps: int, warmup: int, before=None) -> dict[str, list[tuple]]:
    """Each kind `reps` times after `warmup` rounds, interleaved so that outside load hits every kind alike;
    {kind: [(wall s, CPU s of this process), ...]}."""
    from django.urls import reverse

    url = reverse("cases:list")
    samples: dict[str, list[tuple]] = {kind: [] for kind in kinds}
    for round_ in range(warmup + reps):
        for kind, params in kinds.items():
            if before:
                before(kind)
            taken: list[tuple] = []
            with timed_view(taken):
                response = client.get(url, params)
            assert response.status_code == 200, (kind, response.status_code)
            if round_ >= warmup:
                samples[kind].extend(taken)
    return samples


def count_queries(client, kinds: dict[str, dict], explain: bool) -> dict[str, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    counts = {}
    for kind, params in kinds.items():
        with CaptureQueriesContext(connection) as captured:
            client.get(reverse("cases:list"), params)
        counts[kind] = len(captured.captured_queries)
        if explain:
            print(f"--- {kind} {params}: {counts[kind]} queries")
            for query in captured.captured_queries:
                print(f"  {float(query['time']) * 1000:7.2f} ms  {query['sql'][:160]}")
                if float(query["time"]) > 0.005 and query["sql"].lstrip().upper().startswith("SELECT"):
                    with connection.cursor() as cursor:
                        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
                        print("\n".join("      " + row[0] for row in cursor.fetchall()))
    return counts


def summary(samples: list[tuple[float, float]]) -> dict:
    wall, cpu = [w for w, _ in samples], [c for _, c in samples]
    return {
        "p50_ms": ms(statistics.median(wall)),
        "p95_ms": ms(pct(wall, 95)),
        "cpu_p50_ms": ms(statistics.median(cpu)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_CASES:,} cases: a smoke run")
    parser.add_argument("--cases", type=int, default=None, help="number of cases (default 1,000,000)")
    parser.add_argument("--reps", type=int, default=50, help="timed requests per kind (default 50)")
    parser.add_argument(
        "--reference-reps",
        type=int,
        default=None,
        help="reference requests per kind (default: 10 above 100k cases)",
    )
    parser.add_argument(
        "--explain", action="store_true", help="print each kind's queries, EXPLAIN ANALYZE the slow ones"
    )
    args = parser.parse_args()
    n = args.cases or (QUICK_CASES if args.quick else 1_000_000)
    reference_reps = args.reference_reps or (args.reps if n <= 100_000 else 10)

    with django_on_postgres():
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client
        from django.utils import timezone

        print(f"loading {n:,} cases ...", flush=True)
        loaded = load(n)
        counts = check_counts(n)
        print(
            f"loaded in {loaded['seconds']:.1f} s ({loaded['slices']} slices inserted in {loaded['insert_s']:.1f} s, "
            f"{loaded['indexes_rebuilt']} indexes rebuilt and foreign keys checked in {loaded['index_s']:.1f} s, "
            f"VACUUM ANALYZE); table + indexes {loaded['bytes'] / 1e6:,.0f} MB; status counts {counts}",
            flush=True,
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM datasets_app_errorcase WHERE merged_into_id IS NULL ORDER BY id LIMIT 1 OFFSET 100"
            )
            deep_after = cursor.fetchone()[0]
            cursor.execute("SELECT version()")
            pg_version = cursor.fetchone()[0].split(" on ")[0]
        settings.DEBUG = False  # as in production: Django does not keep every query in memory
        client = Client()
        client.force_login(get_user_model().objects.get(username="pm"))
        day = (timezone.localdate() - timedelta(days=120)).isoformat()
        kinds = {
            "first": {},
            "filtered": {"status": "new", "severity": "high", "product": PRODUCTS[1]},
            "tag": {"tag": "terminology"},
            "day": {"date_from": day, "date_to": day},
            "deep": {"after": deep_after},
            "search_en": {"q": "refund"},
            "search_zh": {"q": "退货"},
            "search_rare": {"q": RARE_WORD},
        }
        queries = count_queries(client, kinds, args.explain)
        load_before = os.getloadavg()[0]
        samples = run_series(client, kinds, args.reps, warmup=2)
        load_after = os.getloadavg()[0]

        # the reference: the same requests where Django's defaults differ (OFFSET pages, icontains)
        live = sum(counts.values())
        compared = ("deep", "search_en", "search_zh", "search_rare")
        deep_page = max(1, (live - 100) // 50)  # the page holding the same cases as ours after=deep_after
        page_number = {}
        with reference_pages(page_number):
            reference = run_series(
                client,
                {kind: ({} if kind == "deep" else kinds[kind]) for kind in compared},
                reference_reps,
                warmup=1,
                before=lambda kind: page_number.update(page=deep_page if kind == "deep" else 1),
            )

    per_kind = {kind: {**summary(s), "queries": queries[kind]} for kind, s in samples.items()}
    reference_per_kind = {kind: summary(s) for kind, s in reference.items()}
    every = [x for s in samples.values() for x in s]
    ours_compared = summary([x for k in compared for x in samples[k]])
    reference_all = summary([x for s in reference.values() for x in s])
    for kind, stats in per_kind.items():
        line = (
            f"{kind:12} p50 {stats['p50_ms']:7.2f} ms  p95 {stats['p95_ms']:7.2f} ms  "
            f"(CPU p50 {stats['cpu_p50_ms']:6.2f} ms)  {stats['queries']:2} queries"
        )
        if kind in reference_per_kind:
            ref = reference_per_kind[kind]
            line += f"   reference p50 {ref['p50_ms']:8.2f} ms  p95 {ref['p95_ms']:8.2f} ms"
        print(line)
    print(f"load average {load_before:.2f} before the timed requests, {load_after:.2f} after", flush=True)
    result = {
        "bench": "list",
        "cases": n,
        **summary(every),
        "per_kind": per_kind,
        "queries_per_request": max(queries.values()),
        "reference": "same view with Django Paginator (COUNT + OFFSET) and bad_output__icontains",
        "reference_p50_ms": reference_all["p50_ms"],
        "reference_p95_ms": reference_all["p95_ms"],
        "reference_per_kind": reference_per_kind,
        "ours_same_kinds_p95_ms": ours_compared["p95_ms"],
        "ratio": round(reference_all["p95_ms"] / ours_compared["p95_ms"], 1),
        "reps": args.reps,
        "reference_reps": reference_reps,
        "load_s": round(loaded["seconds"], 1),
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "target_p95_ms": 50,
        "machine": f"{machine()}, {pg_version}",
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
