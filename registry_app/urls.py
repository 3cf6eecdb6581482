"""Registry pages under /models/. Each concern keeps its own URL list; the version catch-all comes last."""

from django.urls import path

from registry_app import client_urls, export_urls, promotion_urls, serving_urls, views

app_name = "registry"
urlpatterns = [
    path("", views.model_list, name="list"),
    path("import", views.base_import_new, name="import"),
    *promotion_urls.urlpatterns,
    *serving_urls.urlpatterns,
    *export_urls.urlpatterns,
    *client_urls.urlpatterns,
    path("<path:name>/v<int:number>/", views.version_detail, name="version"),
]
