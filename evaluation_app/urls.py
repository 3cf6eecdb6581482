from django.urls import path

from evaluation_app import report_views, rule_views, views

app_name = "evaluation"

urlpatterns = [
    path("", views.evaluation_list, name="list"),
    path("new", views.run_new, name="new"),
    path("<int:pk>/", views.run_detail, name="run"),
    path("<int:pk>/cancel", views.run_cancel, name="run-cancel"),
    path("<int:pk>/results/<int:result_pk>/", views.result_detail, name="result"),
    path("<int:pk>/results/<int:result_pk>/label", views.result_label, name="result-label"),
    path("reports/new", report_views.report_new, name="report-new"),
    path("reports/<int:pk>/", report_views.report_detail, name="report"),
    path("reports/<int:pk>/items/<int:item_pk>/", report_views.report_item, name="report-item"),
    path("reports/<int:pk>/export.html", report_views.report_export_html, name="report-export-html"),
    path("reports/<int:pk>/export.md", report_views.report_export_md, name="report-export-md"),
    path("regression/", report_views.regression, name="regression"),
    path("datasets/<int:pk>/rules", rule_views.dataset_rules, name="dataset-rules"),
]
