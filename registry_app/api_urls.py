from django.urls import path

from registry_app import api

urlpatterns = [
    path("models/imports", api.BaseImportCreateApi.as_view(), name="api-base-imports"),
    path("models/imports/<int:pk>", api.BaseImportDetailApi.as_view(), name="api-base-import"),
]
