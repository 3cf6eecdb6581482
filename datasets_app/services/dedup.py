"""Near-duplicate grouping as a follow-up cpu job: MinHash signatures for cases that lack one, LSH over all."""

from django.core.exceptions import ValidationError
from django.db import transaction

from datasets_app.dedup import group_near_duplicates, near_duplicate_text, signature, signature_bytes
from datasets_app.models import DedupJob, ErrorCase
from llmops.jobs import JobCancelled, JobStatus, Reporter, RunOutcome, job_enqueue, job_run

BATCH = 2000


@transaction.atomic
def dedup_job_create(*, user, threshold: float) -> DedupJob:
    if not 0 < threshold < 1:  # group_near_duplicates refuses anything else: fail here, not on the worker
        raise ValidationError(
            {"threshold": f"give a similarity between 0 and 1 (exclusive), not {threshold:g}"}
        )
    job = DedupJob(created_by=user, threshold=threshold)
    job.full_clean(exclude=["created_by"])
    job.save()
    return job_enqueue(job=job)


def dedup_job_after_import(*, user) -> DedupJob | None:
    """New cases arrived: group them with the rest, unless a grouping job is already waiting to run."""
    from django.conf import settings

    if DedupJob.objects.filter(status=JobStatus.QUEUED).exists():
        return None
    return dedup_job_create(user=user, threshold=settings.NEAR_DUP_THRESHOLD)


def dedup_run(*, job_id: int, task_id: str, hostname: str | None) -> RunOutcome:
    return job_run(model=DedupJob, job_id=job_id, task_id=task_id, hostname=hostname, work=_run)


def _sign_missing(report: Reporter) -> None:
    missing = ErrorCase.objects.filter(minhash=None, merged_into=None)
    total = max(missing.count(), 1)
    done = 0
    while ids := list(missing.values_list("pk", flat=True).order_by("pk")[:BATCH]):
        rows = ErrorCase.objects.filter(pk__in=ids).only("pk", "messages", "bad_output")
        for case in rows:
            case.minhash = signature_bytes(signature(near_duplicate_text(case.messages, case.bad_output)))
        ErrorCase.objects.bulk_update(rows, ["minhash"], batch_size=BATCH)
        done += len(ids)
        if report(progress=0.8 * done / total, message=f"signed {done} cases") == "stop":
            raise JobCancelled("cancelled while signing")


def _run(job: DedupJob, report: Reporter) -> str:
    _sign_missing(report)
    report(progress=0.85, message="grouping")
    signed = ErrorCase.objects.filter(merged_into=None).exclude(minhash=None).values_list("pk", "minhash")
    groups = group_near_duplicates(((pk, bytes(sig)) for pk, sig in signed.iterator(chunk_size=BATCH)),
                                   threshold=job.threshold)  # fmt: skip
    with transaction.atomic():
        ErrorCase.objects.exclude(near_dup_group=None).update(near_dup_group=None)
        by_group: dict[int, list[int]] = {}
        for case_id, group in groups.items():
            by_group.setdefault(group, []).append(case_id)
        for group, ids in by_group.items():
            ErrorCase.objects.filter(pk__in=ids).update(near_dup_group=group)
    DedupJob.objects.filter(pk=job.pk).update(groups_found=len(by_group), cases_grouped=len(groups))
    return f"{len(by_group)} groups of similar cases ({len(groups)} cases)"
