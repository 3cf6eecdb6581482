from django.urls import path

from training_app import api

urlpatterns = [
    path("fine-tunes", api.FineTuneCreateApi.as_view(), name="api-fine-tunes"),
    path("fine-tunes/<int:pk>", api.FineTuneDetailApi.as_view(), name="api-fine-tune"),
    path("fine-tunes/<int:pk>/cancel", api.FineTuneCancelApi.as_view(), name="api-fine-tune-cancel"),
]
