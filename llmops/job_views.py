"""What every job page's cancel button does, once: ask the job to stop and tell the user how that went."""

from django.contrib import messages
from django.db import transaction

from llmops.jobs import IllegalTransition, Job, job_cancel


def cancel_and_tell(request, *, model: type[Job], job: Job, label: str) -> None:
    """A job that already ended is said so in a message, never an error page."""
    try:
        with transaction.atomic():
            job_cancel(model=model, job_id=job.pk)
    except IllegalTransition:
        messages.error(request, f"{label[:1].upper()}{label[1:]} has already finished ({job.status}).")
    else:
        messages.info(request, f"Cancel requested for {label}.")
