from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from llmops import api, views
from llmops.roles import public, role_required


class SchemaApi(SpectacularAPIView):
    required_permission = "api.docs"


api_docs = role_required("api.docs")(
    SpectacularSwaggerView.as_view(url_name="api-schema", permission_classes=[AllowAny])
)

diagnostics_urls = (
    [
        path("", views.diagnostics_list, name="list"),
        path("new", views.diagnostics_create, name="create"),
        path("<int:pk>/", views.diagnostic_detail, name="detail"),
        path("<int:pk>/cancel", views.diagnostic_cancel, name="cancel"),
    ],
    "diagnostics",
)

api_v1 = [
    path("me", api.MeApi.as_view(), name="api-me"),
    path("diagnostics/jobs", api.DiagnosticJobListCreateApi.as_view(), name="api-diagnostic-jobs"),
    path("diagnostics/jobs/<int:pk>", api.DiagnosticJobDetailApi.as_view(), name="api-diagnostic-job"),
    path(
        "diagnostics/jobs/<int:pk>/cancel", api.DiagnosticJobCancelApi.as_view(), name="api-diagnostic-cancel"
    ),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", public(auth_views.LoginView.as_view(redirect_authenticated_user=True)), name="login"),
    path("logout/", public(auth_views.LogoutView.as_view()), name="logout"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke", views.token_revoke, name="token-revoke"),
    path("diagnostics/", include(diagnostics_urls)),
    path("cases/", include("datasets_app.urls")),
    path("datasets/", include("datasets_app.dataset_urls")),
    path("training/", include("training_app.urls")),
    path("models/", include("registry_app.urls")),
    path("evaluations/", include("evaluation_app.urls")),
    path("demo/", include("demo_app.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("api/v1/", include(api_v1)),
    path("api/v1/", include("datasets_app.api_urls")),
    path("api/v1/", include("training_app.api_urls")),
    path("api/v1/", include("registry_app.api_urls")),
    path("api/v1/", include("evaluation_app.api_urls")),
    path("v1/", include("registry_app.gateway.urls")),
    path("v1/", include("training_app.openai_api.urls")),
    path("api/schema/", SchemaApi.as_view(), name="api-schema"),
    path("api/docs/", api_docs, name="api-docs"),
    path("admin/", admin.site.urls),
]

handler404 = "llmops.views.page_not_found"
handler500 = "llmops.views.server_error"
