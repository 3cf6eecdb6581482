"""The training tests' small world: the tiny model registered as a base, a ready chat dataset version built from
approved cases, artifacts under the test's tmp folder, and settings that keep a run to a few steps."""

from pathlib import Path

import pytest

from datasets_app.models import DatasetVersion, VersionStatus
from datasets_app.services.build import build_run
from datasets_app.services.datasets import dataset_create, version_create
from tests.datasets_app.test_build import approved_case, recipe

FAST = {"max_steps": 4, "batch_size": 4, "lora_r": 4, "max_seq_len": 128, "eval_every": 2}


@pytest.fixture(autouse=True)
def artifacts(artifacts) -> Path:
    """Every training test writes its artifacts under its own tmp folder (tests/conftest.py's fixture)."""
    return artifacts


def ready_version(scientist, cases: int = 20, name: str = "support answers") -> DatasetVersion:
    """A ready chat version built in-process from ``cases`` approved cases."""
    for i in range(cases):
        approved_case(i)
    dataset = dataset_create(user=scientist, name=name, task_type="chat")
    version = version_create(user=scientist, dataset=dataset, recipe=recipe())
    job = version.build
    build_run(job_id=job.pk, task_id=job.celery_task_id, hostname="test")
    version.refresh_from_db()
    assert version.status == VersionStatus.READY, version.error
    return version
