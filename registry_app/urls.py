from django.urls import path

from registry_app import views

app_name = "registry"
urlpatterns = [
    path("", views.model_list, name="list"),
    path("import", views.base_import_new, name="import"),
    path("<path:name>/v<int:number>/", views.version_detail, name="version"),
]
