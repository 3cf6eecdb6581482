"""The gateway's client-application pages, under /models/clients/ (before the version catch-all)."""

from django.urls import path

from registry_app import client_views

urlpatterns = [
    path("clients/", client_views.client_list, name="clients"),
    path("clients/<int:pk>/", client_views.client_detail, name="client"),
    path("clients/<int:pk>/tokens", client_views.client_token_new, name="client-token-new"),
    path(
        "clients/<int:pk>/tokens/<int:token_pk>/revoke",
        client_views.client_token_revoke_view,
        name="client-token-revoke",
    ),
]
