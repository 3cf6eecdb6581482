#!/usr/bin/env python3
"""Dataset build speed: a version built from 1M rows with 10% near-duplicates injected, every step but augmentation.

    .venv/bin/python bench/dataset_build.py [--quick] [--rows N]

Generates N chat rows (mixed Chinese and English, 1–3 sentence questions and answers) as a JSONL file of which 10%
are near-duplicates of another row (a few characters inserted, deleted or replaced, so their character 3-gram
Jaccard similarity stays ≥ 0.8), uploads it as a source file and builds a version through the same build service
the cpu worker runs, on a throwaway PostgreSQL: normalise, filter, sensitive words, integrity, exact and
near-duplicate removal, an 80/10/10 stratified group-aware split, the examples COPYed into the database, the data
card, and the JSONL, Parquet and Hugging Face exports.

dedup_recall = injected near-duplicates removed / injected; rows of the original 90% removed as near-duplicates
are reported as false_drops. peak_rss_mb is this process's peak resident memory (ru_maxrss) over the whole run,
file generation included. The reference is the time the same process needs to read the JSONL file with the
standard json module (a floor for any pipeline in Python). The last line is one JSON object.
"""

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from _common import django_on_postgres, machine

CJK_FIRST, CJK_COUNT = 0x4E00, 3000  # the first 3,000 ideographs of the CJK block
EN_WORDS = """order refund shipping delivery invoice warranty account password discount coupon address payment card
bank transfer return exchange policy product battery screen charger cable laptop phone headphones speaker watch camera
printer router subscription plan premium upgrade cancel renewal trial customer support agent ticket status tracking
package courier warehouse stock price tax receipt refundable damaged missing late early weekend holiday express
standard international domestic customs duty fee charge balance credit debit wallet points reward member level gift
voucher code expired valid region store online offline manual"""
EN = EN_WORDS.split()


def sentence(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return "".join(chr(CJK_FIRST + rng.randrange(CJK_COUNT)) for _ in range(rng.randint(12, 40))) + "。"
    words = [rng.choice(EN) for _ in range(rng.randint(6, 18))]
    return " ".join(words).capitalize() + f" {rng.randrange(10**6)}."


def base_row(rng: random.Random) -> dict:
    question = " ".join(sentence(rng) for _ in range(rng.randint(1, 3)))
    answer = " ".join(sentence(rng) for _ in range(rng.randint(1, 3)))
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
            "category": rng.choice(["billing", "shipping", "account", "product", "returns"])}  # fmt: skip


def near_copy(row: dict, rng: random.Random) -> dict:
    """A few characters edited in the question (≈ 1 per 40 characters, at least one)."""
    text = row["messages"][0]["content"]
    chars = list(text)
    for _ in range(max(1, len(chars) // 40)):
        at = rng.randrange(len(chars))
        kind = rng.random()
        if kind < 0.34:
            chars.insert(at, rng.choice("abcdefgxyz的了是"))
        elif kind < 0.67 and len(chars) > 10:
            del chars[at]
        else:
            chars[at] = rng.choice("klmnopq在有我")
    copy = json.loads(json.dumps(row))
    copy["messages"][0]["content"] = "".join(chars)
    return copy


def write_file(path: Path, rows: int, dup_share: float = 0.1) -> tuple[int, set[int]]:
    """Returns the number of rows and the 1-based lines that are injected near-duplicates."""
    rng = random.Random(11)
    originals: list[dict] = []
    injected: set[int] = set()
    with open(path, "w", encoding="utf-8") as out:
        for line in range(1, rows + 1):
            if originals and rng.random() < dup_share:
                row = near_copy(rng.choice(originals), rng)
                injected.add(line)
            else:
                row = base_row(rng)
                if len(originals) < 200_000:
                    originals.append(row)
                else:
                    originals[rng.randrange(len(originals))] = row
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return rows, injected


def reference_read(path: Path) -> float:
    started = time.perf_counter()
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            json.loads(line)
    return time.perf_counter() - started


def build(path: Path) -> tuple[float, object]:
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile

    from datasets_app.services.build import build_run
    from datasets_app.services.datasets import dataset_create, source_file_add, version_create

    user = get_user_model().objects.create_user("bench-ds")
    dataset = dataset_create(user=user, name="bench", task_type="chat")
    with open(path, "rb") as data:
        source = source_file_add(user=user, dataset=dataset,
                                 upload=SimpleUploadedFile("bench.jsonl", data.read()))  # fmt: skip
    recipe = {"sources": {"cases": None, "files": [source.pk], "parent_version": None, "replay": None},
              "steps": {"split": {"train": 0.8, "validation": 0.1, "test": 0.1, "seed": 1, "stratify": True}}}  # fmt: skip
    version = version_create(user=user, dataset=dataset, recipe=recipe)
    job = version.build
    started = time.perf_counter()
    outcome = build_run(job_id=job.pk, task_id=job.celery_task_id, hostname="bench")
    seconds = time.perf_counter() - started
    version.refresh_from_db()
    assert outcome.status == "succeeded", (outcome, version.error)
    return seconds, version


def recall(version, injected: set[int]) -> tuple[float, int]:
    from datasets_app.models import DatasetExample

    kept = set(DatasetExample.objects.filter(version=version).values_list("ref__line", flat=True))
    removed_injected = sum(1 for line in injected if line not in kept)
    dedup = next(s for s in version.steps if s["name"] == "dedup")
    removed_by_dedup = sum(dedup["dropped"].values())
    false_drops = max(removed_by_dedup - removed_injected, 0)
    return removed_injected / max(len(injected), 1), false_drops


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="50k rows: a smoke run")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    rows = 50_000 if args.quick else args.rows
    with tempfile.TemporaryDirectory(prefix="llmops-build-") as tmp, django_on_postgres(redis=True):
        source = Path(tmp) / "rows.jsonl"
        _, injected = write_file(source, rows)
        print(f"{rows} rows ({len(injected)} injected near-duplicates), {source.stat().st_size / 1e6:.0f} MB",
              flush=True)  # fmt: skip
        ref_s = reference_read(source)
        seconds, version = build(source)
        rec, false_drops = recall(version, injected)
        print(f"build: {seconds:.1f} s = {rows / seconds:,.0f} rows/s; counts {version.counts}; "
              f"dedup recall {rec:.3f}, false drops {false_drops}; reading with json alone: {ref_s:.1f} s")  # fmt: skip
        steps = {s["name"]: s["seconds"] for s in version.steps}
        print("seconds per step:", steps)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"bench": "dataset_build", "rows": rows, "seconds": round(seconds, 1),
              "rows_per_s": round(rows / seconds), "dedup_recall": round(rec, 4), "false_drops": false_drops,
              "peak_rss_mb": round(peak), "kept": sum(version.counts.values()),
              "reference": "json.loads of every line", "reference_seconds": round(ref_s, 1),
              "ratio": round(seconds / ref_s, 2), "target_rows_per_s": 20_000, "machine": machine()}  # fmt: skip
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
