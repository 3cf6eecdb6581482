"""The error notebook (cases.py) and the dataset versions built from it (datasets.py)."""

from datasets_app.models.cases import (
    CASE_TRANSITIONS,
    CaseComment,
    CaseEvent,
    CaseStatus,
    CaseStatusCount,
    DedupJob,
    ErrorCase,
    ImportJob,
    SensitiveWord,
    Severity,
    Source,
    Tag,
    TaskType,
)
from datasets_app.models.datasets import (
    Dataset,
    DatasetBuild,
    DatasetExample,
    DatasetTask,
    DatasetVersion,
    SourceFile,
    VersionStatus,
)

__all__ = [
    "CASE_TRANSITIONS", "CaseComment", "CaseEvent", "CaseStatus", "CaseStatusCount", "DedupJob", "ErrorCase",
    "ImportJob", "SensitiveWord", "Severity", "Source", "Tag", "TaskType",
    "Dataset", "DatasetBuild", "DatasetExample", "DatasetTask", "DatasetVersion", "SourceFile", "VersionStatus",
]  # fmt: skip
