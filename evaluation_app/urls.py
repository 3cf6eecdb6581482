from django.urls import path

from evaluation_app import views

app_name = "evaluation"

urlpatterns = [
    path("", views.evaluation_list, name="list"),
]
