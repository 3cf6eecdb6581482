from django.urls import path

from training_app import api, compress_api, study_api

urlpatterns = [
    path("fine-tunes", api.FineTuneCreateApi.as_view(), name="api-fine-tunes"),
    path("fine-tunes/<int:pk>", api.FineTuneDetailApi.as_view(), name="api-fine-tune"),
    path("fine-tunes/<int:pk>/cancel", api.FineTuneCancelApi.as_view(), name="api-fine-tune-cancel"),
    path("studies", study_api.StudyListCreateApi.as_view(), name="api-studies"),
    path("studies/<int:pk>", study_api.StudyDetailApi.as_view(), name="api-study"),
    path("studies/<int:pk>/cancel", study_api.StudyCancelApi.as_view(), name="api-study-cancel"),
    path("compressions", compress_api.CompressionListCreateApi.as_view(), name="api-compressions"),
    path("compressions/<int:pk>", compress_api.CompressionDetailApi.as_view(), name="api-compression"),
    path(
        "compressions/<int:pk>/cancel",
        compress_api.CompressionCancelApi.as_view(),
        name="api-compression-cancel",
    ),
]
