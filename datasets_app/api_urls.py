from django.urls import path

from datasets_app import api, api_datasets, api_imports

urlpatterns = [
    path("cases", api.CaseListCreateApi.as_view(), name="api-cases"),
    path("cases/bulk", api.CaseBulkCreateApi.as_view(), name="api-cases-bulk"),
    path("cases/<int:pk>", api.CaseDetailApi.as_view(), name="api-case"),
    path("cases/<int:pk>/status", api.CaseStatusApi.as_view(), name="api-case-status"),
    path("cases/<int:pk>/approve", api.CaseApproveApi.as_view(), name="api-case-approve"),
    path("cases/<int:pk>/reject", api.CaseRejectApi.as_view(), name="api-case-reject"),
    path("cases/<int:pk>/comments", api.CaseCommentApi.as_view(), name="api-case-comments"),
    path("cases/imports", api_imports.ImportCreateApi.as_view(), name="api-case-imports"),
    path("cases/imports/<int:pk>", api_imports.ImportDetailApi.as_view(), name="api-case-import"),
    path("cases/export", api_imports.ExportApi.as_view(), name="api-cases-export"),
    path("cases/near-duplicates", api_imports.NearDuplicatesApi.as_view(), name="api-cases-near-duplicates"),
    # datasets and versions (datasets_app/api_datasets.py)
    path("datasets", api_datasets.DatasetListCreateApi.as_view(), name="api-datasets"),
    path("datasets/<int:pk>", api_datasets.DatasetDetailApi.as_view(), name="api-dataset"),
    path(
        "datasets/<int:pk>/versions",
        api_datasets.DatasetVersionListCreateApi.as_view(),
        name="api-dataset-versions",
    ),
    path("datasets/<int:pk>/files", api_datasets.DatasetFileApi.as_view(), name="api-dataset-files"),
    path(
        "dataset-versions/<int:pk>",
        api_datasets.DatasetVersionDetailApi.as_view(),
        name="api-dataset-version",
    ),
    path(
        "dataset-versions/<int:pk>/rows",
        api_datasets.DatasetVersionRowsApi.as_view(),
        name="api-dataset-version-rows",
    ),
    path(
        "dataset-versions/<int:pk>/rows.jsonl",
        api_datasets.DatasetVersionRowsJsonlApi.as_view(),
        name="api-dataset-version-rows-jsonl",
    ),
    path(
        "dataset-versions/<int:pk>/leakage",
        api_datasets.DatasetVersionLeakageApi.as_view(),
        name="api-dataset-version-leakage",
    ),
]
