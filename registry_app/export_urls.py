"""A version's exports (merged HF folder, ONNX, Triton repository); before the version catch-all."""

from django.urls import path

from registry_app import export_views

urlpatterns = [
    path("<path:name>/v<int:number>/exports/", export_views.version_exports, name="exports"),
    path("<path:name>/v<int:number>/exports/new", export_views.export_new, name="export-new"),
]
