from django.urls import path

from datasets_app.views import case, cases, dashboard, export, imports, triage

app_name = "cases"

urlpatterns = [
    path("", cases.case_list, name="list"),
    path("new", cases.case_create, name="create"),
    path("bulk", cases.case_bulk, name="bulk"),
    path("merge", cases.case_merge, name="merge"),
    path("dashboard", dashboard.dashboard, name="dashboard"),
    path("triage/", triage.triage_start, name="triage"),
    path("<int:pk>/", case.case_detail, name="detail"),
    path("<int:pk>/triage", triage.triage_case, name="triage-case"),
    path("<int:pk>/edit", case.case_edit, name="edit"),
    path("<int:pk>/tags", case.case_tags, name="tags"),
    path("<int:pk>/status", case.case_status, name="status"),
    path("<int:pk>/approve", case.case_approve, name="approve"),
    path("<int:pk>/reject", case.case_reject, name="reject"),
    path("<int:pk>/comment", case.case_comment, name="comment"),
    # imports and export (datasets_app/views/imports.py, export.py)
    path("imports/new", imports.upload, name="import"),
    path("imports/<int:pk>/", imports.detail, name="import-detail"),
    path("imports/<int:pk>/problems.csv", imports.problems_csv, name="import-problems"),
    path("imports/<int:pk>/rejected", imports.rejected_file, name="import-rejected"),
    path("export", export.export_cases, name="export"),
    path("near-duplicates", imports.find_near_duplicates, name="find-duplicates"),
]
