"""Promotion pages. Every family URL ends in a fixed word (card/, gate/, rollback) after the family's name, so none
can be taken for the version catch-all ``<path:name>/v<int:number>/`` and none swallows a version page."""

from django.urls import path

from registry_app import promotion_views as views

urlpatterns = [
    path("promotions/", views.promotion_list, name="promotions"),
    path("promotions/new/<int:version_id>", views.promotion_new, name="promotion-new"),
    path("promotions/<int:pk>/", views.promotion_detail, name="promotion"),
    path("promotions/<int:pk>/approve", views.promotion_approve_view, name="promotion-approve"),
    path("promotions/<int:pk>/reject", views.promotion_reject_view, name="promotion-reject"),
    path("promotions/<int:pk>/withdraw", views.promotion_withdraw_view, name="promotion-withdraw"),
    path("<path:name>/card/", views.family_card, name="family"),
    path("<path:name>/gate/", views.gate_edit, name="gate"),
    path("<path:name>/rollback", views.production_rollback_view, name="rollback"),
]
