"""Pages of datasets and their versions, at /datasets/ (views in datasets_app/views/datasets.py, versions.py,
version_downloads.py)."""

from django.urls import path

from datasets_app.views import datasets, version_downloads, version_leakage, versions

app_name = "datasets"

urlpatterns = [
    path("", datasets.dataset_list, name="list"),
    path("<int:pk>/", datasets.dataset_detail, name="detail"),
    path("<int:pk>/files", datasets.file_upload, name="file-upload"),
    path("<int:pk>/versions/new", versions.version_new, name="version-new"),
    path("versions/<int:pk>/", versions.version_detail, name="version"),
    path("versions/<int:pk>/cancel", versions.version_cancel, name="version-cancel"),
    path("versions/<int:pk>/rows", versions.version_rows, name="version-rows"),
    path("versions/<int:pk>/diff", versions.version_compare, name="version-diff"),
    path("versions/<int:pk>/leakage", version_leakage.version_leakage, name="version-leakage"),
    path("versions/<int:pk>/download/hf.zip", version_downloads.download_hf, name="download-hf"),
    path(
        "versions/<int:pk>/download/<str:fmt>/<str:split>", version_downloads.download_split, name="download"
    ),
]
