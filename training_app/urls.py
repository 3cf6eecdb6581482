from django.urls import path

from training_app import study_views, views

app_name = "training"
urlpatterns = [
    path("", views.job_list, name="list"),
    path("new", views.job_new, name="new"),
    path("new/fields", views.job_new_fields, name="new-fields"),
    path("new/estimate", views.job_estimate, name="new-estimate"),
    path("compare", views.job_compare, name="compare"),
    path("jobs/<int:pk>/", views.job_detail, name="job"),
    path("jobs/<int:pk>/cancel", views.job_cancel_view, name="job-cancel"),
    path("jobs/<int:pk>/metrics.json", views.job_metrics, name="job-metrics"),
    path("studies/", study_views.study_list, name="studies"),
    path("studies/new", study_views.study_new, name="study-new"),
    path("studies/<int:pk>/", study_views.study_detail, name="study"),
    path("studies/<int:pk>/cancel", study_views.study_cancel_view, name="study-cancel"),
]
