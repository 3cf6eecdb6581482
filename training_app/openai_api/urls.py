"""Mounted at /v1/ by llmops/urls.py, after the serving gateway (registry_app.gateway.urls: chat/completions,
completions, feedback and models, which moved there)."""

from django.urls import path

from training_app.openai_api import views

urlpatterns = [
    path("files", views.FilesApi.as_view(), name="openai-files"),
    path("files/<str:file_id>", views.FileApi.as_view(), name="openai-file"),
    path("fine_tuning/jobs", views.JobsApi.as_view(), name="openai-fine-tuning-jobs"),
    path("fine_tuning/jobs/<str:job_id>", views.JobApi.as_view(), name="openai-fine-tuning-job"),
    path(
        "fine_tuning/jobs/<str:job_id>/events", views.JobEventsApi.as_view(), name="openai-fine-tuning-events"
    ),
    path(
        "fine_tuning/jobs/<str:job_id>/checkpoints",
        views.JobCheckpointsApi.as_view(),
        name="openai-fine-tuning-checkpoints",
    ),
    path(
        "fine_tuning/jobs/<str:job_id>/cancel", views.JobCancelApi.as_view(), name="openai-fine-tuning-cancel"
    ),
]
