"""The Aurora Home demo workspace, seeded once and idempotently (`python manage.py demo_seed`, run by `make run`).

What it makes, all through the same services the portal's pages use (so fingerprints, search text, status
history, approver fields and the per-status counts are exactly what a PM's own work would leave):

- the role groups and one demo user per role (``llmops.bootstrap``; a new user's password is printed once);
- about 300 error cases written for the project, filed by the demo PM through the batch path of the bulk API and
  file imports (Ingestor: scrub, fingerprint, skip duplicates, write), then reviewed one by one with
  case_set_status as the PM would (``created_at`` is then spread over the last 30 days, for a lifelike notebook).
  The cases (``demo_app/data/``):
  ``intent_cases.jsonl`` — customer messages the intent router (FEATURE_INTENT, classification) sent to a plausible
  wrong intent; ``chat_cases.jsonl`` — questions the assistant (FEATURE_CHAT, chat) answered with a wrong policy
  fact or a non-standard term, with the corrected answer. ``policies.jsonl`` is the policy sheet those answers
  follow (45-day returns, 2-year warranty, Aurora Care+, ...): several phrasings per fact in each language, so a
  held-out question shares its fact with training ones. Most cases are approved (a data scientist can build at
  once); some are left new (no correction yet) or corrected for the PM to review, and a few are rejected with
  the reason;
- the general-capability pack of the classifier's forgetting check: the dataset GENERAL_INTENTS_DATASET
  (is_general) with a ready version built from ``general_intents.jsonl`` (everyday messages, correctly routed)
  by the real build service, run here in-process.

Idempotent: each case carries ``metadata.demo_key``; a key already in the notebook is left as it is (a PM may have
worked on it since), and the dataset gets a version only when it has no ready one. A second run creates nothing
and reports the same counts.

A build needs a path filter to read one path's cases: the classification cases are tagged INTENT_TAGS, the chat
cases one of CHAT_TAGS (recipe ``sources.cases.tags``). The language is in ``metadata.lang`` (not a tag, so that
a case's first tag, which a build takes as its category, stays the kind of failure).
"""

import io
import json
import time
import zlib
from datetime import timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone

from datasets_app.models import CaseStatus, Dataset, DatasetVersion, ErrorCase, Tag, TaskType, VersionStatus
from datasets_app.services.build import build_run
from datasets_app.services.cases import case_set_status
from datasets_app.services.datasets import dataset_create, source_file_add, version_create
from datasets_app.services.ingest import Ingestor
from datasets_app.services.prepare import Scrubber
from demo_app.catalog import FEATURE_CHAT, FEATURE_INTENT, GENERAL_INTENTS_DATASET, INTENTS, PRODUCT
from llmops.bootstrap import DEMO_USERS, ensure_demo_users

DATA = Path(__file__).resolve().parent / "data"
INTENT_TAGS = ["wrong_intent"]
CHAT_TAGS = ["policy_fact", "terminology"]
NEW_TAGS = {"policy_fact": ("Policy fact", "States a company policy wrongly (a deadline, a fee, a period).")}
ROUTER_VERSION = "aurora-router:v3"
ASSISTANT_VERSION = "aurora-assist:v7"
PM_USER, DS_USER = "pm", "scientist"
GENERAL_FILE = "general_intents.jsonl"
GENERAL_RECIPE_STEPS = {
    "integrity": {"labels": list(INTENTS)},
    "split": {"train": 0.6, "validation": 0.2, "test": 0.2, "seed": 42, "stratify": True},
}
BUILD_WAIT_SECONDS = 300  # when a listening worker took the build's message first


def load(name: str) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _pick(key: str, choices: list[str]) -> str:
    """A stable choice per case (crc32 of its key), so the same case gets the same value on every machine."""
    return choices[zlib.crc32(key.encode()) % len(choices)]


def case_specs() -> list[dict]:
    """Every demo case as keyword arguments of case_create, plus its target status (and rejection reason)."""
    specs = []
    for row in load("intent_cases.jsonl"):
        specs.append({
            "key": row["key"], "lang": row["lang"], "status": row.get("status", CaseStatus.APPROVED),
            "reason": row.get("reason", ""), "messages": [{"role": "user", "content": row["text"]}],
            "bad_output": row["bad"], "expected_output": row["label"], "task_type": TaskType.CLASSIFICATION,
            "feature": FEATURE_INTENT, "model_version": ROUTER_VERSION, "tags": INTENT_TAGS,
            "severity": _pick(row["key"], ["medium", "medium", "medium", "high", "low"]),
            "source": _pick(row["key"], ["monitoring"] * 7 + ["user_feedback"] * 2 + ["manual"]),
        })  # fmt: skip
    policies = {p["fact"]: p for p in load("policies.jsonl")}
    for row in load("chat_cases.jsonl"):
        policy = policies.get(row["fact"], {"tag": "policy_fact", "severity": "low"})
        specs.append({
            "key": row["key"], "lang": row["lang"], "status": row.get("status", CaseStatus.APPROVED),
            "reason": row.get("reason", ""), "messages": [{"role": "user", "content": row["question"]}],
            "bad_output": row["bad"], "expected_output": row["expected"], "task_type": TaskType.CHAT,
            "feature": FEATURE_CHAT, "model_version": ASSISTANT_VERSION, "tags": [policy["tag"]],
            "severity": policy["severity"], "fact": row["fact"],
            "source": _pick(row["key"], ["user_feedback"] * 5 + ["monitoring"] * 3 + ["manual"] * 2),
        })  # fmt: skip
    return specs


def demo_seed(*, stdout=None) -> dict[str, int]:
    """Seed the workspace (what exists is kept); print what was created or found; return the workspace's counts."""
    out = stdout or io.StringIO()  # quiet unless the caller gives a stream
    _users(out)
    created, found = _cases(out)
    out.write(f"Error cases: {created} created, {found} already there.\n")
    _general_version(out)
    counts = seed_counts()
    out.write("Counts: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + "\n")
    return counts


def _users(out) -> None:
    users = ensure_demo_users(get_user_model(), Group)
    new = [u for u in users if u.password]
    for u in new:
        out.write(
            f"Demo user created: {u.username} / {u.password} ({u.role}); the password is shown this once.\n"
        )
    if not new:
        out.write(f"Demo users already present: {', '.join(u.username for u in users)}.\n")


@transaction.atomic
def _cases(out) -> tuple[int, int]:
    """New demo cases through the batch path of the bulk API and imports (scrub, fingerprint, skip duplicates,
    write); then each one's review as the PM would do it (case_set_status: history, approver, counts)."""
    for name, (label, description) in NEW_TAGS.items():
        Tag.objects.get_or_create(name=name, defaults={"label": label, "description": description})
    pm = get_user_model().objects.get(username=PM_USER)
    every, existing = case_specs(), _demo_ids()
    specs = [s for s in every if s["key"] not in existing]
    by_source: dict[str, list[dict]] = {}
    for spec in specs:
        by_source.setdefault(spec["source"], []).append(spec)
    scrubber, duplicates = Scrubber.from_database(), 0
    for source, batch in by_source.items():
        ingest = Ingestor(user_id=pm.pk, source=source, scrubber=scrubber, unit="item")
        for index, spec in enumerate(batch, start=1):
            ingest.add(index, **_fields(spec))
        duplicates += len(ingest.finish().duplicates)  # the very same case filed by hand: theirs is kept
    ids, now = _demo_ids(), timezone.now()
    for spec in specs:
        case_id = ids.get(spec["key"])
        if case_id is None:
            continue
        age = timedelta(minutes=zlib.crc32(spec["key"].encode()) % (30 * 24 * 60))  # over the last 30 days
        ErrorCase.objects.filter(pk=case_id).update(created_at=now - age, updated_at=now - age)
        if spec["status"] in (CaseStatus.APPROVED, CaseStatus.REJECTED):
            case_set_status(case_id=case_id, user=pm, status=spec["status"], reason=spec["reason"])
    created = len(specs) - duplicates
    return created, len(every) - created


def _demo_ids() -> dict[str, int]:
    return dict(
        ErrorCase.objects.filter(metadata__has_key="demo_key")
        .values_list("metadata__demo_key", "pk")
        .order_by()
    )


def _fields(spec: dict) -> dict:
    metadata = {
        "demo_key": spec["key"],
        "lang": spec["lang"],
        **({"fact": spec["fact"]} if "fact" in spec else {}),
    }
    return {
        "messages": spec["messages"], "bad_output": spec["bad_output"], "metadata": metadata,
        "expected_output": "" if spec["status"] == CaseStatus.NEW else spec["expected_output"],
        "tags": spec["tags"], "task_type": spec["task_type"], "severity": spec["severity"], "product": PRODUCT,
        "feature": spec["feature"], "model_version": spec["model_version"],
    }  # fmt: skip


# ---- the general pack ----------------------------------------------------------------------------------------------


def _general_version(out) -> DatasetVersion:
    ds = get_user_model().objects.get(username=DS_USER)
    dataset = Dataset.objects.filter(name=GENERAL_INTENTS_DATASET).first()
    if dataset is None:
        dataset = dataset_create(
            user=ds, name=GENERAL_INTENTS_DATASET, task_type="classification", product=PRODUCT, is_general=True,
            description=f"Everyday {PRODUCT} customer messages, correctly routed (Chinese and English): the "
            "intent router's forgetting check.",
        )  # fmt: skip
    ready = dataset.versions.filter(status=VersionStatus.READY).order_by("-number").first()
    if ready is not None:
        out.write(f"General pack: {ready} already ready ({_split_text(ready)}).\n")
        return ready
    body = (DATA / GENERAL_FILE).read_bytes()
    source = dataset.files.filter(name=GENERAL_FILE).order_by("-pk").first()
    if source is None or not Path(source.path).is_file():
        source = source_file_add(user=ds, dataset=dataset, upload=SimpleUploadedFile(GENERAL_FILE, body))
    recipe = {"sources": {"cases": None, "files": [source.pk], "parent_version": None, "replay": None},
              "steps": GENERAL_RECIPE_STEPS}  # fmt: skip
    version = version_create(user=ds, dataset=dataset, recipe=recipe)
    version = _build_here(version)
    if version.status != VersionStatus.READY:
        raise RuntimeError(f"the build of {version} failed: {version.error}")
    out.write(f"General pack: {version} built ({_split_text(version)}).\n")
    return version


def _build_here(version: DatasetVersion) -> DatasetVersion:
    """Run the queued build in this process; if a listening worker took its message first, wait for that one."""
    job = version.build
    build_run(job_id=job.pk, task_id=job.celery_task_id, hostname="demo_seed")
    deadline = time.monotonic() + BUILD_WAIT_SECONDS
    version.refresh_from_db()
    while version.status == VersionStatus.BUILDING and time.monotonic() < deadline:
        time.sleep(0.5)
        version.refresh_from_db()
    return version


def _split_text(version: DatasetVersion) -> str:
    return ", ".join(f"{n} {split}" for split, n in (version.counts or {}).items())


# ---- counts --------------------------------------------------------------------------------------------------------


def seed_counts() -> dict[str, int]:
    """The workspace as the seed sees it: demo users, demo cases per status and per task, the general pack."""
    cases = ErrorCase.objects.filter(metadata__has_key="demo_key", merged_into=None)
    counts = {
        "users": get_user_model().objects.filter(username__in=list(DEMO_USERS)).count(),
        "cases": cases.count(),
    }
    for status in CaseStatus.values:
        counts[f"cases_{status}"] = cases.filter(status=status).count()
    for task in (TaskType.CLASSIFICATION, TaskType.CHAT):
        counts[f"cases_{task}"] = cases.filter(task_type=task).count()
    general = Dataset.objects.filter(name=GENERAL_INTENTS_DATASET).first()
    versions = (
        general.versions.filter(status=VersionStatus.READY) if general else DatasetVersion.objects.none()
    )
    newest = versions.order_by("-number").first()
    counts["general_datasets"] = int(general is not None)
    counts["general_ready_versions"] = versions.count()
    for split in ("train", "validation", "test"):
        counts[f"general_{split}"] = (newest.counts or {}).get(split, 0) if newest else 0
    return counts
