from django.urls import path

from training_app import views

app_name = "training"
urlpatterns = [
    path("jobs/<int:pk>/metrics.json", views.job_metrics, name="job-metrics"),
]
