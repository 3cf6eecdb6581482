from django.urls import path

from registry_app import api, export_api, promotion_api

urlpatterns = [
    path("models/imports", api.BaseImportCreateApi.as_view(), name="api-base-imports"),
    path("models/imports/<int:pk>", api.BaseImportDetailApi.as_view(), name="api-base-import"),
    path("models/<path:name>/rollback", promotion_api.RollbackApi.as_view(), name="api-model-rollback"),
    path("promotions", promotion_api.PromotionCreateApi.as_view(), name="api-promotions"),
    path("promotions/<int:pk>", promotion_api.PromotionDetailApi.as_view(), name="api-promotion"),
    path(
        "promotions/<int:pk>/approve",
        promotion_api.PromotionApproveApi.as_view(),
        name="api-promotion-approve",
    ),
    path(
        "promotions/<int:pk>/reject", promotion_api.PromotionRejectApi.as_view(), name="api-promotion-reject"
    ),
    path(
        "models/versions/<int:pk>/exports", export_api.ExportCreateApi.as_view(), name="api-version-exports"
    ),
    path("exports/<int:pk>", export_api.ExportDetailApi.as_view(), name="api-export"),
]
