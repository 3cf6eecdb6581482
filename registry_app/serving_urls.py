"""Deployment pages under /models/deployments/: the list, the form, the A/B dashboard and its two actions."""

from django.urls import path

from registry_app import serving_views as views

urlpatterns = [
    path("deployments/", views.deployment_list, name="deployments"),
    path("deployments/new", views.deployment_new, name="deployment-new"),
    path("deployments/<slug:name>/", views.deployment_detail, name="deployment"),
    path("deployments/<slug:name>/edit", views.deployment_edit, name="deployment-edit"),
    path("deployments/<slug:name>/stop", views.deployment_stop_view, name="deployment-stop"),
    path("deployments/<slug:name>/promote", views.deployment_promote_view, name="deployment-promote"),
]
