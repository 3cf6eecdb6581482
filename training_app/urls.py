from django.urls import path

from training_app import compress_views, study_views, views

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
    path("compressions/", compress_views.compression_list, name="compressions"),
    path("compressions/new/<str:method>", compress_views.compression_new, name="compression-new"),
    path("compressions/<int:pk>/", compress_views.compression_detail, name="compression"),
    path("compressions/<int:pk>/cancel", compress_views.compression_cancel_view, name="compression-cancel"),
    path("compressions/family/<int:model_id>/", compress_views.compression_family, name="compression-family"),
]
