from django.urls import path

from datasets_app import api, api_imports

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
]
