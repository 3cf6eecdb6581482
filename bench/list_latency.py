#!/usr/bin/env python3
"""Server time of the error notebook's list view on a big notebook: keyset pages and full-text search vs OFFSET
pages and icontains.

    .venv/bin/python bench/list_latency.py [--quick] [--cases N] [--reps R] [--explain]

Loads N cases (default 1,000,000; --quick 50,000) straight into a throwaway PostgreSQL with one
INSERT ... SELECT FROM generate_series (a few hundred distinct Chinese/English texts prepared by the import
pipeline's own `prepare_content`, cycled by the database; statuses, severities, sources, 20 products, 0-2 tags,
assignees, near-duplicate groups, merged cases and 180 days of created_at spread by random()), then
VACUUM ANALYZE. Then, logged in as a PM, requests the real list view (`cases:list` through Django's test Client
and the project's middleware) for each kind below, interleaved, R times after a warm-up, and times the view call
itself (server time: queries + template rendering). Kinds: the first page, a filtered page
(status+severity+product), a tag filter, a page deep in the keyset (`after=` an id near the oldest), searches in
English and Chinese (common words) and one for a rare word.
Reference, in the same process and through the same view: the page query swapped for Django's default
(`Paginator` with COUNT + OFFSET) and `bad_output__icontains` for search, on the deep page and the searches.
The last line is one JSON object.
"""

import argparse
import json
import random
import statistics
import sys
import time
from contextlib import contextmanager

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


def load(n: int) -> dict:
    """N cases, their tag links and users, straight in SQL; returns timings and the ids used by the requests."""
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
    groups = max(n * 3 // 100 // 5, 1)  # 3% of the cases in near-duplicate groups of about five
    rare_edge = RARE_SHARE
    with connection.cursor() as cursor:
        dropped = _loose_indexes(cursor, table) + _loose_indexes(cursor, links)
        for name, _ in dropped:
            cursor.execute(f"DROP INDEX {name}")
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute(
            f"""
            INSERT INTO {table} (id, messages, bad_output, expected_output, task_type, severity, source, product,
                feature, model_version, status, rejection_reason, assignee_id, metadata, flags, fingerprint,
                search_text, minhash, near_dup_group, merged_into_id, import_job_id, version, created_by_id,
                updated_by_id, created_at, updated_at)
            SELECT g, (%(messages)s::text[])[t]::jsonb, (%(bad)s::text[])[t], (%(expected)s::text[])[t],
                CASE WHEN r_task < 0.05 THEN 'classification' ELSE 'chat' END,
                {_pick(SEVERITIES, "r_sev")}, {_pick(SOURCES, "r_src")},
                CASE WHEN r_prod < 0.03 THEN '' ELSE (%(products)s::text[])[1 + floor(20 * r_prod * r_prod)::int] END,
                CASE WHEN r_task < 0.5 THEN 'faq' ELSE 'orders' END, 'acme-chat-v' || (1 + g * 4 / %(n)s),
                {_pick(STATUSES, "r_status")},
                CASE WHEN r_status >= 0.95 THEN 'Not a model error.' ELSE '' END,
                CASE WHEN r_asg < 0.6 THEN NULL ELSE (%(users)s::bigint[])[1 + floor((r_asg - 0.6) / 0.4 * %(nusers)s)::int] END,
                '{{}}'::jsonb, '[]'::jsonb, encode(sha256(convert_to('bench case ' || g, 'UTF8')), 'hex'),
                (%(search)s::text[])[t], NULL,
                CASE WHEN r_dup < 0.03 THEN 1 + floor(r_dup / 0.03 * %(groups)s)::bigint END,
                CASE WHEN r_merge < 0.01 AND g > 10 THEN g - 1 - g %% 7 END,
                NULL, 1, %(creator)s, %(creator)s, at, at + r_task * interval '3 days'
            FROM (
                SELECT g, random() AS r_status, random() AS r_sev, random() AS r_src, random() AS r_prod,
                    random() AS r_asg, random() AS r_task, random() AS r_dup, random() AS r_merge,
                    CASE WHEN random() < %(rare)s THEN 1 ELSE 2 + floor(random() * (%(k)s - 1))::int END AS t,
                    now() - interval '180 days' + (g::float8 / %(n)s) * interval '180 days'
                        - random() * interval '1 hour' AS at
                FROM generate_series(1, %(n)s) AS g
            ) AS rows
            """,
            {"messages": [t["messages"] for t in texts], "bad": [t["bad"] for t in texts],
             "expected": [t["expected"] for t in texts], "search": [t["search_text"] for t in texts],
             "products": PRODUCTS, "users": users, "nusers": len(users), "n": n, "k": len(texts),
             "groups": groups, "rare": rare_edge, "creator": users[0]},
        )  # fmt: skip
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), %s)", [n]
        )  # the app's next case gets N+1
        cursor.execute(
            f"""
            INSERT INTO {links} (errorcase_id, tag_id)
            SELECT s.g, (%(tags)s::bigint[])[1 + (s.first + u.step) %% %(ntags)s]
            FROM (SELECT g, floor(random() * 3)::int AS k, floor(random() * %(ntags)s)::int AS first,
                         1 + floor(random() * (%(ntags)s - 1))::int AS second
                  FROM generate_series(1, %(n)s) AS g) AS s,
                 LATERAL unnest(ARRAY[0, s.second]) WITH ORDINALITY AS u(step, i)
            WHERE u.i <= s.k
            """,
            {"tags": tag_ids, "ntags": len(tag_ids), "n": n},
        )
        inserted = time.perf_counter() - started
        cursor.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in dropped:
            cursor.execute(definition)
        indexed = time.perf_counter() - started - inserted
        cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute(f"VACUUM ANALYZE {links}")
        cursor.execute("RESET maintenance_work_mem")
        cursor.execute(f"SELECT pg_total_relation_size('{table}')")
        size = cursor.fetchone()[0]
    return {"seconds": time.perf_counter() - started, "insert_s": inserted, "index_s": indexed,
            "bytes": size, "indexes_rebuilt": len(dropped)}  # fmt: skip


def check_counts(n: int) -> dict[str, int]:
    from datasets_app.models import ErrorCase
    from datasets_app.selectors import status_counts

    counts = status_counts()
    live = ErrorCase.objects.filter(merged_into=None).count()
    assert sum(counts.values()) == live, (counts, live)
    assert live + ErrorCase.objects.exclude(merged_into=None).count() == n
    return counts


@contextmanager
def timed_view(samples: list[float]):
    """Wrap the URL pattern's view so that each call's duration lands in `samples` (server time of the view)."""
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
        started = time.perf_counter()
        response = view(request, *args, **kwargs)
        samples.append(time.perf_counter() - started)
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


def run_series(client, kinds: dict[str, dict], reps: int, warmup: int, before=None) -> dict[str, list[float]]:
    """Each kind `reps` times after `warmup` rounds, interleaved so that outside load hits every kind alike."""
    from django.urls import reverse

    url = reverse("cases:list")
    samples: dict[str, list[float]] = {kind: [] for kind in kinds}
    for round_ in range(warmup + reps):
        for kind, params in kinds.items():
            if before:
                before(kind)
            taken: list[float] = []
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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_CASES:,} cases: a smoke run")
    parser.add_argument("--cases", type=int, default=None, help="number of cases (default 1,000,000)")
    parser.add_argument("--reps", type=int, default=50, help="timed requests per kind (default 50)")
    parser.add_argument("--reference-reps", type=int, default=None, help="reference requests per kind")
    parser.add_argument(
        "--explain", action="store_true", help="print each kind's queries, EXPLAIN ANALYZE the slow"
    )
    args = parser.parse_args()
    n = args.cases or (QUICK_CASES if args.quick else 1_000_000)
    reference_reps = args.reference_reps or (args.reps if n <= 100_000 else 10)

    with django_on_postgres():
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client

        print(f"loading {n:,} cases ...", flush=True)
        loaded = load(n)
        counts = check_counts(n)
        print(
            f"loaded in {loaded['seconds']:.1f} s (insert {loaded['insert_s']:.1f} s, "
            f"{loaded['indexes_rebuilt']} indexes rebuilt in {loaded['index_s']:.1f} s, then VACUUM ANALYZE); "
            f"table + indexes {loaded['bytes'] / 1e6:,.0f} MB; status counts {counts}",
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
        product = PRODUCTS[1]
        kinds = {
            "first": {},
            "filtered": {"status": "new", "severity": "high", "product": product},
            "tag": {"tag": "terminology"},
            "deep": {"after": deep_after},
            "search_en": {"q": "refund"},
            "search_zh": {"q": "退货"},
            "search_rare": {"q": RARE_WORD},
        }
        queries = count_queries(client, kinds, args.explain)
        samples = run_series(client, kinds, args.reps, warmup=2)

        # the reference: the same requests where Django's defaults differ (OFFSET pages, icontains)
        live = sum(counts.values())
        reference_kinds = {k: kinds[k] for k in ("deep", "search_en", "search_zh", "search_rare")}
        deep_page = max(1, (live - 100) // 50)
        page_number = {}
        with reference_pages(page_number):
            reference = run_series(
                client,
                {"deep": {}, **{k: v for k, v in reference_kinds.items() if k != "deep"}},
                reference_reps,
                warmup=1,
                before=lambda kind: page_number.update(page=deep_page if kind == "deep" else 1),
            )

    per_kind = {
        kind: {"p50_ms": ms(statistics.median(s)), "p95_ms": ms(pct(s, 95)), "queries": queries[kind]}
        for kind, s in samples.items()
    }
    every = [x for s in samples.values() for x in s]
    same_kinds = [x for k in reference_kinds for x in samples[k]]
    every_reference = [x for s in reference.values() for x in s]
    for kind, stats in per_kind.items():
        line = f"{kind:12} p50 {stats['p50_ms']:8.2f} ms  p95 {stats['p95_ms']:8.2f} ms  {stats['queries']} queries"
        if kind in reference:
            line += f"   reference p50 {ms(statistics.median(reference[kind])):9.2f} ms  p95 {ms(pct(reference[kind], 95)):9.2f} ms"
        print(line)
    result = {
        "bench": "list",
        "cases": n,
        "p50_ms": ms(statistics.median(every)),
        "p95_ms": ms(pct(every, 95)),
        "per_kind": per_kind,
        "queries_per_request": max(queries.values()),
        "reference": "same view, Django Paginator (COUNT + OFFSET) and bad_output__icontains, on deep + searches",
        "reference_p50_ms": ms(statistics.median(every_reference)),
        "reference_p95_ms": ms(pct(every_reference, 95)),
        "reference_per_kind": {
            k: {"p50_ms": ms(statistics.median(s)), "p95_ms": ms(pct(s, 95))} for k, s in reference.items()
        },
        "ratio": round(pct(every_reference, 95) / pct(same_kinds, 95), 1),
        "reps": args.reps,
        "reference_reps": reference_reps,
        "load_s": round(loaded["seconds"], 1),
        "target_p95_ms": 50,
        "machine": f"{machine()}, {pg_version}",
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
