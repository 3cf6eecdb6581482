#!/usr/bin/env python3
"""Import speed of the error notebook: synthetic cases through the upload's own service vs Django bulk_create.

    .venv/bin/python bench/ingest.py [--quick] [--rows N]

Generates N cases (default 200k: mixed Chinese and English, realistic lengths, ~10% with PII) as a JSONL file,
then in one process, on a throwaway PostgreSQL:
- ours: the import service the upload uses (ImportJob run inline: stream parse, PII scrubbing, sensitive words,
  fingerprints, search text, exact-duplicate checks, COPY) into an empty notebook;
- reference: the same parse and preparation, rows written with Django's bulk_create (batch 1000).
Then the ceiling: the same rows, already formatted, COPYed into the case table with no Python preparation at
all — first with the full schema, then with the search column and every secondary index dropped — the most any
import into this table can reach on this machine. Prints rows/s for each; the last line is one JSON object.
"""

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from _common import django_on_postgres, machine

EN_Q = ["What is your refund policy for {item}?", "How long does shipping to {city} take?",
        "Can I change the delivery address of order {order}?", "Why was my card charged twice for {item}?",
        "Do you ship {item} internationally, and what does it cost to {city}?"]  # fmt: skip
EN_A = ["Refunds are possible within 30 days if the {item} is unused.", "Shipping to {city} takes 2-3 business days.",
        "You cannot change the address once the order is placed."]  # fmt: skip
ZH_Q = ["{item}的退货政策是什么?我在{city}买的。", "订单{order}什么时候发货?", "为什么{item}的价格和昨天不一样?",
        "我想把收货地址改成{city},可以吗?"]  # fmt: skip
ZH_A = ["{item}支持七天无理由退货。", "您的订单将在三个工作日内从{city}发出。", "价格以下单时页面显示为准。"]
ITEMS = ["headphones", "laptop stand", "咖啡机", "蓝牙音箱", "running shoes", "智能手表"]
CITIES = ["Shanghai", "Berlin", "深圳", "杭州", "Toronto"]
PII = [
    "contact me at li.wei{n}@example.com",
    "我的手机号是138{n:08d}",
    "card 4111 1111 1111 1111",
    "IP 10.0.{a}.{b}",
]
TAGS = ["hallucination", "terminology", "format", "outdated_knowledge", "tone"]


def fill(template: str, rng: random.Random) -> str:
    return template.format(item=rng.choice(ITEMS), city=rng.choice(CITIES), order=rng.randrange(10**9))


def synthetic_case(i: int, rng: random.Random) -> dict:
    zh = rng.random() < 0.5
    question = " ".join(fill(rng.choice(ZH_Q if zh else EN_Q), rng) for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.1:
        question += " " + rng.choice(PII).format(n=i, a=i % 250, b=(i // 250) % 250)
    answer = " ".join(fill(rng.choice(ZH_A if zh else EN_A), rng) for _ in range(rng.randint(1, 4)))
    return {
        "messages": [{"role": "system", "content": "You are the support assistant of ACME."},
                     {"role": "user", "content": f"[{i}] {question}"}, {"role": "assistant", "content": answer}],
        "expected": fill(rng.choice(ZH_A if zh else EN_A), rng) if rng.random() < 0.5 else "",
        "tags": rng.sample(TAGS, rng.randint(0, 2)),
        "severity": rng.choice(["low", "medium", "high", "critical"]),
        "product": rng.choice(["shop-assistant", "after-sales"]),
    }  # fmt: skip


def write_file(path: Path, rows: int) -> int:
    rng = random.Random(7)
    with open(path, "w", encoding="utf-8") as out:
        for i in range(rows):
            out.write(json.dumps(synthetic_case(i, rng), ensure_ascii=False) + "\n")
    return path.stat().st_size


def run_ours(path: Path) -> tuple[float, int]:
    from datasets_app.models import ImportJob
    from datasets_app.services.imports import import_run

    job = ImportJob.objects.create(filename=path.name, path=str(path), size_bytes=path.stat().st_size,
                                   celery_task_id="bench", scrub_pii=True)  # fmt: skip
    started = time.perf_counter()
    outcome = import_run(job_id=job.pk, task_id="bench", hostname="bench")
    elapsed = time.perf_counter() - started
    job.refresh_from_db()
    assert outcome.status == "succeeded", job.error
    return elapsed, job.imported


def run_reference(path: Path) -> tuple[float, int]:
    """The same parse and preparation; every row written through the ORM's bulk_create."""
    from datasets_app.ingest.parse import CaseRow, parse_file
    from datasets_app.models import Tag
    from datasets_app.services.ingest import Ingestor
    from datasets_app.services.prepare import Scrubber
    from datasets_app.services.writer import CaseWriter

    CaseWriter._copy = CaseWriter._bulk_create  # the reference: Django's bulk_create, batch 1000
    known = set(Tag.objects.values_list("name", flat=True))
    started = time.perf_counter()
    from django.db import transaction

    with transaction.atomic(), open(path, "rb") as upload:
        ingest = Ingestor(user_id=None, source="import", scrubber=Scrubber.from_database())
        for row in parse_file(upload, filename=path.name, known_tags=known):
            if isinstance(row, CaseRow):
                ingest.add(row.line, messages=row.messages, bad_output=row.bad_output,
                           expected_output=row.expected_output, task_type=row.task_type, tags=row.tags,
                           severity=row.severity, product=row.product, feature=row.feature,
                           model_version=row.model_version, metadata=row.metadata)  # fmt: skip
        stats = ingest.finish()
    return time.perf_counter() - started, stats.created


def empty_notebook() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE datasets_app_errorcase CASCADE; TRUNCATE datasets_app_casestatuscount")


def copy_ceiling(path: Path) -> dict[str, int]:
    """rows/s of a bare COPY of pre-formatted rows: the full case table, then the table stripped to its key."""
    import orjson
    from django.db import connection, transaction
    from django.utils import timezone

    from datasets_app.services.writer import CASE_TABLE, COLUMNS

    now = timezone.now()
    with open(path, "rb") as lines:
        objs = [orjson.loads(line) for line in lines]
    rows = [(i, orjson.dumps(o["messages"][:-1]).decode(), o["messages"][-1]["content"], o["expected"], "chat",
             o["severity"], "import", o["product"], "", "", "new", "", "{}", "[]", f"{i:064x}",
             o["messages"][1]["content"] + " " + o["messages"][-1]["content"], 1, None, None, now, now, None)
            for i, o in enumerate(objs, start=1)]  # fmt: skip

    def load() -> int:
        empty_notebook()
        with transaction.atomic(), connection.cursor() as cursor:
            started = time.perf_counter()
            with cursor.cursor.copy(f"COPY {CASE_TABLE} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return round(len(rows) / (time.perf_counter() - started))

    result = {"full_schema": load()}
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {CASE_TABLE} DROP COLUMN search_vector")
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexname NOT LIKE '%%pkey'",
                       [CASE_TABLE])  # fmt: skip
        for (name,) in cursor.fetchall():
            cursor.execute(f'DROP INDEX "{name}"')
    result["key_only"] = load()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20k rows: a smoke run")
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    rows = 20_000 if args.quick else args.rows
    with tempfile.TemporaryDirectory(prefix="llmops-ingest-") as tmp, django_on_postgres(redis=True):
        source = Path(tmp) / "cases.jsonl"
        size = write_file(source, rows)
        print(f"{rows} synthetic cases, {size / 1e6:.1f} MB", flush=True)
        ours_copy = Path(tmp) / "ours.jsonl"
        ours_copy.write_bytes(source.read_bytes())  # the service deletes its upload when done
        ours_s, ours_rows = run_ours(ours_copy)
        print(
            f"ours (import service, COPY):   {ours_rows} rows in {ours_s:.2f} s = {ours_rows / ours_s:,.0f} rows/s"
        )
        empty_notebook()
        ref_s, ref_rows = run_reference(source)
        print(
            f"reference (same, bulk_create): {ref_rows} rows in {ref_s:.2f} s = {ref_rows / ref_s:,.0f} rows/s"
        )
        ceiling = copy_ceiling(source)
        print(f"ceiling (bare COPY of pre-formatted rows): full schema {ceiling['full_schema']:,} rows/s, "
              f"table stripped to its key {ceiling['key_only']:,} rows/s")  # fmt: skip
    result = {"bench": "ingest", "rows": rows, "imported": ours_rows, "rows_per_s": round(ours_rows / ours_s),
              "seconds": round(ours_s, 2), "reference": "same pipeline, Django bulk_create",
              "reference_rows_per_s": round(ref_rows / ref_s), "ratio_vs_bulk_create": round(ref_s / ours_s, 2),
              "copy_ceiling_rows_per_s": ceiling,
              "target_rows_per_s": 100_000, "machine": machine()}  # fmt: skip
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
