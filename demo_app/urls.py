from django.urls import path

from demo_app import views

app_name = "demo"
urlpatterns = [
    path("", views.demo_start, name="start"),
    path("runs/<int:pk>/", views.demo_run_detail, name="run"),
]
